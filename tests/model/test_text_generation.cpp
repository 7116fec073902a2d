// The generation loop of `tessera generate` (apps/tools text_generation.hpp) and its FIM prompts
// (fim_prompt.hpp), with a scripted Generator: stop tokens, stop strings cut before their first
// occurrence while the streamed pieces never show text that a stop string later takes back, held
// back half characters, the window, and the two FIM orders with either sentinel spelling.
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/error.hpp"
#include "tessera/fim_tokens.hpp"
#include "tessera/generation.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/tools/fim_prompt.hpp"
#include "tessera/tools/text_generation.hpp"

using namespace tessera;

namespace {

// Bytes are ids 0–255; 256 is end of document; 257–260 the FIM sentinels, spelt StarCoder's way or
// SantaCoder's; decode is lossy UTF-8 (an unfinished character at the end becomes U+FFFD), as
// byte-level BPE decoders are.
class SentinelBytes : public Tokenizer {
 public:
  explicit SentinelBytes(bool hyphen = false, bool with_fim = true) : hyphen_(hyphen), with_fim_(with_fim) {}
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string bytes;
    for (std::int32_t id : ids)
      if (id < 256) bytes.push_back(static_cast<char>(id));
    // An unfinished multi-byte character at the end → U+FFFD (enough for these tests).
    std::size_t i = bytes.size(), back = 0;
    while (i > 0 && back < 3 && (static_cast<unsigned char>(bytes[i - 1]) & 0xC0) == 0x80) --i, ++back;
    if (i > 0) {
      const unsigned char lead = static_cast<unsigned char>(bytes[i - 1]);
      const std::size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
      if (need > back) bytes = bytes.substr(0, i - 1) + "\xEF\xBF\xBD";
    }
    return bytes;
  }
  std::int64_t vocab_size() const override { return 261; }
  std::int32_t eod() const override { return 256; }
  std::optional<std::int32_t> special_token(std::string_view text) const override {
    if (!with_fim_) return std::nullopt;
    const std::map<std::string, std::int32_t> names =
        hyphen_ ? std::map<std::string, std::int32_t>{{"<fim-prefix>", 257}, {"<fim-middle>", 258},
                                                      {"<fim-suffix>", 259}, {"<fim-pad>", 260}}
                : std::map<std::string, std::int32_t>{{"<fim_prefix>", 257}, {"<fim_middle>", 258},
                                                      {"<fim_suffix>", 259}, {"<fim_pad>", 260}};
    auto it = names.find(std::string(text));
    return it == names.end() ? std::nullopt : std::optional<std::int32_t>(it->second);
  }
  std::string name() const override { return "sentinel bytes"; }

 private:
  bool hyphen_, with_fim_;
};

// Emits a fixed sequence of ids (greedy picks the one-hot logit); records the contexts it saw.
class Scripted : public Generator {
 public:
  explicit Scripted(std::vector<std::int32_t> ids) : ids_(std::move(ids)) {}
  Tensor next_token_logits(const Tensor& tokens) override {
    contexts.push_back(tokens.size(1));
    Tensor logits = Tensor::full({1, 261}, -10.0f);
    logits.data<float>()[ids_.at(next_++)] = 10.0f;
    return logits;
  }
  std::vector<std::int64_t> contexts;

 private:
  std::vector<std::int32_t> ids_;
  std::size_t next_ = 0;
};

std::vector<std::int32_t> bytes_of(const std::string& s) {
  std::vector<std::int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

std::vector<std::int32_t> then(std::vector<std::int32_t> a, const std::vector<std::int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TextGenerationOptions greedy(std::int64_t window = 64) {
  TextGenerationOptions o;
  o.sampling.temperature = 0;
  o.window = window;
  o.stop_tokens = {256};
  return o;
}

}  // namespace

TEST_CASE("generation stops at a stop token, which is not shown", "[unit]") {
  const SentinelBytes tok;
  Scripted g(then(bytes_of("hi"), {256, 'x'}));
  std::string streamed;
  const GeneratedText out = generate_text(g, tok, {'a'}, greedy(), [&](std::string_view p) { streamed += p; });
  CHECK(out.text == "hi");
  CHECK(streamed == "hi");
  CHECK(out.ids == bytes_of("hi"));
  CHECK(out.reason == StopReason::stop_token);
}

TEST_CASE("a stop string cuts the text before it, and nothing shown is taken back", "[unit]") {
  const SentinelBytes tok;
  TextGenerationOptions o = greedy();
  o.stop_strings = {"\ndef ", "END"};
  // "\nde" could begin "\ndef ": held back until "f " settles it.
  Scripted g(bytes_of("return x\ndef f():"));
  std::vector<std::string> pieces;
  const GeneratedText out = generate_text(g, tok, {'a'}, o, [&](std::string_view p) { pieces.emplace_back(p); });
  CHECK(out.text == "return x");
  CHECK(out.reason == StopReason::stop_string);
  std::string streamed;
  for (const std::string& p : pieces) streamed += p;
  CHECK(streamed == "return x");
  // A prefix of a stop string that does not complete one is shown once the text moves past it.
  Scripted g2(then(bytes_of("a\ndx"), {256}));
  std::vector<std::string> pieces2;
  const GeneratedText out2 = generate_text(g2, tok, {'a'}, o, [&](std::string_view p) { pieces2.emplace_back(p); });
  CHECK(out2.text == "a\ndx");
  CHECK(pieces2 == std::vector<std::string>{"a", "\ndx"});  // "\n" and "\nd" were held back
}

TEST_CASE("an unfinished character is held back until its bytes arrive", "[unit]") {
  const SentinelBytes tok;
  const std::string e_acute = "\xC3\xA9";
  Scripted g(bytes_of("x" + e_acute + "y"));
  TextGenerationOptions o = greedy();
  o.max_new_tokens = 4;
  std::vector<std::string> pieces;
  const GeneratedText out = generate_text(g, tok, {'a'}, o, [&](std::string_view p) { pieces.emplace_back(p); });
  CHECK(out.text == "x" + e_acute + "y");
  CHECK(out.reason == StopReason::max_new_tokens);
  CHECK(pieces == std::vector<std::string>{"x", e_acute, "y"});  // never a U+FFFD piece
  // At the end, whatever is held back is given out.
  Scripted cut(bytes_of("x\xC3"));
  o.max_new_tokens = 2;
  CHECK(generate_text(cut, tok, {'a'}, o).text == "x\xEF\xBF\xBD");
}

TEST_CASE("the window: slides for plain prompts, ends a FIM prompt's generation", "[unit]") {
  const SentinelBytes tok;
  TextGenerationOptions o = greedy(4);
  o.max_new_tokens = 5;
  Scripted slide(bytes_of("bcdef"));
  CHECK(generate_text(slide, tok, bytes_of("aaa"), o).text == "bcdef");
  CHECK(slide.contexts == std::vector<std::int64_t>{3, 4, 4, 4, 4});
  o.slide_window = false;
  Scripted fixed(bytes_of("bcdef"));
  const GeneratedText out = generate_text(fixed, tok, bytes_of("aaa"), o);
  CHECK(out.text == "b");
  CHECK(out.reason == StopReason::window);
  Scripted too_long(bytes_of("b"));
  CHECK_THAT(message_of<Error>([&] { generate_text(too_long, tok, bytes_of("aaaaa"), o); }), Catch::Contains("5 tokens") && Catch::Contains("window of 4"));
}

TEST_CASE("FIM prompts in both orders, with StarCoder's or SantaCoder's sentinels", "[unit]") {
  for (bool hyphen : {false, true}) {
    INFO("hyphen " << hyphen);
    const SentinelBytes tok(hyphen);
    const FimTokenIds fim = require_fim_tokens(tok);
    CHECK((fim.prefix == 257 && fim.middle == 258 && fim.suffix == 259 && fim.pad == 260));
    CHECK(fim_prompt(tok, fim, "ab", "z", FimOrder::psm) == std::vector<std::int32_t>{257, 'a', 'b', 259, 'z', 258});
    CHECK(fim_prompt(tok, fim, "ab", "z", FimOrder::spm) == std::vector<std::int32_t>{257, 259, 'z', 258, 'a', 'b'});
  }
  CHECK(parse_fim_order("spm", "--fim-order") == FimOrder::spm);
  CHECK_THAT(message_of<ConfigError>([] { parse_fim_order("pms", "--fim-order"); }), Catch::Contains("--fim-order") && Catch::Contains("\"psm\"") && Catch::Contains("\"spm\""));
  const SentinelBytes none(false, false);
  CHECK_THAT(message_of<ConfigError>([&] { require_fim_tokens(none); }), Catch::Contains("sentinel bytes") && Catch::Contains("<fim_prefix> (or <fim-prefix>)") && Catch::Contains("<fim_pad> (or <fim-pad>)"));
}
