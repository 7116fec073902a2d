// Minimal safetensors reader/writer (the Hugging Face format: u64 header length, JSON header with
// dtype/shape/data_offsets per tensor and an optional "__metadata__" string map, then raw data).
// Final weights, checkpoints (model and optimizer files) and Hugging Face exports.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The key of the data's checksum in "__metadata__": XXH3-64 of the data section (every tensor's bytes
// in file order), 16 hex digits. Written into every file; checked on load when present (files from
// elsewhere have none), so a flipped or overwritten byte is an error naming the file, not NaNs later.
inline constexpr const char* kSafetensorsChecksumKey = "tessera_xxh3_64";

// Writes to `path` + ".tmp" and renames, so a crash never leaves a half-written file behind.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
// Throws FormatError naming the file for anything missing, truncated or inconsistent, or data that
// does not match its checksum.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

}  // namespace tessera
