#include "tessera/train/saved_model.hpp"

#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "../config_data.hpp"
#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/nn/gather_parameter.hpp"
#include "tessera/nn/moe.hpp"
#include "tessera/ops.hpp"
#include "tessera/quote.hpp"
#include "tessera/train/checkpoint.hpp"

namespace tessera {

// Why a saved tensor does not fit: the model comes from the config it is loaded with (for generate,
// the saved config.toml; for evaluate and train, the run's file and --set), which may not be the
// one the weights were saved with.
constexpr const char* kDisagree =
    "(the model built from the config and --set it was loaded with, and the saved weights, disagree; the saved "
    "folder's config.toml says how they were made)";

namespace fs = std::filesystem;

namespace {

constexpr const char* kTokenizerFolder = "tokenizer";

std::string override_text(const std::string& key, const std::string& value) {
  return fmt::format("tokenizer.{}={}", key, toml_quoted(value));
}

// A saved config names its tokenizer's files "tokenizer/<name>" (config_for_saved_folder): such
// [tokenizer] values are resolved against `folder` where the file is there; others stay as written.
Config load_config_text(const std::string& text, const std::string& source, const fs::path& folder) {
  const Config plain = Config::from_string(text, source);
  std::vector<std::string> overrides;
  if (plain.has_section("tokenizer")) {
    ConfigSection s = plain.section("tokenizer");
    for (const std::string& key : s.keys()) {
      if (!s.is_string(key)) continue;
      const fs::path value = s.get_string(key);
      std::error_code ec;
      const bool in_tokenizer_folder = !value.empty() && value.is_relative() && *value.begin() == kTokenizerFolder;
      if (in_tokenizer_folder && fs::is_regular_file(folder / value, ec))
        overrides.push_back(override_text(key, (folder / value).string()));
    }
  }
  return overrides.empty() ? plain : Config::from_string(text, source, overrides);
}

bool all_finite(const Tensor& t) {
  if (t.dtype() != DType::f32) return true;
  const std::vector<float> host = t.to_vector<float>();
  const float* v = host.data();
  for (std::int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

}  // namespace

std::string config_for_saved_folder(const Config& config, const Tokenizer& tokenizer, const fs::path& folder) {
  std::vector<std::string> overrides;
  std::set<std::string> used_names;
  ConfigSection s = config.section("tokenizer");
  for (const std::string& key : tokenizer.file_keys()) {
    if (!s.is_string(key)) continue;
    const std::string value = s.get_string(key);
    if (value.empty()) continue;
    std::error_code ec;
    if (!fs::is_regular_file(value, ec)) continue;  // the run already read it; a vanished file stays as written
    std::string name = fs::path(value).filename().string();
    while (!used_names.insert(name).second) name = "_" + name;  // two keys, same file name
    const fs::path dest = folder / kTokenizerFolder / name;
    fs::create_directories(dest.parent_path());
    fs::copy_file(value, dest, fs::copy_options::overwrite_existing);
    overrides.push_back(override_text(key, (fs::path(kTokenizerFolder) / name).string()));
  }
  return Config::from_string(config.dump(), config.source(), overrides).dump();
}

std::string SavedModel::describe() const {
  if (tensor_parallel == 1 && pipeline_parallel == 1) return folder.string();
  return fmt::format("{} (checkpoint of {} tensor- × {} pipeline-parallel shards)", folder.string(), tensor_parallel,
                     pipeline_parallel);
}

SavedModel open_saved_model(const fs::path& load) {
  std::error_code ec;
  if (fs::is_regular_file(load / "config.toml", ec) && fs::is_regular_file(load / "model.safetensors", ec)) {
    const std::string text = read_whole_file(load / "config.toml", "saved config", kMaxConfigBytes);
    return {load, load_config_text(text, (load / "config.toml").string(), load), false, 1, 1};
  }
  if (!fs::exists(load / "metadata.json", ec) && !fs::exists(load / kLatestCheckpointFile, ec))
    throw FormatError(fmt::format("{} does not hold a saved model: expected config.toml and model.safetensors (the "
                                  "folder [checkpoint] save names), a checkpoint folder with metadata.json, or a save "
                                  "folder with {}",
                                  load.string(), kLatestCheckpointFile));
  const auto [dir, meta] = open_checkpoint(load, "--load " + load.string());
  if (meta.tensor_parallel > 4096 || meta.pipeline_parallel > 4096)
    throw FormatError(fmt::format("{}: {} × {} shards is more than a checkpoint of Tessera has",
                                  (dir / "metadata.json").string(), meta.tensor_parallel, meta.pipeline_parallel));
  return {dir, load_config_text(meta.config, (dir / "metadata.json").string() + " (config)", dir), true,
          static_cast<int>(meta.tensor_parallel), static_cast<int>(meta.pipeline_parallel), meta.iteration};
}

void load_saved_weights(const SavedModel& saved, const std::vector<Parameter*>& params) {
  load_saved_weights(saved, params, SavedWeightsTarget{});
}

std::vector<std::string> load_saved_weights(const SavedModel& saved, const std::vector<Parameter*>& params,
                                            const SavedWeightsTarget& layout) {
  std::vector<std::string> padding_zeroed;
  // name -> (file, shard per tp rank) from the first pipeline stage that holds it (the last stage's
  // copy of the tied embedding is the same tensor).
  struct Found {
    std::string file;
    std::vector<Tensor> shards;
    int split_dim = -1, split_blocks = 1;  // as the layout that wrote the shards split it
  };
  std::map<std::string, Found> found;
  for (int p = 0; p < saved.pipeline_parallel; ++p) {
    std::map<std::string, Found> stage;
    nlohmann::json splits = nlohmann::json::object();
    for (int t = 0; t < saved.tensor_parallel; ++t) {
      const fs::path file = saved.folder / (saved.checkpoint ? checkpoint_model_file(t, p) : std::string("model.safetensors"));
      SafetensorsFile loaded = load_safetensors(file);
      if (t == 0 && saved.tensor_parallel > 1) {
        auto it = loaded.metadata.find(kTensorParallelSplitKey);
        if (it == loaded.metadata.end())
          throw FormatError(fmt::format("{}: no '{}' metadata, so its tensor-parallel shards cannot be joined (a "
                                        "checkpoint from an older Tessera: resume it with its own layout instead)",
                                        file.string(), kTensorParallelSplitKey));
        splits = detail::parse_untrusted_json(it->second, file.string() + ": " + kTensorParallelSplitKey);
        if (!splits.is_object())
          throw FormatError(fmt::format("{}: '{}' is {}, not an object", file.string(), kTensorParallelSplitKey,
                                        detail::describe_json(splits)));
      }
      for (auto& [name, tensor] : loaded.tensors) {
        Found& f = stage[name];
        if (f.shards.size() != static_cast<std::size_t>(t))
          throw FormatError(fmt::format("{}: tensor {} is missing from the other tensor-parallel shards of stage {}",
                                        file.string(), quote_untrusted(name), p));
        f.file = file.string();
        f.shards.push_back(std::move(tensor));
      }
    }
    for (auto& [name, f] : stage) {
      if (f.shards.size() != static_cast<std::size_t>(saved.tensor_parallel))
        throw FormatError(fmt::format("{}: tensor {} is not in every tensor-parallel shard of stage {}", f.file,
                                      quote_untrusted(name), p));
      if (auto it = splits.find(name); it != splits.end()) {
        const nlohmann::json& v = *it;
        if (!v.is_array() || v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned() ||
            v[1].get<std::uint64_t>() < 1 || v[0].get<std::uint64_t>() >= static_cast<std::uint64_t>(f.shards[0].dim()) ||
            f.shards[0].size(v[0].get<int>()) % v[1].get<std::int64_t>() != 0)
          throw FormatError(fmt::format("{}: the split of tensor {} is {}, which does not fit its shape {}", f.file,
                                        quote_untrusted(name), detail::describe_json(v), f.shards[0].str()));
        f.split_dim = v[0].get<int>();
        f.split_blocks = v[1].get<int>();
      }
      found.try_emplace(name, std::move(f));
    }
  }
  std::set<std::string> used;
  for (Parameter* param : params) {
    auto it = found.find(param->name);
    if (it == found.end())
      throw FormatError(fmt::format("{}: no tensor '{}' for this model {}", saved.describe(), param->name, kDisagree));
    used.insert(param->name);
    const Found& f = it->second;
    for (const Tensor& s : f.shards)
      if (s.dtype() != DType::f32)
        throw FormatError(fmt::format("{}: tensor '{}' is {}, expected f32", f.file, param->name, dtype_name(s.dtype())));
    const bool split = f.split_dim >= 0;
    if (!split)
      for (const Tensor& s : f.shards)
        if (s.shape() != f.shards[0].shape())
          throw FormatError(fmt::format("{}: tensor '{}' differs in shape between shards", f.file, param->name));
    Tensor full = assemble_tp_shards(f.shards, f.split_dim, f.split_blocks);
    // This layout's whole tensor: the parameter itself, or for a shard of a split tensor a host
    // tensor that the shard is cut from afterwards.
    const bool sharded = layout.tp_size > 1 && param->tp_split_dim >= 0;
    Tensor whole = param->value;
    if (sharded) {
      Shape shape = param->value.shape();
      shape[static_cast<std::size_t>(param->tp_split_dim)] *= layout.tp_size;
      whole = Tensor::zeros(shape);
    }
    // Saved files hold no vocabulary padding, or a layout's own: keep the real rows, zero the rest.
    const bool same_padding = layout.keep_padding && full.dim() == whole.dim() && full.size(0) == whole.size(0);
    const bool padded = param->unpadded_rows >= 0 && full.dim() == whole.dim() &&
                        full.size(0) >= param->unpadded_rows && !same_padding;
    if (padded) full = full.rows(0, param->unpadded_rows);
    if (padded && param->unpadded_rows < whole.size(0)) padding_zeroed.push_back(param->name);
    Tensor target = padded ? whole.rows(0, param->unpadded_rows) : whole;
    if (full.shape() != target.shape())
      throw FormatError(fmt::format("{}: tensor '{}' is {} but the model needs {} {}", f.file, param->name, full.str(),
                                    target.str(), kDisagree));
    if (!all_finite(full))
      throw FormatError(fmt::format("{}: tensor '{}' holds non-finite values (NaN or infinity): the run diverged or the "
                                    "file is damaged",
                                    f.file, param->name));
    if (padded && !sharded) param->value.zero_();
    ops::copy(full, target);
    if (sharded)
      ops::copy(tp_shard_of(whole, param->tp_split_dim, param->tp_split_blocks, layout.tp_rank, layout.tp_size),
                param->value);
  }
  for (const auto& [name, f] : found)
    if (layout.whole_model && !used.count(name) && !(layout.ep > 1 && is_expert_tensor(name)))
      throw FormatError(fmt::format("{}: tensor {} is not used by the model ({} parameters expected) {}", f.file,
                                    quote_untrusted(name), params.size(), kDisagree));
  return padding_zeroed;
}

}  // namespace tessera
