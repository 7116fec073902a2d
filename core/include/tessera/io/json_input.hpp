// JSON read from files (safetensors headers, metadata.json, encoder.json, JSONL records): parsed with
// a nesting limit and described in messages without ever serialising the untrusted value (nlohmann's
// dump() recurses once per level and copies everything: 75,000 nested '[' overflowed the stack).
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tessera::detail {

// The deepest nesting any file format of ours uses is 3; 64 leaves room and stays far from the stack.
constexpr int kMaxJsonDepth = 64;

// Parses `text`; `what` names the source ("x.safetensors: the header") in the FormatError thrown for
// nesting deeper than max_depth or invalid JSON (the parser's message with its quoted input cut short).
nlohmann::json parse_untrusted_json(std::string_view text, const std::string& what, int max_depth = kMaxJsonDepth);

// A short description of a value for an error message: its type and a bounded prefix, e.g.
// `array [1, 2, [3, …` or `string "abc"`.
std::string describe_json(const nlohmann::json& value);

}  // namespace tessera::detail
