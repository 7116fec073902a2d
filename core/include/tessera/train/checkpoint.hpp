// Resumable checkpoints (DESIGN.md §6, docs/checkpoints.md): the file names of a checkpoint folder
// the name- and shape-checked restore that the trainer and the optimizer plugins share, and atomic
// text files (metadata, the latest-iteration pointer, the saved config).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "tessera/io/safetensors.hpp"

namespace tessera {

// "iter_0000010", as Megatron-LM names its checkpoint folders.
std::string checkpoint_dir_name(std::int64_t iteration);
std::string checkpoint_model_file(int tp_rank, int pp_rank);                  // model_tp{t}_pp{p}.safetensors
std::string checkpoint_optimizer_file(int tp_rank, int pp_rank, int dp_rank);  // optimizer_tp{t}_pp{p}_dp{d}.safetensors
inline constexpr const char* kLatestCheckpointFile = "latest_checkpointed_iteration.txt";

// Copies saved[name] into each target tensor (f32, in place, so views into it stay valid). Throws
// FormatError, prefixed with `what`, naming a missing or unexpected tensor, a dtype or a shape that
// differs; `hint` (may be empty) is appended to shape mismatches to say what changes shapes.
void restore_tensors(const std::map<std::string, Tensor>& saved, const NamedTensors& targets, const std::string& what,
                     const std::string& hint = "");

// `text` written to path.tmp and renamed into place: the file is whole or absent, never partial.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);
// A whole text file; FormatError naming it when it cannot be read.
std::string read_text(const std::filesystem::path& path);

// The "step" tensor optimizers keep: one i64.
Tensor step_tensor(std::int64_t step);
std::int64_t read_step_tensor(const std::map<std::string, Tensor>& saved, const std::string& what);

}  // namespace tessera
