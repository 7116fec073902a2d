// `tessera preprocess`: text files, folders of source files or JSONL → a Megatron indexed dataset.
//
//   tessera preprocess --input corpus.jsonl --json-key text --tokenizer gpt2_bpe
//       --vocab-file vocab.json --merges-file merges.txt --output-prefix data/corpus --workers 8
//   tessera preprocess --input src/ --include-ext .py,.pyi --tokenizer byte --output-prefix data/code
//   tessera preprocess --input corpus.jsonl --json-key text --tokenizer-type BertWordPieceLowerCase
//       --vocab-file vocab.txt --split-sentences --output-prefix data/bert
//
// Output: exactly <output-prefix>.bin and <output-prefix>.idx (Megatron's preprocess_data.py would
// write <prefix>_<key>_document.*; give Megatron <output-prefix> as its data path). See
// tessera/tools/preprocess.hpp for what a document is, and docs/preprocess.md.
#include <algorithm>
#include <filesystem>
#include <optional>
#include <thread>

#include "command.hpp"
#include "plugin_defaults.hpp"
#include "sentence_splitter.hpp"
#include "tessera/config.hpp"
#include "tessera/data/indexed_dataset.hpp"
#include "tessera/tools/preprocess.hpp"
#include "tessera/tools/progress_bar.hpp"
#include "tessera/logging.hpp"
#include "tessera/quote.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/train/components.hpp"

namespace tessera::app {
namespace {

struct PreprocessArgs {
  PreprocessOptions options;
  std::string tokenizer = kDefaultTokenizer;
  std::string vocab_file, merges_file, tokenizer_file, tokenizer_model, eod_token;
  std::optional<bool> add_bos;  // sentencepiece's, set by --tokenizer-type Llama2Tokenizer
  // sentencepiece's Megatron-LM special tokens, set by --tokenizer-type SentencePieceTokenizer
  std::optional<bool> added_special_tokens;
  bool parse_special_tokens = false;
  // WordPiece (bert_wordpiece) keys, written to [tokenizer] only when given.
  std::optional<bool> lower_case, strip_accents;
  std::optional<std::int64_t> vocab_extra_ids;
  std::optional<std::int64_t> vocab_size;  // the null tokenizer's (NullTokenizer)
  bool lower_case_flag = true, strip_accents_flag = true;  // CLI11's targets for the two flags
  std::int64_t vocab_extra_ids_flag = 0;
  bool split_sentences = false;
  bool append_eod = false, no_append_eod = false;
  bool no_progress = false;
};

// Megatron-LM's --tokenizer-type names → (plugin, lower_case it implies, add_bos and
// added_special_tokens it implies).
struct MegatronTokenizerType {
  const char* name;
  const char* plugin;
  std::optional<bool> lower_case;
  std::optional<bool> add_bos = std::nullopt;
  std::optional<bool> added_special_tokens = std::nullopt;
};
constexpr MegatronTokenizerType kMegatronTypes[] = {
    {"BertWordPieceLowerCase", "bert_wordpiece", true},
    {"BertWordPieceCase", "bert_wordpiece", false},
    {"GPT2BPETokenizer", "gpt2_bpe", std::nullopt},
    {"TokenizerFromFile", "hf_tokenizer", std::nullopt},
    {"NullTokenizer", "null", std::nullopt},
    // SentencePiece models: Llama2Tokenizer puts the bos id before each document;
    // SentencePieceTokenizer adds <CLS>, <SEP>, <EOD>, <MASK>… (BERT, T5).
    {"GPTSentencePieceTokenizer", "sentencepiece", std::nullopt},
    {"Llama2Tokenizer", "sentencepiece", std::nullopt, true},
    {"SentencePieceTokenizer", "sentencepiece", std::nullopt, std::nullopt, true},
    // Megatron-Core's HuggingFaceTokenizer: --tokenizer-model names a folder; its tokenizer.json.
    {"HuggingFaceTokenizer", "hf_tokenizer", std::nullopt},
};

// HuggingFaceTokenizer's --tokenizer-model: a Hugging Face model folder (AutoTokenizer's
// pretrained_model_name_or_path) whose tokenizer.json hf_tokenizer reads, or that file itself.
void resolve_hf_model_folder(PreprocessArgs& a) {
  namespace fs = std::filesystem;
  if (a.tokenizer_model.empty()) return;
  if (!a.tokenizer_file.empty())
    throw ConfigError("preprocess: --tokenizer-type HuggingFaceTokenizer takes --tokenizer-model (a model folder) or "
                      "--tokenizer-file (its tokenizer.json), not both");
  std::error_code ec;
  const fs::path model = a.tokenizer_model;
  if (fs::is_directory(model, ec)) {
    if (!fs::is_regular_file(model / "tokenizer.json", ec))
      throw ConfigError(fmt::format("preprocess: --tokenizer-model {} has no tokenizer.json: Tessera reads a Hugging "
                                    "Face fast tokenizer's file (a hub name must be downloaded first, e.g. with "
                                    "huggingface-cli download)",
                                    quote_untrusted(a.tokenizer_model)));
    a.tokenizer_file = (model / "tokenizer.json").string();
  } else if (fs::is_regular_file(model, ec)) {
    a.tokenizer_file = a.tokenizer_model;
  } else {
    throw ConfigError(fmt::format("preprocess: --tokenizer-model {} is neither a folder nor a file (a hub name must be "
                                  "downloaded first: Tessera reads the folder's tokenizer.json)",
                                  quote_untrusted(a.tokenizer_model)));
  }
  a.tokenizer_model.clear();
}

// Resolves a Megatron tokenizer type into the plugin name and lower_case; other names are plugins.
void resolve_tokenizer_type(PreprocessArgs& a) {
  for (const auto& t : kMegatronTypes) {
    if (a.tokenizer != t.name) continue;
    if (t.lower_case && a.lower_case && *a.lower_case != *t.lower_case)
      throw ConfigError(fmt::format("preprocess: --tokenizer-type {} and --{}lower-case contradict each other", t.name,
                                    *a.lower_case ? "" : "no-"));
    a.tokenizer = t.plugin;
    if (std::string(t.name) == "HuggingFaceTokenizer") resolve_hf_model_folder(a);
    if (t.lower_case) a.lower_case = t.lower_case;
    if (t.add_bos) a.add_bos = t.add_bos;
    if (t.added_special_tokens) a.added_special_tokens = t.added_special_tokens;
    return;
  }
}

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
    else out += c;
  }
  return out + "\"";
}

// The tokenizer options as a [tokenizer] section, so that the plugin reads and checks them exactly
// as it reads a training config's (a flag its plugin does not take is an unknown key).
Config tokenizer_config(const PreprocessArgs& a) {
  std::string text = "[tokenizer]\nplugin = " + toml_string(a.tokenizer) + "\n";
  if (!a.vocab_file.empty()) text += "vocab_file = " + toml_string(a.vocab_file) + "\n";
  if (!a.merges_file.empty()) text += "merges_file = " + toml_string(a.merges_file) + "\n";
  if (!a.tokenizer_file.empty()) text += "tokenizer_file = " + toml_string(a.tokenizer_file) + "\n";
  if (!a.tokenizer_model.empty()) text += "tokenizer_model = " + toml_string(a.tokenizer_model) + "\n";
  if (a.add_bos) text += fmt::format("add_bos = {}\n", *a.add_bos);
  if (a.added_special_tokens) text += fmt::format("added_special_tokens = {}\n", *a.added_special_tokens);
  if (a.parse_special_tokens) text += "parse_special_tokens = true\n";
  if (!a.eod_token.empty()) text += "eod_token = " + toml_string(a.eod_token) + "\n";
  if (a.lower_case) text += fmt::format("lower_case = {}\n", *a.lower_case);
  if (a.strip_accents) text += fmt::format("strip_accents = {}\n", *a.strip_accents);
  if (a.vocab_extra_ids) text += fmt::format("vocab_extra_ids = {}\n", *a.vocab_extra_ids);
  if (a.vocab_size) text += fmt::format("vocab_size = {}\n", *a.vocab_size);
  return Config::from_string(text, "the flags --tokenizer, --vocab-file, --merges-file, --tokenizer-file, "
                                   "--tokenizer-model, --parse-special-tokens, --eod-token, "
                                   "--[no-]lower-case, --[no-]strip-accents, --vocab-extra-ids, --vocab-size");
}

std::function<int()> setup_preprocess(CLI::App& sub) {
  auto args = std::make_shared<PreprocessArgs>();
  auto& o = args->options;
  o.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  sub.add_option("-i,--input", o.inputs,
                 "Input files or folders (folders are walked recursively, in sorted order)")
      ->required()
      ->expected(1, -1);
  sub.add_option("--include-ext", o.include_ext,
                 "For folders: only files ending in these extensions, e.g. .py,.md (default: all files)")
      ->delimiter(',');
  sub.add_option("--json-key", o.json_key,
                 "Inputs are JSONL; each line's string under this key is one document (e.g. text)");
  sub.add_option("--tokenizer,--tokenizer-type", args->tokenizer,
                 "Tokenizer plugin, e.g. gpt2_bpe, hf_tokenizer, bert_wordpiece or byte (`tessera plugins` lists them); "
                 "Megatron-LM's BertWordPieceLowerCase, BertWordPieceCase, GPT2BPETokenizer, TokenizerFromFile, "
                 "NullTokenizer, GPTSentencePieceTokenizer, Llama2Tokenizer (sentencepiece, add_bos), "
                 "SentencePieceTokenizer (sentencepiece, added_special_tokens) and HuggingFaceTokenizer (hf_tokenizer "
                 "with --tokenizer-model a model folder) are accepted too")
      ->capture_default_str();
  sub.add_option("--vocab-file", args->vocab_file,
                 "[tokenizer] vocab_file (gpt2_bpe: vocab.json or encoder.json; bert_wordpiece: vocab.txt)");
  sub.add_option("--merges-file", args->merges_file, "[tokenizer] merges_file (gpt2_bpe: merges.txt or vocab.bpe)");
  sub.add_option("--tokenizer-file", args->tokenizer_file,
                 "[tokenizer] tokenizer_file (hf_tokenizer: a Hugging Face tokenizer.json)");
  sub.add_option("--tokenizer-model", args->tokenizer_model,
                 "[tokenizer] tokenizer_model (sentencepiece: a SentencePiece tokenizer.model)");
  sub.add_option("--eod-token", args->eod_token,
                 "[tokenizer] eod_token (hf_tokenizer: the end-of-document token's text, e.g. <|end_of_text|>)");
  sub.add_option("--vocab-size", args->vocab_size,
                 "[tokenizer] vocab_size (null: Megatron-LM's NullTokenizer --vocab-size; the input is ids written as "
                 "numbers, and the end-of-document id is this number)");
  sub.add_option("-o,--output-prefix", o.output_prefix,
                 "Writes <prefix>.bin and <prefix>.idx exactly (no _<key>_document suffix)")
      ->required();
  sub.add_flag("--no-append-eod", args->no_append_eod, "Do not append the end-of-document token to each document");
  sub.add_flag("--parse-special-tokens", args->parse_special_tokens,
               "Turn special-token text in the input (<|endoftext|>) into its id; by default it is ordinary text, "
               "as in Megatron-LM");
  auto* lower = sub.add_flag("--lower-case,!--no-lower-case", args->lower_case_flag,
                             "bert_wordpiece: [tokenizer] lower_case (default: on)");
  auto* strip = sub.add_flag("--strip-accents,!--no-strip-accents", args->strip_accents_flag,
                             "bert_wordpiece: [tokenizer] strip_accents (default: as lower_case)");
  auto* extra = sub.add_option("--vocab-extra-ids", args->vocab_extra_ids_flag,
                               "bert_wordpiece and sentencepiece with SentencePieceTokenizer: [tokenizer] "
                               "vocab_extra_ids, T5's <extra_id_N> sentinels appended to the vocabulary (default 0)")
                    ->check(CLI::NonNegativeNumber);
  sub.add_flag("--split-sentences", args->split_sentences,
               "One item per sentence, documents in the index's doc_idx (for BERT and T5 data; see docs/preprocess.md "
               "for the splitter's rules); implies --no-append-eod unless --append-eod is given");
  sub.add_flag("--append-eod", args->append_eod,
               "Append the end-of-document token to each document (the default without --split-sentences)");
  sub.add_flag("--strict-utf8", o.strict_utf8,
               "Invalid UTF-8 in a plain-text input is an error (default: a warning per file; the bytes are kept)");
  sub.add_option("--workers", o.workers, "Tokenizer threads (output is identical for any number)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  sub.add_flag("--no-progress", args->no_progress, "No progress bar");

  return [args, lower, strip, extra]() {
    auto& opt = args->options;
    // Given twice (--lower-case --no-lower-case), a flag is an error rather than the last one winning.
    for (const CLI::Option* flag : {lower, strip})
      if (flag->count() > 1)
        throw ConfigError(fmt::format("preprocess: {} given {} times (with its --no- form, they contradict each other); "
                                      "give it once",
                                      flag->get_name(), flag->count()));
    if (lower->count() > 0) args->lower_case = args->lower_case_flag;
    if (strip->count() > 0) args->strip_accents = args->strip_accents_flag;
    if (extra->count() > 0) args->vocab_extra_ids = args->vocab_extra_ids_flag;
    if (args->append_eod && args->no_append_eod)
      throw ConfigError("preprocess: --append-eod and --no-append-eod contradict each other");
    resolve_tokenizer_type(*args);
    // Megatron appends no EOD unless asked (--append-eod); Tessera appends one by default, except to
    // sentence-level data, whose BERT and T5 samples get their [CLS]/[SEP] from the dataset.
    opt.append_eod = args->append_eod || (!args->no_append_eod && !args->split_sentences);
    if (args->split_sentences) opt.split_sentences = [](std::string_view text) { return split_sentences(text); };
    opt.progress = !args->no_progress;
    for (auto& ext : opt.include_ext)
      if (!ext.empty() && ext.front() != '.') ext.insert(ext.begin(), '.');
    const Config config = tokenizer_config(*args);
    const auto tokenizer = build_tokenizer(config);
    config.check_no_unknown_keys();
    if (tokenizer->name() == "bert_wordpiece" && !args->split_sentences)  // Megatron's warning, same words
      log_warn("preprocess: Bert tokenizer detected, are you sure you don't want to split sentences? (BERT and T5 "
               "data read sentence-level datasets: add --split-sentences)");
    // The EOD id only when documents get one: a tokenizer without one (hf_tokenizer's eod() says so) still
    // serves --no-append-eod and sentence-level data.
    log_info("preprocess: tokenizer {} (vocab {}, {}), {} worker(s), {} input(s){}{}", tokenizer->name(),
             tokenizer->vocab_size(),
             opt.append_eod ? fmt::format("EOD {}", tokenizer->eod()) : std::string("no EOD appended"), opt.workers,
             opt.inputs.size(),
             opt.json_key.empty() ? std::string(", one document per file") : fmt::format(", JSONL key \"{}\"", opt.json_key),
             args->split_sentences ? ", one item per sentence" : "");
    const PreprocessStats s = preprocess(*tokenizer, opt);
    const double secs = std::max(s.seconds, 1e-9);
    log_info("preprocess: {} files, {} documents ({} empty skipped){}, {} tokens from {:.1f} MB in {:.2f} s", s.files,
             s.documents, s.empty_skipped, args->split_sentences ? fmt::format(", {} sentences", s.sequences) : "",
             s.tokens, static_cast<double>(s.input_bytes) / 1e6, s.seconds);
    log_info("preprocess: {} documents/s, {} tokens/s, {:.1f} MB/s", human_count(static_cast<double>(s.documents) / secs),
             human_count(static_cast<double>(s.tokens) / secs), static_cast<double>(s.input_bytes) / 1e6 / secs);
    log_info("preprocess: wrote {}.bin and {}.idx ({} tokens)", opt.output_prefix, opt.output_prefix,
             index_dtype_name(index_dtype_for_vocab(tokenizer->vocab_size())));
    if (s.files_invalid_utf8 > 0)
      log_warn("preprocess: {} file(s) held invalid UTF-8 (kept as bytes; see the warnings above)", s.files_invalid_utf8);
    if (s.documents == 0) log_warn("preprocess: no documents were written (empty inputs, or no file matched --include-ext)");
    return 0;
  };
}

const RegisterCommand registered{{"preprocess", setup_preprocess,
                                  "Tokenize text files, source folders or JSONL into a Megatron .bin/.idx dataset"}};

}  // namespace
}  // namespace tessera::app
