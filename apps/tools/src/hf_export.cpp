#include "tessera/tools/hf_export.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/quote.hpp"
#include "tessera/tools/hf_bert.hpp"
#include "tessera/tools/hf_config.hpp"
#include "tessera/tools/hf_tokenizer_files.hpp"
#include "tessera/tools/hf_weights.hpp"
#include "tessera/tools/staged_folder.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/components.hpp"

namespace tessera {

namespace fs = std::filesystem;

HfExportResult export_hf(const SavedModel& saved, const fs::path& out, const std::string& architecture, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16 && dtype != DType::f16)
    throw ConfigError(fmt::format("export writes f32, bf16 or f16 weights, not {}", dtype_name(dtype)));
  const ConfigSection model_section = saved.config.section("model");
  const std::string plugin = model_section.get_string("plugin", "");
  if (plugin != "gpt" && plugin != "bert")
    throw ConfigError(fmt::format("{}: its model.plugin is {}, but export supports gpt and bert models only",
                                  saved.describe(), quote_untrusted(plugin)));
  const bool bert = plugin == "bert";
  if (bert && !architecture.empty() && architecture != kHfBertModelType)
    throw ConfigError(fmt::format("--architecture {}: a bert model exports as {} only", quote_untrusted(architecture),
                                  kHfBertModelType));
  if (!bert && architecture == kHfBertModelType)
    throw ConfigError(fmt::format("--architecture {}: {} is a gpt model; {} is for bert models", architecture,
                                  saved.describe(), kHfBertModelType));
  StagedFolder staged(out, "the export folder");
  auto tokenizer = build_tokenizer(saved.config);
  const std::int64_t vocab = tokenizer->vocab_size();
  const TransformerOptions o = bert ? read_transformer_options(model_section, vocab, 0, ParallelSizes{}, plugin)
                                    : read_gpt_style_options(model_section, vocab, 0, ParallelSizes{}, plugin);
  const char* torch_dtype = dtype == DType::bf16 ? "bfloat16" : dtype == DType::f16 ? "float16" : "float32";
  HfGptShape gpt;
  HfBertShape bert_shape;
  if (bert) {
    bert_shape = hf_bert_shape_for_export(o, model_section.get_bool("bert_binary_head", true), saved.config.source());
    bert_shape.bos = bert_shape.eos = tokenizer->eod();
    bert_shape.torch_dtype = torch_dtype;
  } else {
    gpt = hf_shape_for_export(o, architecture, saved.config.source());
    gpt.bos = gpt.eos = tokenizer->eod();
    gpt.torch_dtype = torch_dtype;
  }

  auto model = build_model(saved.config, vocab, 0);
  std::vector<Parameter*> params;
  model->collect_parameters(params);
  load_saved_weights(saved, params);  // any layout: shards joined, stages collected, values checked
  std::map<std::string, Tensor> tessera;
  std::size_t mtp_left_out = 0;
  for (const Parameter* p : params) {
    if (p->name.rfind("mtp.", 0) == 0) {  // GPT's multi-token prediction depths (docs/mtp.md)
      ++mtp_left_out;
      continue;
    }
    Tensor t = p->value.to(Device::cpu());
    if (p->unpadded_rows >= 0) t = t.rows(0, p->unpadded_rows).clone();  // the real vocabulary only
    tessera.emplace(p->name, std::move(t));
  }
  NamedTensors hf = bert ? hf_bert_tensors_from_tessera(bert_shape, tessera) : hf_tensors_from_tessera(gpt, tessera);
  if (dtype != DType::f32) {  // rounded to nearest even, as torch's .to(torch.bfloat16)
    for (auto& [name, t] : hf) {
      Tensor narrow = Tensor::empty(t.shape(), dtype);
      ops::cast(t, narrow);
      t = std::move(narrow);
    }
  }
  // transformers refuses a safetensors file without format "pt" in its metadata.
  save_safetensors(staged.path() / "model.safetensors", hf, {{"format", "pt"}});
  const HfTokenizerFiles files =
      write_hf_tokenizer_files(saved.config, *tokenizer, staged.path(), bert ? bert_shape.positions : gpt.positions);
  const std::map<std::string, std::string> extra{{kTesseraTokenizerKey, files.tessera_tokenizer_json}};
  write_file_atomically(staged.path() / "config.json",
                        bert ? hf_bert_config_json(bert_shape, extra) : hf_config_json(gpt, extra));
  staged.commit();
  return {bert ? std::string(kHfBertModelType) : gpt.architecture, hf.size(), mtp_left_out};
}

}  // namespace tessera
