#include "tessera/tools/hf_import.hpp"

#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/quote.hpp"
#include "tessera/tools/hf_bert.hpp"
#include "tessera/tools/hf_config.hpp"
#include "tessera/tools/hf_tokenizer_files.hpp"
#include "tessera/tools/hf_weights.hpp"
#include "tessera/tools/staged_folder.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxJsonBytes = 64 << 20;

// Weights only from safetensors: a pickle (pytorch_model.bin, *.pt) can run code when it is loaded.
void refuse_pickles(const fs::path& folder) {
  std::error_code ec;
  for (const char* name : {"pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth",
                           "model.ckpt", "tf_model.h5", "flax_model.msgpack"})
    if (fs::exists(folder / name, ec))
      throw FormatError(fmt::format("{} holds {} but no model.safetensors: import reads safetensors only (a pickled "
                                    "PyTorch file can run code when it is opened); convert it to safetensors first "
                                    "with a tool you trust",
                                    folder.string(), (folder / name).string()));
  throw FormatError(fmt::format("{} has no model.safetensors (nor a sharded model.safetensors.index.json)",
                                folder.string()));
}

// A tensor as f32; MXFP4 quantized weights' bytes (gpt_oss's `…_blocks` and `…_scales`, u8) stay
// as they are for the weight mapping to dequantize.
Tensor to_f32(Tensor t, const std::string& file, const std::string& name) {
  if (t.dtype() == DType::f32) return t;
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (t.dtype() == DType::u8 && (ends_with("_blocks") || ends_with("_scales"))) return t;
  if (t.dtype() != DType::bf16 && t.dtype() != DType::f16 && t.dtype() != DType::f64)
    throw FormatError(fmt::format("{}: tensor {} is {}, expected a floating-point type (f32, bf16, f16)", file,
                                  quote_untrusted(name), dtype_name(t.dtype())));
  Tensor out = Tensor::empty(t.shape());
  if (t.dtype() == DType::f64) {
    const double* src = t.data<double>();
    float* dst = out.data<float>();
    for (std::int64_t i = 0; i < t.numel(); ++i) dst[i] = static_cast<float>(src[i]);
  } else {
    ops::cast(t, out);
  }
  return out;
}

// model.safetensors, or the shards model.safetensors.index.json's weight_map names.
std::map<std::string, Tensor> read_hf_weights(const fs::path& folder, std::string& where) {
  std::error_code ec;
  std::map<std::string, Tensor> all;
  if (fs::exists(folder / "model.safetensors", ec)) {
    where = (folder / "model.safetensors").string();
    for (auto& [name, t] : load_safetensors(folder / "model.safetensors").tensors)
      all[name] = to_f32(std::move(t), where, name);
    return all;
  }
  const fs::path index = folder / "model.safetensors.index.json";
  if (!fs::exists(index, ec)) refuse_pickles(folder);
  where = index.string();
  const nlohmann::json j =
      detail::parse_untrusted_json(read_whole_file(index, "safetensors index", kMaxJsonBytes), index.string());
  if (!j.is_object() || !j.contains("weight_map") || !j.at("weight_map").is_object())
    throw FormatError(fmt::format("{}: no 'weight_map' object", index.string()));
  std::map<std::string, std::set<std::string>> by_file;
  for (auto& [name, file] : j.at("weight_map").items()) {
    const std::string f = file.is_string() ? file.get<std::string>() : "";
    if (f.empty() || fs::path(f).filename() != f || f == "." || f == "..")
      throw FormatError(fmt::format("{}: weight_map names {} for tensor {}, not a file in the folder", index.string(),
                                    detail::describe_json(file), quote_untrusted(name)));
    by_file[f].insert(name);
  }
  for (const auto& [file, names] : by_file) {
    const fs::path path = folder / file;
    if (!fs::is_regular_file(path, ec))
      throw FormatError(fmt::format("{}: shard {} is missing ({} names it for {} tensors)", path.string(), file,
                                    index.string(), names.size()));
    SafetensorsFile shard = load_safetensors(path);
    for (const std::string& name : names) {
      auto it = shard.tensors.find(name);
      if (it == shard.tensors.end())
        throw FormatError(fmt::format("{}: no tensor {}, which {} places there", path.string(), quote_untrusted(name),
                                      index.string()));
      all[name] = to_f32(std::move(it->second), path.string(), name);
    }
  }
  return all;
}

}  // namespace

HfImportResult import_hf(const fs::path& folder, const fs::path& out) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw ConfigError(fmt::format("{} is not a folder (a Hugging Face model folder with config.json and "
                                  "model.safetensors)",
                                  folder.string()));
  const fs::path config_path = folder / "config.json";
  const std::string config_text = read_whole_file(config_path, "Hugging Face config", kMaxJsonBytes);
  const nlohmann::json config_json = detail::parse_untrusted_json(config_text, config_path.string());
  // BERT (megatron-bert) or a GPT of one of the architectures parse_hf_config reads.
  const bool bert = config_json.is_object() && config_json.contains("model_type") &&
                    config_json.at("model_type") == kHfBertModelType;
  HfGptShape shape;
  HfBertShape bert_shape;
  if (bert)
    bert_shape = parse_hf_bert_config(config_text, config_path.string());
  else
    shape = parse_hf_config(config_text, config_path.string());
  const std::int64_t config_vocab = bert ? bert_shape.vocab : shape.vocab;
  if (!fs::exists(folder / "model.safetensors", ec) && !fs::exists(folder / "model.safetensors.index.json", ec))
    refuse_pickles(folder);
  StagedFolder staged(out, "the import folder");

  const ImportedTokenizer tok = import_hf_tokenizer(folder, config_text, staged.path());
  const Config tokenizer_config = Config::from_string(tok.toml_absolute, (staged.path() / "config.toml").string());
  const std::int64_t vocab = build_tokenizer(tokenizer_config)->vocab_size();
  if (config_vocab < vocab)
    throw FormatError(fmt::format("{}: 'vocab_size' {} is smaller than the tokenizer's {} tokens", config_path.string(),
                                  config_vocab, vocab));

  std::string where;
  std::map<std::string, Tensor> hf_tensors = read_hf_weights(folder, where);
  // A megatron-bert file with the sentence-order head is MegatronBertForPreTraining's.
  if (bert) bert_shape.binary_head = hf_tensors.count("cls.seq_relationship.weight") > 0;
  std::map<std::string, Tensor> tensors = bert ? tessera_bert_tensors_from_hf(bert_shape, std::move(hf_tensors), where)
                                               : tessera_tensors_from_hf(shape, std::move(hf_tensors), where);
  const std::string model_toml = bert ? tessera_bert_model_toml(bert_shape) : tessera_model_toml(shape);
  const std::string architecture = bert ? std::string(kHfBertModelType) : shape.architecture;
  if (config_vocab > vocab) {
    // Padding rows (Megatron-style vocabularies) beyond the tokenizer's tokens: Tessera pads itself.
    log_warn("{}: vocab_size {} is larger than the tokenizer's {} tokens; the {} rows past them are dropped",
             config_path.string(), config_vocab, vocab, config_vocab - vocab);
    for (const char* name : {"embedding.word_embeddings.weight", "output_layer.weight", "lm_head.bias"})
      if (auto it = tensors.find(name); it != tensors.end()) it->second = it->second.rows(0, vocab).clone();
  }
  NamedTensors named(tensors.begin(), tensors.end());
  save_safetensors(staged.path() / "model.safetensors", named, {{"format", "tessera"}, {"source", folder.string()}});
  write_file_atomically(staged.path() / "config.toml",
                        fmt::format("# Imported from the Hugging Face {} model {}\n{}\n{}", architecture,
                                    folder.string(), model_toml, tok.toml));

  // What generate does with the folder: every parameter there with its shape, nothing else.
  const SavedModel saved = open_saved_model(staged.path());
  auto model = build_model(saved.config, build_tokenizer(saved.config)->vocab_size(), 0);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  load_saved_weights(saved, params);
  staged.commit();
  return {architecture, tok.plugin, named.size()};
}

}  // namespace tessera
