#include "hf_tokenizer.hpp"

#include <algorithm>
#include <deque>

#include <nlohmann/json.hpp>

#include "byte_level_bpe.hpp"
#include "gpt2_pretokenizer.hpp"
#include "hf_normalizer.hpp"
#include "hf_regex.hpp"
#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"
#include "unicode_classes.hpp"

namespace tessera {

namespace {

using json = nlohmann::json;

constexpr std::string_view kEndOfText = "<|endoftext|>";
constexpr std::string_view kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kSupportedPreTokenizers = "Sequence, Digits, ByteLevel, Split";

// A value for an error message: strings quoted, anything else described by type and prefix.
std::string shown(const json& v) {
  if (v.is_string()) return quote_untrusted(v.get_ref<const std::string&>());
  return detail::describe_json(v);
}

// Reads the JSON of one tokenizer.json, naming the file and the JSON path of anything it refuses.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw FormatError(fmt::format("{}: {} {}", file_, path, what));
  }
  [[noreturn]] void unsupported(const std::string& path, const json& v, const std::string& supported) const {
    throw FormatError(fmt::format("{}: {} = {} is not supported; supported: {}", file_, path, shown(v), supported));
  }
  std::string where(const std::string& path) const { return fmt::format("{}: {}", file_, path); }

  const json& object(const json& v, const std::string& path) const {
    if (!v.is_object()) fail(path, fmt::format("is {}; expected a JSON object", shown(v)));
    return v;
  }
  // obj[key] if present and not null, else nullptr.
  static const json* get(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  bool boolean(const json& obj, const std::string& path, const char* key, bool fallback) const {
    const json* v = get(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(path + "." + key, fmt::format("is {}; expected true or false", shown(*v)));
    return v->get<bool>();
  }
  std::string string(const json& obj, const std::string& path, const char* key) const {
    const json* v = get(obj, key);
    if (!v) fail(path + "." + key, "is missing");
    if (!v->is_string()) fail(path + "." + key, fmt::format("is {}; expected a string", shown(*v)));
    return v->get<std::string>();
  }
  // A boolean option that changes ids and that this reader implements only as `supported`.
  void require_bool(const json& obj, const std::string& path, const char* key, bool supported,
                    const std::string& why) const {
    if (boolean(obj, path, key, supported) != supported)
      throw FormatError(fmt::format("{}: {}.{} = {} is not supported ({})", file_, path, key, !supported, why));
  }

 private:
  std::string file_;
};

HfTokenizer::Behavior read_behavior(const Reader& r, const json& v, const std::string& path) {
  static const std::pair<const char*, HfTokenizer::Behavior> kNames[] = {
      {"Removed", HfTokenizer::Behavior::removed},
      {"Isolated", HfTokenizer::Behavior::isolated},
      {"MergedWithPrevious", HfTokenizer::Behavior::merged_with_previous},
      {"MergedWithNext", HfTokenizer::Behavior::merged_with_next},
      {"Contiguous", HfTokenizer::Behavior::contiguous}};
  if (v.is_string())
    for (const auto& [name, b] : kNames)
      if (v.get_ref<const std::string&>() == name) return b;
  r.unsupported(path, v, "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

// One pre-tokenizer (not a Sequence) → a step.
HfTokenizer::Step read_step(const Reader& r, const json& pt, const std::string& path, const std::string& file) {
  r.object(pt, path);
  const json* type = Reader::get(pt, "type");
  if (!type) r.fail(path + ".type", "is missing");
  if (!type->is_string()) r.unsupported(path + ".type", *type, kSupportedPreTokenizers);
  const std::string& t = type->get_ref<const std::string&>();
  HfTokenizer::Step s;
  if (t == "Digits") {
    s.kind = HfTokenizer::Step::Kind::digits;
    s.individual_digits = r.boolean(pt, path, "individual_digits", false);
  } else if (t == "ByteLevel") {
    s.kind = HfTokenizer::Step::Kind::byte_level;
    s.add_prefix_space = r.boolean(pt, path, "add_prefix_space", true);  // Hugging Face's default
    s.use_regex = r.boolean(pt, path, "use_regex", true);
    r.boolean(pt, path, "trim_offsets", true);  // offsets only: no effect on ids
  } else if (t == "Split") {
    s.kind = HfTokenizer::Step::Kind::split;
    const json* pattern = Reader::get(pt, "pattern");
    if (!pattern) r.fail(path + ".pattern", "is missing");
    r.object(*pattern, path + ".pattern");
    std::string regex;
    if (pattern->size() == 1 && pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
      regex = (*pattern)["Regex"].get<std::string>();
    } else if (pattern->size() == 1 && pattern->contains("String") && (*pattern)["String"].is_string()) {
      // A literal, matched as written (escaped into a regex here).
      if ((*pattern)["String"].get_ref<const std::string&>().empty())
        r.fail(path + ".pattern.String", "is empty; expected the text to split on");
      for (const char c : (*pattern)["String"].get<std::string>()) {
        if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) regex += '\\';
        regex += c;
      }
    } else {
      r.fail(path + ".pattern", fmt::format("is {}; expected {{\"Regex\": \"...\"}} or {{\"String\": \"...\"}}",
                                            shown(*pattern)));
    }
    const json* behavior = Reader::get(pt, "behavior");
    if (!behavior) r.fail(path + ".behavior", "is missing");
    s.behavior = read_behavior(r, *behavior, path + ".behavior");
    s.invert = r.boolean(pt, path, "invert", false);
    if (regex == kGpt2Regex) s.gpt2_regex = true;
    else s.regex = std::make_shared<HfRegex>(regex, fmt::format("{}: {}.pattern", file, path));
  } else {
    r.unsupported(path + ".type", *type, kSupportedPreTokenizers);
  }
  return s;
}

// Splits `piece` at the given matches ([start, end) offsets, in order, within the piece) with Hugging
// Face's NormalizedString::split semantics, appending the non-empty pieces.
void split_piece(std::string_view piece, const std::vector<std::pair<std::size_t, std::size_t>>& matches,
                 HfTokenizer::Behavior behavior, bool invert, std::vector<std::string_view>& out) {
  struct Part {
    std::size_t start, end;
    bool match;
  };
  thread_local std::vector<Part> parts;
  parts.clear();
  if (piece.empty()) return;
  std::size_t prev = 0;
  for (const auto& [s, e] : matches) {
    if (prev != s) parts.push_back({prev, s, false});
    parts.push_back({s, e, true});
    prev = e;
  }
  if (prev != piece.size()) parts.push_back({prev, piece.size(), false});
  if (invert)
    for (auto& p : parts) p.match = !p.match;
  using B = HfTokenizer::Behavior;
  thread_local std::vector<Part> merged;
  merged.clear();
  switch (behavior) {
    case B::isolated:
      merged = parts;
      break;
    case B::removed:
      for (const auto& p : parts)
        if (!p.match) merged.push_back(p);
      break;
    case B::contiguous: {
      bool previous = false;
      for (const auto& p : parts) {
        if (p.match == previous && !merged.empty()) merged.back().end = p.end;
        else merged.push_back(p);
        previous = p.match;
      }
      break;
    }
    case B::merged_with_previous: {
      bool previous = false;
      for (const auto& p : parts) {
        if (p.match && !previous && !merged.empty()) merged.back().end = p.end;
        else merged.push_back(p);
        previous = p.match;
      }
      break;
    }
    case B::merged_with_next: {
      bool previous = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !previous && !merged.empty()) merged.back().start = it->start;
        else merged.push_back(*it);
        previous = it->match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    }
  }
  for (const auto& p : merged)
    if (p.end > p.start) out.push_back(piece.substr(p.start, p.end - p.start));
}

// Copies of pieces that ByteLevel's add_prefix_space lengthened; views into them stay valid until the
// next encode on this thread (a deque never moves its elements).
thread_local std::deque<std::string> prefixed_pieces;

}  // namespace

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out += static_cast<char>(b0);
      ++i;
      continue;
    }
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
      need = 2;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      need = 3;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    }
    if (need == 0) {  // not a lead byte
      out += kReplacement;
      ++i;
      continue;
    }
    // The maximal subpart: the lead byte and the continuation bytes that fit, one U+FFFD for all of them.
    std::size_t j = i + 1, got = 0;
    while (got < need && j < s.size()) {
      const auto b = static_cast<unsigned char>(s[j]);
      if (b < lo || b > hi) break;
      lo = 0x80;
      hi = 0xBF;
      ++j;
      ++got;
    }
    if (got == need) out.append(s.substr(i, j - i));
    else out += kReplacement;
    i = j;
  }
  return out;
}

HfTokenizer::HfTokenizer(const std::string& file, HfTokenizerOptions options) : file_(file), options_(options) {
  const json root =
      detail::parse_untrusted_json(read_whole_file(file, "the tokenizer file", kMaxVocabularyBytes), file);
  const Reader r(file);
  r.object(root, "the top level");

  // --- model
  const json* model = Reader::get(root, "model");
  if (!model) r.fail("model", "is missing");
  r.object(*model, "model");
  if (const json* type = Reader::get(*model, "type"); type && *type != "BPE")
    r.unsupported("model.type", *type, "BPE (byte-level)");
  if (const json* d = Reader::get(*model, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0))
    r.unsupported("model.dropout", *d, "null (dropout makes ids random)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = Reader::get(*model, key); v && !(v->is_string() && v->get_ref<const std::string&>().empty()))
      r.unsupported(std::string("model.") + key, *v, "null");
  r.require_bool(*model, "model", "byte_fallback", false, "a byte-level BPE has every byte in its vocab");
  ignore_merges_ = r.boolean(*model, "model", "ignore_merges", false);
  r.boolean(*model, "model", "fuse_unk", false);  // no unknown symbols in a byte-level vocab
  const json* vocab = Reader::get(*model, "vocab");
  if (!vocab) r.fail("model.vocab", "is missing");
  bpe_ = std::make_unique<ByteLevelBpe>(read_vocab_object(*vocab, r.where("model.vocab")), r.where("model.vocab"));
  const json* merges = Reader::get(*model, "merges");
  if (!merges) r.fail("model.merges", "is missing");
  if (!merges->is_array()) r.fail("model.merges", fmt::format("is {}; expected an array", shown(*merges)));
  bpe_->reserve_merges(merges->size());
  std::int32_t rank = 0;
  for (const json& m : *merges) {
    const std::string path = fmt::format("model.merges[{}]", rank);
    std::string left, right;
    if (m.is_string()) {  // "a b"
      const std::string& s = m.get_ref<const std::string&>();
      const std::size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size())
        r.fail(path, fmt::format("= {}: expected two symbols separated by a space", shown(m)));
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      r.fail(path, fmt::format("= {}: expected \"a b\" or [\"a\", \"b\"]", shown(m)));
    }
    if (auto missing = bpe_->add_merge(left, right, rank))
      r.fail(path, fmt::format("= {} + {}: {} is not in model.vocab", quote_untrusted(left), quote_untrusted(right),
                               quote_untrusted(*missing)));
    ++rank;
  }

  // --- normalizer, pre_tokenizer, post_processor, decoder, truncation, padding
  if (const json* n = Reader::get(root, "normalizer")) {
    r.object(*n, "normalizer");
    const json type = n->contains("type") ? (*n)["type"] : json();
    if (type != "NFC") r.unsupported("normalizer.type", type, "null (no normalizer) or NFC");
    nfc_ = true;
  }
  const json* pre = Reader::get(root, "pre_tokenizer");
  if (!pre) r.fail("pre_tokenizer", "is null; a byte-level BPE needs a ByteLevel pre-tokenizer");
  r.object(*pre, "pre_tokenizer");
  if (Reader::get(*pre, "type") && (*pre)["type"] == "Sequence") {
    const json* list = Reader::get(*pre, "pretokenizers");
    if (!list || !list->is_array())
      r.fail("pre_tokenizer.pretokenizers", fmt::format("is {}; expected an array", list ? shown(*list) : "missing"));
    for (std::size_t i = 0; i < list->size(); ++i)
      steps_.push_back(read_step(r, (*list)[i], fmt::format("pre_tokenizer.pretokenizers[{}]", i), file));
  } else {
    steps_.push_back(read_step(r, *pre, "pre_tokenizer", file));
  }
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const bool byte_level = steps_[i].kind == Step::Kind::byte_level;
    const bool last = i + 1 == steps_.size();
    if (byte_level && !last)
      r.fail(steps_.size() == 1 ? "pre_tokenizer" : fmt::format("pre_tokenizer.pretokenizers[{}]", i),
             "is a ByteLevel before another pre-tokenizer; supported: ByteLevel as the last step (the steps after "
             "it would see byte symbols)");
    if (!byte_level && last)
      r.fail(steps_.size() == 1 ? "pre_tokenizer" : fmt::format("pre_tokenizer.pretokenizers[{}]", i),
             "is not a ByteLevel; supported: a ByteLevel pre-tokenizer as the last step (this reader handles "
             "byte-level BPE only)");
  }
  if (const json* p = Reader::get(root, "post_processor")) {
    r.object(*p, "post_processor");
    if (!p->contains("type") || (*p)["type"] != "ByteLevel")
      r.unsupported("post_processor.type", p->contains("type") ? (*p)["type"] : json(),
                    "ByteLevel or null (a post-processor that adds tokens is not)");
  }
  const json* dec = Reader::get(root, "decoder");
  if (!dec) r.fail("decoder", "is null; supported: ByteLevel");
  r.object(*dec, "decoder");
  if (!dec->contains("type") || (*dec)["type"] != "ByteLevel")
    r.unsupported("decoder.type", dec->contains("type") ? (*dec)["type"] : json(), "ByteLevel");
  for (const char* key : {"truncation", "padding"})
    if (const json* v = Reader::get(root, key)) r.unsupported(key, *v, "null (documents are never cut or padded)");

  // --- added_tokens
  vocab_size_ = bpe_->size();
  if (const json* added = Reader::get(root, "added_tokens")) {
    if (!added->is_array()) r.fail("added_tokens", fmt::format("is {}; expected an array", shown(*added)));
    added_.reserve(added->size());
    std::unordered_map<std::int32_t, std::string> content_of_id;
    for (std::size_t i = 0; i < added->size(); ++i) {
      const std::string path = fmt::format("added_tokens[{}]", i);
      const json& t = (*added)[i];
      r.object(t, path);
      const json* id = Reader::get(t, "id");
      if (!id || !id->is_number_integer() || id->get<std::int64_t>() < 0 ||
          id->get<std::int64_t>() > 4 * (bpe_->size() + static_cast<std::int64_t>(added->size())) + 1024)
        r.fail(path + ".id", fmt::format("is {}; expected a non-negative integer id near the vocab's",
                                         id ? shown(*id) : "missing"));
      const std::string content = r.string(t, path, "content");
      if (content.empty()) r.fail(path + ".content", "is empty");
      for (const char* key : {"lstrip", "rstrip", "single_word"})
        r.require_bool(t, path, key, false, "added tokens are matched exactly as written");
      Added a{content, static_cast<std::int32_t>(id->get<std::int64_t>()), r.boolean(t, path, "normalized", true)};
      if (added_id_.count(content)) r.fail(path + ".content", fmt::format("= {} is given twice", quote_untrusted(content)));
      if (auto it = content_of_id.find(a.id); it != content_of_id.end())
        r.fail(path + ".id", fmt::format("= {} is given to both {} and {}", a.id, quote_untrusted(it->second),
                                         quote_untrusted(content)));
      if (bpe_->has_id(a.id) && bpe_->entry(a.id) != content)
        r.fail(path + ".id", fmt::format("= {} is model.vocab's {} but the added token is {}: an id names one token",
                                         a.id, quote_untrusted(bpe_->entry(a.id)), quote_untrusted(content)));
      content_of_id[a.id] = content;
      added_id_[content] = a.id;
      added_bytes_[a.id] = byte_level_symbols_to_bytes(content);
      vocab_size_ = std::max<std::int64_t>(vocab_size_, a.id + 1);
      added_.push_back(std::move(a));
    }
  }
  for (const Added& a : added_) pass_[a.normalized ? 1 : 0].push_back(&a);
  for (int k = 0; k < 2; ++k)
    for (const Added* a : pass_[k]) first_byte_[k][static_cast<unsigned char>(a->content[0])] = true;
  for (auto& p : pass_)
    std::stable_sort(p.begin(), p.end(), [](const Added* a, const Added* b) { return a->content.size() > b->content.size(); });
  if (!options.eod_token.empty()) {
    eod_ = special_token(options.eod_token);
    if (!eod_)
      throw ConfigError(fmt::format("{}: eod_token = \"{}\" is not a token of this tokenizer (in added_tokens or "
                                    "model.vocab)",
                                    file_, options.eod_token));
  } else {
    for (std::string_view candidate : {kEndOfText, std::string_view("<|end_of_text|>"), std::string_view("</s>"),
                                       std::string_view("<eos>")})
      if ((eod_ = special_token(candidate))) break;
  }
}

HfTokenizer::~HfTokenizer() = default;

std::int64_t HfTokenizer::num_merges() const { return bpe_->num_merges(); }

std::int32_t HfTokenizer::eod() const {
  if (!eod_)
    throw ConfigError(fmt::format("{}: the tokenizer has none of \"<|endoftext|>\", \"<|end_of_text|>\", \"</s>\", "
                                  "\"<eos>\" (in added_tokens or model.vocab), the end-of-document tokens looked for; "
                                  "name its own with [tokenizer] eod_token (preprocess: --eod-token), or for "
                                  "preprocess use --no-append-eod",
                                  file_));
  return *eod_;
}

std::optional<std::int32_t> HfTokenizer::special_token(std::string_view text) const {
  if (auto it = added_id_.find(std::string(text)); it != added_id_.end()) return it->second;
  return bpe_->find(text);
}

void HfTokenizer::pre_tokenize_into(std::string_view text, std::vector<std::string_view>& pieces) const {
  thread_local std::vector<std::string_view> next;
  thread_local std::vector<std::pair<std::size_t, std::size_t>> matches;
  pieces.clear();
  if (!text.empty()) pieces.push_back(text);
  for (const Step& s : steps_) {
    next.clear();
    for (std::string_view piece : pieces) {
      switch (s.kind) {
        case Step::Kind::digits: {
          // Rust's char::is_numeric (general category N), each digit a match.
          matches.clear();
          unsigned len = 0;
          for (std::size_t i = 0; i < piece.size(); i += len)
            if (unicode::class_at(piece, i, &len) == unicode::CharClass::number) matches.emplace_back(i, i + len);
          split_piece(piece, matches, s.individual_digits ? Behavior::isolated : Behavior::contiguous, false, next);
          break;
        }
        case Step::Kind::byte_level: {
          std::string_view p = piece;
          if (s.add_prefix_space && !p.starts_with(' ')) {
            std::string& copy = prefixed_pieces.emplace_back();
            copy.reserve(p.size() + 1);
            copy += ' ';
            copy += p;
            p = copy;
          }
          if (s.use_regex) gpt2_pretokenize(p, next);
          else next.push_back(p);
          break;
        }
        case Step::Kind::split: {
          matches.clear();
          if (s.gpt2_regex) {
            thread_local std::vector<std::string_view> gpt2;
            gpt2.clear();
            gpt2_pretokenize(piece, gpt2);
            for (std::string_view g : gpt2) {
              const auto start = static_cast<std::size_t>(g.data() - piece.data());
              matches.emplace_back(start, start + g.size());
            }
          } else {
            s.regex->find_all(piece, matches);
          }
          split_piece(piece, matches, s.behavior, s.invert, next);
          break;
        }
      }
    }
    pieces.swap(next);
  }
}

std::vector<std::string> HfTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string_view> pieces;
  pre_tokenize_into(text, pieces);
  prefixed_pieces.clear();
  return {pieces.begin(), pieces.end()};
}

void HfTokenizer::encode_segment(std::string_view text, std::vector<std::int32_t>& out) const {
  if (text.empty()) return;
  thread_local std::vector<std::string_view> pieces;
  pre_tokenize_into(text, pieces);
  for (std::string_view p : pieces) {
    if (ignore_merges_) {
      // The piece in byte symbols, looked up whole (Llama-3's files set this).
      static const auto b2u = gpt2_byte_to_unicode();
      std::string symbols;
      for (const char c : p) unicode::append_utf8(symbols, b2u[static_cast<unsigned char>(c)]);
      if (auto id = bpe_->find(symbols)) {
        out.push_back(*id);
        continue;
      }
    }
    bpe_->bpe(p, out);
  }
  prefixed_pieces.clear();
}

void HfTokenizer::encode_into(std::string_view text, std::vector<std::int32_t>& out) const {
  if (!options_.parse_special_tokens || added_.empty()) {
    if (nfc_) {
      encode_segment(nfc_normalize(text), out);
      return;
    }
    encode_segment(text, out);
    return;
  }
  // Segments of text (id < 0) and added tokens (their id), after the two passes.
  struct Segment {
    std::string_view text;
    std::int32_t id;
  };
  thread_local std::vector<Segment> segments, refined;
  thread_local std::deque<std::string> normalized;  // the NFC text segments (a deque: views stay valid)
  segments.clear();
  normalized.clear();
  segments.push_back({text, -1});
  for (int k = 0; k < 2; ++k) {
    // Hugging Face's order: the tokens with "normalized": false are cut out of the raw text, the
    // normalizer runs on the segments left, and the others are cut out of those.
    if (k == 1 && nfc_)
      for (Segment& seg : segments)
        if (seg.id < 0) seg.text = normalized.emplace_back(nfc_normalize(seg.text));
    const auto& pass = pass_[k];
    const auto& first = first_byte_[k];
    if (pass.empty()) continue;
    refined.clear();
    for (const Segment& seg : segments) {
      if (seg.id >= 0) {
        refined.push_back(seg);
        continue;
      }
      std::string_view rest = seg.text;
      std::size_t i = 0, start = 0;
      while (i < rest.size()) {
        if (!first[static_cast<unsigned char>(rest[i])]) {
          ++i;
          continue;
        }
        const Added* hit = nullptr;
        for (const Added* a : pass)  // longest first: the first that matches here is the longest
          if (rest.compare(i, a->content.size(), a->content) == 0) {
            hit = a;
            break;
          }
        if (!hit) {
          ++i;
          continue;
        }
        if (i > start) refined.push_back({rest.substr(start, i - start), -1});
        refined.push_back({rest.substr(i, hit->content.size()), hit->id});
        i += hit->content.size();
        start = i;
      }
      if (start < rest.size()) refined.push_back({rest.substr(start), -1});
    }
    segments.swap(refined);
  }
  for (const Segment& seg : segments) {
    if (seg.id >= 0) out.push_back(seg.id);
    else encode_segment(seg.text, out);
  }
}

std::vector<std::int32_t> HfTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 1);
  encode_into(text, out);
  return out;
}

std::string HfTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string bytes;
  for (std::int32_t id : ids) {
    if (auto it = added_bytes_.find(id); it != added_bytes_.end()) bytes += it->second;
    else if (bpe_->has_id(id)) bytes += bpe_->bytes_of(id);
    else throw Error(fmt::format("hf_tokenizer: cannot decode id {}: not in {} (vocab size {})", id, file_, vocab_size_));
  }
  return utf8_lossy(bytes);
}

}  // namespace tessera
