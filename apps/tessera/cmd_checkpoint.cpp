// tessera checkpoint export --to hf CHECKPOINT OUT/ and tessera checkpoint import --from hf HF_FOLDER
// OUT/: Hugging Face model folders (gpt2, gpt_bigcode, llama, mistral, qwen2) from Tessera's saved models of any
// layout and back (tools/hf_export.hpp, tools/hf_import.hpp). tessera checkpoint reshard CHECKPOINT
// --tp N --pp M [--dp K] OUT/: a resumable checkpoint for another layout (train/checkpoint_reshard.hpp).
// docs/checkpoints.md. OUT/ is written completely or not at all, and must not exist or be empty.
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/tools/hf_export.hpp"
#include "tessera/tools/hf_import.hpp"
#include "tessera/tools/staged_folder.hpp"
#include "tessera/train/checkpoint_reshard.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera::app {
namespace {

struct CheckpointArgs {
  std::string to = "hf", from = "hf", architecture, input, output, dtype = "f32";
  // reshard: the new layout; unset sizes keep the checkpoint's (vpp, the split rank and uneven stages
  // only while pp stays the same: they are counted in pipeline stages).
  std::optional<int> tp, pp, dp, vpp, split_rank, ep;
  std::optional<std::int64_t> first_stage_layers, last_stage_layers;
  std::optional<bool> embedding_in_split, loss_in_split;
  std::optional<std::int64_t> bucket_size;
  std::string optimizer;
  std::optional<bool> sequence_parallel;
  std::vector<std::string> overrides;
};

int run_reshard(const CheckpointArgs& a) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::path(a.input) / "metadata.json", ec) && !fs::exists(fs::path(a.input) / kLatestCheckpointFile, ec) &&
      fs::is_regular_file(fs::path(a.input) / "model.safetensors", ec))
    throw ConfigError(fmt::format("CHECKPOINT {} holds final weights only (model.safetensors, no resumable checkpoint): "
                                  "they need no resharding — checkpoint.load of them trains in any layout from "
                                  "iteration 1 with a fresh optimizer (docs/checkpoints.md)",
                                  a.input));
  const CheckpointFolder source = open_checkpoint(a.input, "CHECKPOINT " + a.input);
  const SavedModel saved = open_saved_model(source.dir);
  const CheckpointMetadata& m = source.meta;
  ReshardLayout to;
  to.tp = a.tp.value_or(static_cast<int>(m.tensor_parallel));
  to.pp = a.pp.value_or(static_cast<int>(m.pipeline_parallel));
  to.dp = a.dp.value_or(static_cast<int>(m.data_parallel));
  to.ep = a.ep.value_or(static_cast<int>(m.expert_parallel));
  const bool same_pp = to.pp == m.pipeline_parallel;
  to.vpp = a.vpp.value_or(same_pp ? static_cast<int>(m.virtual_pipeline) : 1);
  to.pipeline_split_rank =
      a.split_rank.value_or(same_pp ? static_cast<int>(read_parallel_sizes(saved.config).pipeline_split_rank) : 0);
  to.first_stage_layers = a.first_stage_layers.value_or(same_pp ? m.first_stage_layers : 0);
  to.last_stage_layers = a.last_stage_layers.value_or(same_pp ? m.last_stage_layers : 0);
  to.embedding_in_split = a.embedding_in_split.value_or(same_pp && m.embedding_in_split);
  to.loss_in_split = a.loss_in_split.value_or(same_pp && m.loss_in_split);
  to.bucket_size = a.bucket_size.value_or(m.bucket_size);
  to.optimizer = a.optimizer;
  to.sequence_parallel = a.sequence_parallel;
  StagedFolder out(a.output, "OUT");
  ReshardResult r;
  try {
    r = reshard_checkpoint(source, with_plugin_defaults(saved.config), to, a.overrides, out.path());
  } catch (const ConfigError& e) {  // the parallel.* keys it names are this command's options
    throw ConfigError(fmt::format("{} (reshard sets parallel.* with --tp, --pp, --dp, --ep, --vpp, --split-rank, "
                                  "--first-stage-layers, --last-stage-layers, --account-for-embedding, --account-for-loss, "
                                  "--sequence-parallel and --bucket-size, "
                                  "[model] keys with --set)",
                                  e.what()));
  }
  out.commit();
  for (const std::string& name : r.padding_changed)
    log_warn("{}: the padded vocabulary differs between the layouts (make_vocab_size_divisible_by × tp): rows both "
             "have are kept, the new layout's extra padding rows are zero, so the loss (whose softmax includes the "
             "padding, as Megatron-LM's) is not exactly the old layout's; --set model.make_vocab_size_divisible_by=… "
             "keeps it",
             name);
  log_info("resharded checkpoint {} (iteration {}, tp {} · pp {} · dp {}) to tp {} · pp {} · dp {}{} in {}: resume "
           "with checkpoint.load={} and these parallel sizes",
           source.dir.string(), m.iteration, m.tensor_parallel, m.pipeline_parallel, m.data_parallel, to.tp, to.pp,
           to.dp,
           (to.vpp > 1 ? fmt::format(" (vpp {})", to.vpp) : "") + (to.ep > 1 ? fmt::format(" (ep {})", to.ep) : ""),
           a.output, a.output);
  if (r.meta.optimizer != m.optimizer)
    log_info("the optimizer state is now {}'s: resume with optimizer.plugin = \"{}\"", r.meta.optimizer, r.meta.optimizer);
  return 0;
}

int run_export(const CheckpointArgs& a) {
  SavedModel saved = open_saved_model(a.input);
  saved.config = with_plugin_defaults(saved.config);
  const DType dtype = a.dtype == "bf16" ? DType::bf16 : a.dtype == "f16" ? DType::f16 : DType::f32;
  const HfExportResult r = export_hf(saved, a.output, a.architecture, dtype);
  log_info("exported {} as a Hugging Face {} model ({} tensors, {}) to {}", saved.describe(), r.architecture, r.tensors,
           a.dtype, a.output);
  if (r.mtp_tensors_left_out > 0)
    log_info("left out the {} tensors of the multi-token prediction depths (mtp.layers.*): {} has none; the exported "
             "model predicts the next token as the saved one does",
             r.mtp_tensors_left_out, r.architecture);
  return 0;
}

int run_import(const CheckpointArgs& a) {
  const HfImportResult r = import_hf(a.input, a.output);
  log_info("imported the Hugging Face {} model {} ({} tensors, tokenizer {}) to {}: `tessera generate --load {}`; "
           "train from it with --set checkpoint.load={}",
           r.architecture, a.input, r.tensors, r.tokenizer_plugin, a.output, a.output, a.output);
  return 0;
}

RegisterCommand reg{
    {"checkpoint",
     [](CLI::App& sub) -> std::function<int()> {
       auto a = std::make_shared<CheckpointArgs>();
       sub.require_subcommand(1);
       CLI::App* exp = sub.add_subcommand("export", "write a saved model as a Hugging Face model folder");
       exp->add_option("--to", a->to, "the format to write: hf")->capture_default_str()->check(CLI::IsMember({"hf"}));
       exp->add_option("--architecture", a->architecture,
                       "gpt2, gpt_bigcode, llama, mistral, qwen2, qwen3, phi3, starcoder2, smollm3, mixtral, qwen2_moe, "
                       "qwen3_moe, gpt_oss or glm4_moe (default: gpt_oss for quick_geglu, smollm3 for no_rope_freq, "
                       "glm4_moe for experts with sigmoid scores, starcoder2 for rope with LayerNorm and a GELU MLP, mistral for a "
                       "Llama-style model with window_size, llama for one without, qwen2 for one with add_qkv_bias, qwen3 for one with "
                       "qk_layernorm, phi3 for one with rotary_percent < 1; with num_experts qwen3_moe with qk_layernorm, qwen2_moe with add_qkv_bias or "
                       "a shared expert, else mixtral; gpt2 for multi-head attention, gpt_bigcode for multi-query); "
                       "a bert model exports as megatron-bert")
           ->check(CLI::IsMember({"gpt2", "gpt_bigcode", "llama", "mistral", "qwen2", "qwen3", "phi3", "starcoder2",
                                  "smollm3", "mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss", "glm4_moe",
                                  "megatron-bert"}));
       exp->add_option("--dtype", a->dtype,
                       "the weights' type in model.safetensors: f32, or bf16 / f16 rounded to nearest even (config.json's "
                       "torch_dtype says which)")
           ->capture_default_str()
           ->check(CLI::IsMember({"f32", "bf16", "f16"}));
       exp->add_option("CHECKPOINT", a->input,
                       "a saved model: a [checkpoint] save folder (final weights, else its latest checkpoint) or a "
                       "checkpoint folder iter_XXXXXXX of any layout")
           ->required();
       exp->add_option("OUT", a->output, "the Hugging Face folder to create (new or empty)")->required();
       CLI::App* imp = sub.add_subcommand("import", "make a Tessera saved model from a Hugging Face model folder");
       imp->add_option("--from", a->from, "the format to read: hf")->capture_default_str()->check(CLI::IsMember({"hf"}));
       imp->add_option("HF_FOLDER", a->input, "config.json, model.safetensors (or its shards) and tokenizer files")
           ->required();
       imp->add_option("OUT", a->output,
                       "the saved-model folder to create (new or empty): config.toml, model.safetensors, tokenizer/")
           ->required();
       CLI::App* res = sub.add_subcommand("reshard", "rewrite a resumable checkpoint for another parallel layout, "
                                                     "optimizer state included");
       res->add_option("CHECKPOINT", a->input,
                       "a checkpoint folder iter_XXXXXXX, or a save folder (its latest checkpoint)")
           ->required();
       res->add_option("OUT", a->output,
                       "the save folder to create (new or empty): iter_XXXXXXX/ and latest_checkpointed_iteration.txt")
           ->required();
       res->add_option("--tp", a->tp, "tensor_model_parallel_size (default: the checkpoint's)")->check(CLI::Range(1, 4096));
       res->add_option("--pp", a->pp, "pipeline_model_parallel_size (default: the checkpoint's)")->check(CLI::Range(1, 4096));
       res->add_option("--dp", a->dp, "data-parallel size (default: the checkpoint's)")->check(CLI::Range(1, 1 << 20));
       res->add_option("--ep", a->ep,
                       "expert_model_parallel_size, the experts split over ep data-parallel ranks; must divide dp "
                       "(default: the checkpoint's)")
           ->check(CLI::Range(1, 1 << 16));
       res->add_option("--vpp", a->vpp,
                       "virtual_pipeline_model_parallel_size (default: the checkpoint's if pp stays, else 1)")
           ->check(CLI::Range(1, 64));
       res->add_option("--split-rank", a->split_rank,
                       "pipeline_model_parallel_split_rank, T5's first decoder stage (default: the checkpoint's if pp "
                       "stays, else none)")
           ->check(CLI::Range(0, 4096));
       res->add_option("--first-stage-layers", a->first_stage_layers,
                       "parallel.decoder_first_pipeline_num_layers, the first stage's layers; 0: an even share "
                       "(default: the checkpoint's if pp stays, else 0)")
           ->check(CLI::Range(std::int64_t{0}, std::int64_t{100000}));
       res->add_option("--last-stage-layers", a->last_stage_layers,
                       "parallel.decoder_last_pipeline_num_layers, the last stage's layers; 0: an even share "
                       "(default: the checkpoint's if pp stays, else 0)")
           ->check(CLI::Range(std::int64_t{0}, std::int64_t{100000}));
       res->add_option("--account-for-embedding", a->embedding_in_split,
                       "true or false: parallel.account_for_embedding_in_pipeline_split, the embedding counted as a "
                       "layer of the first stage (default: the checkpoint's if pp stays, else false)");
       res->add_option("--account-for-loss", a->loss_in_split,
                       "true or false: parallel.account_for_loss_in_pipeline_split, the loss counted as a layer of "
                       "the last stage (default: the checkpoint's if pp stays, else false)");
       res->add_option("--bucket-size", a->bucket_size,
                       "parallel.bucket_size of the new layout: distributed_adam's shards follow it (default: the "
                       "checkpoint's)")
           ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
       res->add_option("--sequence-parallel", a->sequence_parallel,
                       "true or false: parallel.sequence_parallel of the new layout (default: the checkpoint's)");
       res->add_option("--optimizer", a->optimizer,
                       "another optimizer plugin with the same per-parameter state, e.g. distributed_adam for an "
                       "adam checkpoint (default: the checkpoint's)");
       res->add_option("--set", a->overrides,
                       "model.key=value for the new layout's model, e.g. model.make_vocab_size_divisible_by=64 to "
                       "keep the padded vocabulary; repeatable ([model] keys only)");
       return [a, exp, res] { return exp->parsed() ? run_export(*a) : res->parsed() ? run_reshard(*a) : run_import(*a); };
     },
     "convert saved models: export to / import from Hugging Face folders, reshard checkpoints"}};

}  // namespace
}  // namespace tessera::app
