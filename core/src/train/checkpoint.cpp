#include "tessera/train/checkpoint.hpp"

#include <fstream>
#include <iterator>
#include <set>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/ops.hpp"

namespace tessera {

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.flush();
    if (!out) throw Error(fmt::format("writing {} failed", tmp.string()));
  }
  std::filesystem::rename(tmp, path);
}

std::string read_text(const std::filesystem::path& path) {
  return read_whole_file(path, "checkpoint file", kMaxMetadataBytes);
}

std::string checkpoint_dir_name(std::int64_t iteration) { return fmt::format("iter_{:07d}", iteration); }

std::string checkpoint_model_file(int tp_rank, int pp_rank) {
  return fmt::format("model_tp{}_pp{}.safetensors", tp_rank, pp_rank);
}

std::string checkpoint_optimizer_file(int tp_rank, int pp_rank, int dp_rank) {
  return fmt::format("optimizer_tp{}_pp{}_dp{}.safetensors", tp_rank, pp_rank, dp_rank);
}

void restore_tensors(const std::map<std::string, Tensor>& saved, const NamedTensors& targets, const std::string& what,
                     const std::string& hint) {
  std::set<std::string> expected;
  for (const auto& [name, target] : targets) {
    expected.insert(name);
    auto it = saved.find(name);
    if (it == saved.end())
      throw FormatError(fmt::format("{}: no tensor '{}' in the checkpoint ({} tensors there, {} expected){}", what, name,
                                    saved.size(), targets.size(), hint));
    const Tensor& src = it->second;
    if (src.dtype() != target.dtype())
      throw FormatError(fmt::format("{}: tensor '{}' has dtype {} in the checkpoint, {} here", what, name,
                                    dtype_name(src.dtype()), dtype_name(target.dtype())));
    if (src.shape() != target.shape())
      throw FormatError(fmt::format("{}: tensor '{}' has shape {} in the checkpoint, {} here{}", what, name,
                                    shape_str(src.shape()), shape_str(target.shape()), hint));
  }
  for (const auto& [name, t] : saved)
    if (!expected.count(name) && name != "step")
      throw FormatError(fmt::format("{}: the checkpoint has a tensor '{}' that this run does not{}", what, name, hint));
  for (const auto& [name, target] : targets) {
    Tensor dst = target;
    ops::copy(saved.at(name), dst);
  }
}

Tensor step_tensor(std::int64_t step) { return Tensor::from<std::int64_t>({1}, {step}); }

std::int64_t read_step_tensor(const std::map<std::string, Tensor>& saved, const std::string& what) {
  auto it = saved.find("step");
  if (it == saved.end()) throw FormatError(fmt::format("{}: no tensor 'step' in the checkpoint", what));
  if (it->second.dtype() != DType::i64 || it->second.numel() != 1)
    throw FormatError(fmt::format("{}: tensor 'step' must be one i64", what));
  const std::int64_t step = it->second.data<std::int64_t>()[0];
  if (step < 0) throw FormatError(fmt::format("{}: negative step {}", what, step));
  return step;
}

}  // namespace tessera
