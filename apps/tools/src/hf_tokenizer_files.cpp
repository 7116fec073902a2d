#include "tessera/tools/hf_tokenizer_files.hpp"

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hf_common.hpp"
#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"
#include "tessera/train/checkpoint.hpp"

namespace tessera {

namespace fs = std::filesystem;

namespace {

// HF's file names for the files Tessera's tokenizers read.
std::string hf_file_name(const std::string& plugin, const std::string& key, const std::string& own_name) {
  if (plugin == "gpt2_bpe" && key == "vocab_file") return "vocab.json";
  if (plugin == "gpt2_bpe" && key == "merges_file") return "merges.txt";
  if (plugin == "hf_tokenizer" && key == "tokenizer_file") return "tokenizer.json";
  if (plugin == "bert_wordpiece" && key == "vocab_file") return "vocab.txt";
  if (plugin == "sentencepiece" && key == "tokenizer_model") return "tokenizer.model";
  return own_name;
}

// A setting's TOML value as JSON (strings, booleans, numbers: what tokenizer plugins read).
nlohmann::json setting(const ConfigSection& s, const std::string& key) {
  if (s.is_string(key)) return s.get_string(key);
  try {
    return s.get_bool(key);
  } catch (const ConfigError&) {
  }
  try {
    return s.get_int(key);
  } catch (const ConfigError&) {
  }
  return s.get_float(key);
}

std::string toml_value(const nlohmann::json& v, const std::string& where) {
  if (v.is_string() || v.is_boolean() || v.is_number()) return v.dump();  // JSON strings are TOML basic strings
  throw FormatError(fmt::format("{}: a tokenizer setting is {}, expected a string, boolean or number", where,
                                detail::describe_json(v)));
}

bool plain_key(const std::string& k) {
  return !k.empty() && k.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
}

// The folder's tokenizer_config.json (an empty object without one).
nlohmann::json tokenizer_config(const fs::path& folder) {
  std::error_code ec;
  const fs::path path = folder / "tokenizer_config.json";
  if (!fs::is_regular_file(path, ec)) return nlohmann::json::object();
  const nlohmann::json tc = detail::parse_untrusted_json(read_whole_file(path, "tokenizer config", 1 << 24), path.string());
  if (!tc.is_object()) throw FormatError(fmt::format("{}: not a JSON object", path.string()));
  return tc;
}


}  // namespace

HfTokenizerFiles write_hf_tokenizer_files(const Config& config, const Tokenizer& tokenizer, const fs::path& folder,
                                          std::int64_t max_length) {
  const ConfigSection s = config.section("tokenizer");
  const std::string plugin = s.get_string("plugin", "");
  const std::vector<std::string> file_keys = tokenizer.file_keys();
  nlohmann::ordered_json settings = nlohmann::ordered_json::object(), files = nlohmann::ordered_json::object();
  for (const std::string& key : s.keys()) {
    if (key == "plugin" || std::find(file_keys.begin(), file_keys.end(), key) != file_keys.end()) continue;
    settings[key] = setting(s, key);
  }
  std::set<std::string> used{"config.json", "model.safetensors", "tokenizer_config.json"};
  for (const std::string& key : file_keys) {
    if (!s.is_string(key) || s.get_string(key).empty()) continue;
    const fs::path source = s.get_string(key);
    std::string name = hf_file_name(plugin, key, source.filename().string());
    while (!used.insert(name).second) name = "_" + name;
    fs::copy_file(source, folder / name);
    files[key] = name;
  }
  // What transformers' AutoTokenizer needs to pick a class for the files.
  nlohmann::ordered_json tc;
  if (plugin == "gpt2_bpe") tc["tokenizer_class"] = "GPT2Tokenizer";
  if (plugin == "hf_tokenizer") tc["tokenizer_class"] = "PreTrainedTokenizerFast";
  if (plugin == "sentencepiece" && !s.get_bool("added_special_tokens", false)) {
    // LlamaTokenizer reads tokenizer.model; BOS first as the plugin's add_bos says (Llama-2's, Mistral's).
    tc["tokenizer_class"] = "LlamaTokenizer";
    tc["add_bos_token"] = s.get_bool("add_bos", false);
    tc["add_eos_token"] = false;
  }
  if (plugin == "bert_wordpiece") {  // BertTokenizer finds [CLS], [SEP], [MASK], … in vocab.txt itself
    tc["tokenizer_class"] = "BertTokenizer";
    tc["do_lower_case"] = s.get_bool("lower_case", true);
    tc["model_max_length"] = max_length;
    write_file_atomically(folder / "tokenizer_config.json", tc.dump(2) + "\n");
    tc = nlohmann::ordered_json();
  }
  if (!tc.empty()) {
    const std::string eod = tokenizer.decode({tokenizer.eod()});
    if (!eod.empty()) tc["eos_token"] = tc["bos_token"] = tc["unk_token"] = eod;
    tc["model_max_length"] = max_length;
    write_file_atomically(folder / "tokenizer_config.json", tc.dump(2) + "\n");
  }
  nlohmann::ordered_json t{{"plugin", plugin}, {"settings", settings}, {"files", files}};
  return {t.dump()};
}

ImportedTokenizer import_hf_tokenizer(const fs::path& hf_folder, const std::string& config_json_text,
                                      const fs::path& dest) {
  const std::string config_path = (hf_folder / "config.json").string();
  const nlohmann::json j = detail::parse_untrusted_json(config_json_text, config_path);
  std::string plugin;
  std::vector<std::pair<std::string, std::string>> files;  // key, file name in hf_folder
  std::string settings_toml;
  std::error_code ec;
  const auto there = [&](const std::string& name) { return fs::is_regular_file(hf_folder / name, ec); };
  const std::string tokenizer_config_path = (hf_folder / "tokenizer_config.json").string();
  if (j.is_object() && j.contains(kTesseraTokenizerKey)) {
    const std::string where = fmt::format("{}: '{}'", config_path, kTesseraTokenizerKey);
    const nlohmann::json& t = j.at(kTesseraTokenizerKey);
    if (!t.is_object() || !t.contains("plugin") || !t.at("plugin").is_string() || !plain_key(t.at("plugin").get<std::string>()))
      throw FormatError(fmt::format("{} is {}, expected an object with a \"plugin\" name", where, detail::describe_json(t)));
    plugin = t.at("plugin").get<std::string>();
    for (const char* part : {"settings", "files"})
      if (t.contains(part) && !t.at(part).is_object())
        throw FormatError(fmt::format("{}.{} is {}, expected an object", where, part, detail::describe_json(t.at(part))));
    if (t.contains("settings"))
      for (auto& [key, value] : t.at("settings").items()) {
        if (!plain_key(key)) throw FormatError(fmt::format("{}.settings: key {} is not a setting name", where, quote_untrusted(key)));
        settings_toml += fmt::format("{} = {}\n", key, toml_value(value, where + ".settings." + key));
      }
    if (t.contains("files"))
      for (auto& [key, value] : t.at("files").items()) {
        const std::string name = value.is_string() ? value.get<std::string>() : "";
        if (!plain_key(key) || name.empty() || fs::path(name).filename() != name || name == "." || name == "..")
          throw FormatError(fmt::format("{}.files: {} is not a setting and a file name in the folder", where,
                                        quote_untrusted(key)));
        if (!there(name))
          throw FormatError(fmt::format("{}: {} names the tokenizer file {}, which is not there", where, key,
                                        (hf_folder / name).string()));
        files.emplace_back(key, name);
      }
  } else if (j.is_object() && j.contains("model_type") && j.at("model_type") == "megatron-bert" && there("vocab.txt")) {
    // BERT's WordPiece vocabulary (its tokenizer.json, if any, is a WordPiece one, which hf_tokenizer
    // does not read); BertTokenizer's do_lower_case from tokenizer_config.json, true by default.
    plugin = "bert_wordpiece";
    files = {{"vocab_file", "vocab.txt"}};
    const nlohmann::json tc = tokenizer_config(hf_folder);
    const hf::ConfigReader r{tc, tokenizer_config_path, "BertTokenizer"};
    settings_toml = fmt::format("lower_case = {}\n", r.flag("do_lower_case", true));
  } else if (there("tokenizer.model")) {
    // A SentencePiece model (Llama 2's, Mistral's, Mixtral's, Phi-3's folders; their tokenizer.json is
    // a byte-fallback conversion of it): the sentencepiece plugin, BOS first as tokenizer_config.json's
    // add_bos_token says (LlamaTokenizer's default: true).
    plugin = "sentencepiece";
    files = {{"tokenizer_model", "tokenizer.model"}};
    const nlohmann::json tc = tokenizer_config(hf_folder);
    const hf::ConfigReader r{tc, tokenizer_config_path, "LlamaTokenizer"};
    const bool llama_class = r.text("tokenizer_class", "").rfind("Llama", 0) == 0;
    settings_toml = fmt::format("add_bos = {}\n", r.flag("add_bos_token", llama_class));
  } else if (there("tokenizer.json")) {
    plugin = "hf_tokenizer";
    files = {{"tokenizer_file", "tokenizer.json"}};
  } else if (there("vocab.json") && there("merges.txt")) {
    plugin = "gpt2_bpe";
    files = {{"vocab_file", "vocab.json"}, {"merges_file", "merges.txt"}};
  } else {
    throw FormatError(fmt::format("{} has no tokenizer Tessera reads: expected tokenizer.model (sentencepiece), "
                                  "tokenizer.json (hf_tokenizer), vocab.json and merges.txt (gpt2_bpe), or a "
                                  "megatron-bert's vocab.txt (bert_wordpiece)",
                                  hf_folder.string()));
  }
  ImportedTokenizer out;
  out.plugin = plugin;
  out.toml = out.toml_absolute = fmt::format("[tokenizer]\nplugin = \"{}\"\n{}", plugin, settings_toml);
  for (const auto& [key, name] : files) {
    fs::create_directories(dest / "tokenizer");
    fs::copy_file(hf_folder / name, dest / "tokenizer" / name);
    out.toml += fmt::format("{} = {}\n", key, nlohmann::json("tokenizer/" + name).dump());
    out.toml_absolute += fmt::format("{} = {}\n", key, nlohmann::json((dest / "tokenizer" / name).string()).dump());
  }
  return out;
}

}  // namespace tessera
