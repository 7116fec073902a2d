// Minimal safetensors reader/writer (the Hugging Face format: u64 header length, JSON header with
// dtype/shape/data_offsets per tensor and an optional "__metadata__" string map, then raw data).
// Used for final weights now; sharded checkpoints build on it.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes to `path` + ".tmp" and renames, so a crash never leaves a half-written file behind.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
// Throws FormatError naming the file for anything missing, truncated or inconsistent.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

}  // namespace tessera
