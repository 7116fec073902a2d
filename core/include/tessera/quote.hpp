// quote_untrusted(text): a bounded, printable rendering of bytes that came from a file or a user, fit
// for one line of an error message. Messages never copy untrusted input whole: a 40 kB line, raw
// binary or a terminal escape sequence would make the message useless or harmful to print.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tessera {

// "\"abc\\x01…\" (40961 bytes)": printable ASCII kept, other bytes as \xNN, \n, \t, at most max_chars
// of them, and the total length when the text was cut.
std::string quote_untrusted(std::string_view text, std::size_t max_chars = 60);

// `text` itself when it is short (at most max_chars) and printable, else quote_untrusted(text): for
// names (keys, tensors) that are almost always plain and read best unquoted.
std::string plain_or_quoted(std::string_view text, std::size_t max_chars = 60);

}  // namespace tessera
