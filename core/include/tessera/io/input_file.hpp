// Files a user names (configs, vocabularies, checkpoints, datasets) are opened through these: only
// regular files are accepted (a FIFO blocks for ever, /dev/zero never ends), and files read whole have
// a size cap, so bad input is a named error rather than a hang or an exhausted memory.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace tessera {

inline constexpr std::uint64_t kMaxConfigBytes = std::uint64_t{16} << 20;       // a TOML config or include
inline constexpr std::uint64_t kMaxVocabularyBytes = std::uint64_t{512} << 20;  // vocab/merges/tokenizer files
inline constexpr std::uint64_t kMaxMetadataBytes = std::uint64_t{64} << 20;     // metadata.json and small text files

// What `path` is, links followed: "regular file", "directory", "FIFO (named pipe)", "character
// device", "block device", "socket", "special file", or "missing file or broken link".
std::string file_kind(const std::filesystem::path& path);

// FormatError "<path>: <what> is a <kind>, not a regular file" unless `path` is a regular file (links
// followed); FormatError naming the system error when it cannot be examined.
void require_regular_file(const std::filesystem::path& path, const std::string& what);

// A read-only descriptor of the regular file `path` (opened without blocking, then checked with fstat,
// so a FIFO is refused rather than waited on); its size in *size. The caller closes it. FormatError
// "<path>: <what> is a <kind>, not a regular file" or naming the system error otherwise.
int open_regular_file(const std::filesystem::path& path, const std::string& what, std::uint64_t* size);

// The whole of a regular file of at most max_bytes; FormatError naming path and `what` otherwise.
// Opened without blocking, so a FIFO named here is refused instead of waiting for a writer.
std::string read_whole_file(const std::filesystem::path& path, const std::string& what, std::uint64_t max_bytes);

}  // namespace tessera
