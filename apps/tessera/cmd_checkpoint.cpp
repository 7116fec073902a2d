// tessera checkpoint export --to hf CHECKPOINT OUT/ and tessera checkpoint import --from hf HF_FOLDER
// OUT/: Hugging Face model folders (gpt2, gpt_bigcode, llama) from Tessera's saved models of any
// layout and back (tools/hf_export.hpp, tools/hf_import.hpp; docs/checkpoints.md). OUT/ is written
// completely or not at all, and must not exist or be empty.
#include <fmt/format.h>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "tessera/logging.hpp"
#include "tessera/tools/hf_export.hpp"
#include "tessera/tools/hf_import.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera::app {
namespace {

struct CheckpointArgs {
  std::string to = "hf", from = "hf", architecture, input, output;
};

int run_export(const CheckpointArgs& a) {
  SavedModel saved = open_saved_model(a.input);
  saved.config = with_plugin_defaults(saved.config);
  const HfExportResult r = export_hf(saved, a.output, a.architecture);
  log_info("exported {} as a Hugging Face {} model ({} tensors) to {}", saved.describe(), r.architecture, r.tensors,
           a.output);
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
                       "gpt2, gpt_bigcode or llama (default: llama for a Llama-style model, gpt2 for multi-head "
                       "attention, gpt_bigcode for multi-query)")
           ->check(CLI::IsMember({"gpt2", "gpt_bigcode", "llama"}));
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
       return [a, exp] { return exp->parsed() ? run_export(*a) : run_import(*a); };
     },
     "convert saved models: export to / import from Hugging Face folders"}};

}  // namespace
}  // namespace tessera::app
