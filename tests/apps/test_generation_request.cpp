// tessera serve's request handling without HTTP (apps/tools generation_request.hpp): parsing and
// validation of Megatron's fields (every invalid request a BadRequest naming the field), generation
// for a request with a scripted Generator (greedy top_k = 1, stop token, stop strings, scoring mode,
// the context check, add_BOS, top_p_decay / top_p_bound, stop_on_eol / stop_on_double_eol,
// prevent_newline_after_colon), beam search (against every sequence scored exhaustively, cached and
// uncached) and the response JSON; with a tiny GPT, a request's prompts are one cached session whose
// rows each give what the prompt gives alone.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "expect_error.hpp"
#include "tiny_gpt.hpp"
#include "tessera/config.hpp"
#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tensor.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/tools/beam_search.hpp"
#include "tessera/tools/generation_request.hpp"
#include "tessera/tools/newline_tokens.hpp"
#include "tessera/tools/sampling.hpp"

using namespace tessera;
using nlohmann::json;

namespace {

// Bytes are ids 0–255, 256 is end of document.
class Bytes : public Tokenizer {
 public:
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (std::int32_t id : ids) s += id < 256 ? std::string(1, static_cast<char>(id)) : std::string("<|endoftext|>");
    return s;
  }
  std::int64_t vocab_size() const override { return 257; }
  std::int32_t eod() const override { return 256; }
  std::optional<std::int32_t> special_token(std::string_view) const override { return std::nullopt; }
  std::string name() const override { return "bytes"; }
};

// The next token is always the last one + 1 (so "a" → "bcd…"); after 'e' it is end of document.
class Counting : public Generator {
 public:
  Tensor next_token_logits(const Tensor& tokens) override {
    const std::int64_t B = tokens.size(0), T = tokens.size(1);
    std::vector<float> logits(static_cast<std::size_t>(B * 257), 0.0f);
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int32_t last = tokens.data<std::int32_t>()[b * T + T - 1];
      logits[static_cast<std::size_t>(b * 257 + (last == 'e' ? 256 : (last + 1) % 256))] = 16.0f;
    }
    return Tensor::from<float>({B, 257}, logits);
  }
};

std::string bad(const std::string& body) {
  return message_of<BadRequest>([&] { parse_generation_request(body); });
}

}  // namespace

TEST_CASE("generation request: defaults and every field", "[unit]") {
  GenerationRequest r = parse_generation_request(R"({"prompts": ["a"]})");
  CHECK(r.prompts == std::vector<std::string>{"a"});
  CHECK(r.tokens_to_generate == 64);
  CHECK(r.temperature == 1.0);
  CHECK(r.top_k == 0);
  CHECK(r.top_p == 0.0);
  CHECK(!r.logprobs);
  CHECK(!r.add_BOS);
  CHECK(!r.stop_token);
  CHECK(r.random_seed == -1);
  r = parse_generation_request(R"({"prompts": ["a", ""], "tokens_to_generate": 3, "temperature": 2, "top_p": 0.5,
    "logprobs": true, "add_BOS": true, "stop_token": 7, "random_seed": 42, "stop": ["\n"]})");
  CHECK(r.prompts.size() == 2);
  CHECK(r.tokens_to_generate == 3);
  CHECK(r.temperature == 2.0);
  CHECK(r.top_p == 0.5);
  CHECK(r.logprobs);
  CHECK(r.add_BOS);
  CHECK(*r.stop_token == 7);
  CHECK(r.random_seed == 42);
  CHECK(r.stop == std::vector<std::string>{"\n"});
}

TEST_CASE("generation request: every invalid request names its field", "[unit]") {
  CHECK_THAT(bad("{\"prompts\": [\"a\""), Catch::Contains("not valid JSON"));
  CHECK_THAT(bad(""), Catch::Contains("not valid JSON"));
  CHECK_THAT(bad("[1]"), Catch::Contains("must be a JSON object"));
  CHECK_THAT(bad("{}"), Catch::Contains("prompts is required"));
  CHECK_THAT(bad(R"({"prompts": "a"})"), Catch::Contains("prompts must be a list of strings"));
  CHECK_THAT(bad(R"({"prompts": ["a", 3]})"), Catch::Contains("prompts[1] must be a string"));
  CHECK_THAT(bad(R"({"prompts": []})"), Catch::Contains("prompts must hold 1 to 128"));
  json many = {{"prompts", std::vector<std::string>(129, "a")}};
  CHECK_THAT(bad(many.dump()), Catch::Contains("prompts must hold 1 to 128 strings, got 129"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "tokens_to_generate": "5"})"),
             Catch::Contains("tokens_to_generate must be an integer, got string"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "tokens_to_generate": 1.5})"),
             Catch::Contains("tokens_to_generate must be an integer"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "tokens_to_generate": -1})"), Catch::Contains("tokens_to_generate must be in"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "tokens_to_generate": 0})"), Catch::Contains("needs logprobs = true"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "temperature": 0})"), Catch::Contains("temperature must be in (0, 100]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "temperature": 101})"), Catch::Contains("temperature must be in (0, 100]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "temperature": true})"), Catch::Contains("temperature must be a number"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_k": 1001})"), Catch::Contains("top_k must be in [0, 1000]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 1.5})"), Catch::Contains("top_p must be in [0, 1]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0.5, "top_k": 5})"), Catch::Contains("top_p and top_k"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "logprobs": 1})"), Catch::Contains("logprobs must be true or false"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "add_BOS": "yes"})"), Catch::Contains("add_BOS must be true or false"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "random_seed": -2})"), Catch::Contains("random_seed must be in [-1,"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "stop_token": -1})"), Catch::Contains("stop_token must be in"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "stop": [""]})"), Catch::Contains("stop[0] is empty"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "max_len": 5})"), Catch::Contains("max_len is Megatron's legacy name"));
  CHECK_THAT(bad(R"({"sentences": ["a"]})"), Catch::Contains("sentences is Megatron's legacy name"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "bogus": 2})"), Catch::Contains("unknown field \"bogus\""));
}

TEST_CASE("generation request: generation, stops, scoring and the context", "[unit]") {
  Bytes tok;
  Counting gen;
  auto run = [&](const std::string& body, std::int64_t seq = 16) {
    return generate_for_request(gen, tok, seq, parse_generation_request(body));
  };
  // Greedy; the generation ends at end of document (not shown); two prompts of different lengths.
  GenerationResponse r = run(R"({"prompts": ["a", "xyzc"], "tokens_to_generate": 3, "top_k": 1, "logprobs": true})");
  CHECK(r.text == std::vector<std::string>{"abcd", "xyzcde"});
  CHECK(r.segments[0] == std::vector<std::string>{"a", "b", "c", "d"});
  REQUIRE(r.logprobs);
  CHECK((*r.logprobs)[0].size() == 3);
  CHECK((*r.logprobs)[1].size() == 2);  // 'd', 'e', then end of document
  for (double lp : (*r.logprobs)[0]) CHECK((lp < 0 && lp > -0.01));
  // Stop strings cut the text; another stop token.
  r = run(R"({"prompts": ["a"], "tokens_to_generate": 5, "top_k": 1, "stop": ["cd"]})");
  CHECK(r.text[0] == "ab");
  CHECK(!r.logprobs);
  r = run(R"({"prompts": ["a"], "tokens_to_generate": 5, "top_k": 1, "stop_token": 100})");
  CHECK(r.text[0] == "abc");
  // Scoring: one logprob per prompt token after the first.
  r = run(R"({"prompts": ["abd"], "tokens_to_generate": 0, "logprobs": true})");
  CHECK(r.text[0] == "abd");
  REQUIRE((*r.logprobs)[0].size() == 2);
  CHECK((*r.logprobs)[0][0] > -0.01);  // b after a: likely
  CHECK((*r.logprobs)[0][1] < -15.0);  // d after ab: not
  // add_BOS prepends end of document; an empty prompt needs it.
  r = run(R"({"prompts": [""], "tokens_to_generate": 2, "top_k": 1, "add_BOS": true})");
  CHECK(r.segments[0].front() == "<|endoftext|>");
  CHECK(r.segments[0].size() == 3);
  CHECK_THAT(message_of<BadRequest>([&] { run(R"({"prompts": ["a", ""], "tokens_to_generate": 2})"); }),
             Catch::Contains("prompts[1] is empty: an empty prompt needs add_BOS"));
  // The context: prompt + tokens_to_generate ≤ seq_length.
  CHECK_THAT(message_of<BadRequest>([&] { run(R"({"prompts": ["abcdefghij"], "tokens_to_generate": 7})"); }),
             Catch::Contains("prompts[0] (10 tokens) + tokens_to_generate (7) = 17 tokens would exceed the context of 16"));
  CHECK(run(R"({"prompts": ["abcdefghij"], "tokens_to_generate": 6, "top_k": 1})").text[0] == "abcdefghijklmnop");
  CHECK_THAT(message_of<BadRequest>([&] { run(R"({"prompts": ["a"], "stop_token": 257})"); }),
             Catch::Contains("stop_token 257 is not in the vocabulary"));
  // A seed makes sampling reproducible.
  const std::string sampled = R"({"prompts": ["a"], "tokens_to_generate": 8, "temperature": 100, "random_seed": 5})";
  CHECK(run(sampled).text == run(sampled).text);
}

TEST_CASE("generation request: the checks before generating, and unseeded sampling from given entropy", "[unit]") {
  Bytes tok;
  Counting gen;
  // What rank 0 of a tensor-parallel server checks before the other ranks see a request.
  const auto ids = tokenize_generation_request(tok, 16, parse_generation_request(R"({"prompts": ["ab", ""],
    "tokens_to_generate": 2, "add_BOS": true})"));
  CHECK(ids == std::vector<std::vector<std::int32_t>>{{256, 'a', 'b'}, {256}});
  const GenerationRequest past = parse_generation_request(R"({"prompts": ["abcd"], "tokens_to_generate": 1})");
  CHECK_THAT(message_of<BadRequest>([&] { tokenize_generation_request(tok, 4, past); }),
             Catch::Contains("would exceed the context of 4"));
  // Without random_seed, the same entropy draws the same samples (ranks in lockstep), prompt by prompt.
  const GenerationRequest r =
      parse_generation_request(R"({"prompts": ["a", "a", "a", "a"], "tokens_to_generate": 12, "temperature": 100})");
  const GenerationResponse x = generate_for_request(gen, tok, 16, r, 99);
  CHECK(x.text == generate_for_request(gen, tok, 16, r, 99).text);
  // … and each prompt its own seed: four equal prompts are not all sampled alike.
  CHECK(!(x.text[0] == x.text[1] && x.text[1] == x.text[2] && x.text[2] == x.text[3]));
}

TEST_CASE("generation response JSON", "[unit]") {
  GenerationResponse r;
  r.text = {"ab"};
  r.segments = {{"a", "\xff"}};
  json j = json::parse(generation_response_json(r));
  CHECK(j["text"] == json({"ab"}));
  CHECK(j["segments"][0][1] == "\xEF\xBF\xBD");  // invalid UTF-8 replaced
  CHECK(j["logprobs"].is_null());
  r.logprobs = std::vector<std::vector<double>>{{-0.5}};
  CHECK(json::parse(generation_response_json(r))["logprobs"] == json({{-0.5}}));
  CHECK(json::parse(error_json("top_k must be in [0, 1000]"))["error"] == "top_k must be in [0, 1000]");
}

namespace {

// The next token is chosen by a table of the last token: its best id (logit 16) and, optionally, a
// second one (logit `second_logit`); everything else 0. Unlisted tokens go on to 'z'.
class Table : public Generator {
 public:
  std::map<std::int32_t, std::pair<std::int32_t, std::int32_t>> next;  // last → (best, second or -1)
  float second_logit = 8.0f;
  Tensor next_token_logits(const Tensor& tokens) override {
    const std::int32_t last = tokens.data<std::int32_t>()[tokens.numel() - 1];
    std::vector<float> logits(257, 0.0f);
    const auto it = next.find(last);
    if (it == next.end()) {
      logits['z'] = 16.0f;
    } else {
      logits[it->second.first] = 16.0f;
      if (it->second.second >= 0) logits[it->second.second] = second_logit;
    }
    return Tensor::from<float>({1, 257}, logits);
  }
};

}  // namespace

TEST_CASE("generation request: Megatron's other fields parse and are checked", "[unit]") {
  GenerationRequest r = parse_generation_request(R"({"prompts": ["a"]})");
  CHECK(r.top_p_decay == 0.0);
  CHECK(r.top_p_bound == 0.0);
  CHECK(!r.stop_on_eol);
  CHECK(!r.stop_on_double_eol);
  CHECK(!r.prevent_newline_after_colon);
  CHECK(!r.no_log);
  CHECK(!r.beam_width);
  CHECK(r.length_penalty == 1.0);
  r = parse_generation_request(R"({"prompts": ["a"], "top_p": 0.8, "top_p_decay": 0.5, "top_p_bound": 0.8,
    "stop_on_eol": true, "stop_on_double_eol": true, "prevent_newline_after_colon": true, "no_log": true})");
  CHECK(r.top_p_decay == 0.5);
  CHECK(r.top_p_bound == 0.8);
  CHECK(r.stop_on_eol);
  CHECK(r.stop_on_double_eol);
  CHECK(r.prevent_newline_after_colon);
  CHECK(r.no_log);
  r = parse_generation_request(R"({"prompts": ["a"], "top_p": 1, "top_p_decay": 1})");
  CHECK(r.top_p_decay == 1.0);
  r = parse_generation_request(R"({"prompts": ["a"], "tokens_to_generate": 3, "beam_width": 4, "length_penalty": 0.5,
    "add_BOS": true, "stop_token": 10, "prevent_newline_after_colon": true, "no_log": false})");
  CHECK(*r.beam_width == 4);
  CHECK(r.length_penalty == 0.5);
  CHECK(parse_generation_request(R"({"prompts": ["a"], "beam_width": 1, "length_penalty": -2})").length_penalty == -2);

  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0.5, "top_p_decay": 0})"), Catch::Contains("top_p_decay must be in (0, 1]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0.5, "top_p_decay": 1.5})"), Catch::Contains("top_p_decay must be in (0, 1]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0.5, "top_p_decay": "0.5"})"), Catch::Contains("top_p_decay must be a number"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p_decay": 0.5})"), Catch::Contains("top_p_decay needs top_p > 0"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0, "top_p_decay": 0.5})"), Catch::Contains("top_p_decay needs top_p > 0"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0.5, "top_p_bound": 0})"), Catch::Contains("top_p_bound must be in (0, top_p]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0.5, "top_p_bound": 0.6})"),
             Catch::Contains("top_p_bound must be in (0, top_p], got 0.6 > top_p 0.5"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p": 0.5, "top_p_bound": null})"), Catch::Contains("top_p_bound must be a number"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "top_p_bound": 0.1})"), Catch::Contains("top_p_bound needs top_p > 0"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "stop_on_eol": 1})"), Catch::Contains("stop_on_eol must be true or false"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "stop_on_double_eol": "yes"})"),
             Catch::Contains("stop_on_double_eol must be true or false"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "prevent_newline_after_colon": null})"),
             Catch::Contains("prevent_newline_after_colon must be true or false"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "no_log": "no"})"), Catch::Contains("no_log must be true or false"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "beam_width": 0})"), Catch::Contains("beam_width must be in [1, 128]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "beam_width": 129})"), Catch::Contains("beam_width must be in [1, 128]"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "beam_width": 2.5})"), Catch::Contains("beam_width must be an integer"));
  CHECK_THAT(bad(R"({"prompts": ["a", "b"], "beam_width": 2})"), Catch::Contains("beam_width: beam search takes one prompt, got 2"));
  CHECK_THAT(bad(R"({"prompts": ["a"], "beam_width": 2, "tokens_to_generate": 0})"),
             Catch::Contains("beam_width: beam search needs tokens_to_generate > 0"));
  for (const char* field : {R"("temperature": 1)", R"("top_k": 1)", R"("top_p": 0.5)", R"("random_seed": 1)",
                            R"("logprobs": false)", R"("stop": ["x"])", R"("stop_on_eol": true)",
                            R"("stop_on_double_eol": false)"}) {
    INFO(field);
    CHECK_THAT(bad(std::string(R"({"prompts": ["a"], "beam_width": 2, )") + field + "}"),
               Catch::Contains("cannot be used with beam_width"));
  }
  CHECK_THAT(bad(R"({"prompts": ["a"], "beam_width": 2, "length_penalty": "1"})"),
             Catch::Contains("length_penalty must be a number"));
  // Past ±10, length^penalty overflows or underflows: NaN, inf or -0 scores.
  for (const char* p : {"1e308", "-1e308", "10.5", "-11"}) {
    INFO(p);
    CHECK_THAT(bad(std::string(R"({"prompts": ["a"], "beam_width": 2, "length_penalty": )") + p + "}"),
               Catch::Contains("length_penalty must be in [-10, 10]"));
  }
  for (double p : {10.0, -10.0})
    CHECK(parse_generation_request(json{{"prompts", {"a"}}, {"beam_width", 2}, {"length_penalty", p}}.dump())
              .length_penalty == p);
  CHECK_THAT(bad(R"({"prompts": ["a"], "length_penalty": 1.0})"),
             Catch::Contains("length_penalty is used only by beam search"));
}

TEST_CASE("top_p_decay: top_p shrinks by the factor each step, not below top_p_bound", "[unit]") {
  CHECK(next_top_p(0.9, 0.5, 0.0) == Approx(0.45));
  CHECK(next_top_p(0.45, 0.5, 0.0) == Approx(0.225));
  CHECK(next_top_p(0.9, 0.5, 0.6) == Approx(0.6));
  CHECK(next_top_p(0.6, 0.5, 0.6) == Approx(0.6));
  // After 'a': 'x' (p ≈ 0.6) or 'y' (≈ 0.4); after either the same, so each token is drawn alike.
  Bytes tok;
  Table gen;
  gen.second_logit = 16.0f + static_cast<float>(std::log(0.4 / 0.6));
  for (std::int32_t c : {'a', 'x', 'y'}) gen.next[c] = {'x', 'y'};
  auto generated = [&](const std::string& extra) {
    const std::string text = generate_for_request(gen, tok, 64, parse_generation_request(
        R"({"prompts": ["a"], "tokens_to_generate": 40, "random_seed": 3, "top_p": 1.0)" + extra + "}")).text[0];
    return text.substr(2);  // after the prompt and the first token (drawn with top_p 1)
  };
  // Without decay (or bounded at 0.9: both stay in the nucleus) 'y' is drawn; decayed to 0.5 after
  // the first token, only 'x' is left.
  CHECK(generated("").find('y') != std::string::npos);
  CHECK(generated(R"(, "top_p_decay": 0.9, "top_p_bound": 0.9)").find('y') != std::string::npos);
  const std::string decayed = generated(R"(, "top_p_decay": 0.5)");
  CHECK(decayed == std::string(39, 'x'));
  // Decay 0.95 from 1: top_p is 0.95^k at step k + 1, below 0.6 (only 'x') from k = 10 on.
  const std::string slow = generated(R"(, "top_p_decay": 0.95)");
  CHECK(slow.substr(10).find('y') == std::string::npos);
  CHECK(slow.substr(0, 9).find('y') != std::string::npos);
}

TEST_CASE("stop_on_eol and stop_on_double_eol end a row at a newline, which stays in the text", "[unit]") {
  Bytes tok;
  Table gen;
  gen.next = {{'a', {'b', -1}}, {'b', {'\n', -1}}, {'\n', {'\n', -1}}};
  auto text = [&](const std::string& prompt, const std::string& extra) {
    json body = {{"prompts", {prompt}}, {"tokens_to_generate", 5}, {"top_k", 1}};
    body.update(json::parse("{" + extra + "}"));
    return generate_for_request(gen, tok, 64, parse_generation_request(body.dump())).text[0];
  };
  CHECK(text("a", "") == "ab\n\n\n\n");
  CHECK(text("a", R"("stop_on_eol": true)") == "ab\n");
  CHECK(text("a", R"("stop_on_double_eol": true)") == "ab\n\n");
  CHECK(text("a", R"("stop_on_eol": true, "stop_on_double_eol": true)") == "ab\n\n");  // double wins (Megatron)
  // The token before the first generated one is the prompt's.
  CHECK(text("x\n", R"("stop_on_double_eol": true)") == "x\n\n");
  CHECK(text("x\n", R"("stop_on_eol": true)") == "x\n\n");
  // logprobs cover the newline that ended the row.
  const GenerationResponse r = generate_for_request(gen, tok, 64, parse_generation_request(
      R"({"prompts": ["a"], "tokens_to_generate": 5, "top_k": 1, "stop_on_eol": true, "logprobs": true})"));
  CHECK((*r.logprobs)[0].size() == 2);
  CHECK(r.segments[0] == std::vector<std::string>{"a", "b", "\n"});
}

namespace {
// Tokens of several characters: a tokenizer's own "\n\n" and "):".
class Words : public Tokenizer {
 public:
  std::vector<std::string> words{"a", "\n", "\n\n", "):", ":", "b", "<eod>"};
  std::vector<std::int32_t> encode(std::string_view) const override { return {}; }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (std::int32_t id : ids) s += words.at(static_cast<std::size_t>(id));
    return s;
  }
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(words.size()); }
  std::int32_t eod() const override { return 6; }
  std::optional<std::int32_t> special_token(std::string_view) const override { return std::nullopt; }
  std::string name() const override { return "words"; }
};
}  // namespace

TEST_CASE("newline tokens: Megatron's GPT-2 ids as token texts", "[unit]") {
  Words tok;
  NewlineTokens n(tok);
  constexpr std::int32_t a = 0, eol = 1, double_eol = 2, paren_colon = 3, colon = 4, b = 5;
  CHECK(!n.stops(false, false, eol, eol));
  CHECK(n.stops(true, false, a, eol));
  CHECK(n.stops(true, false, std::nullopt, double_eol));
  CHECK(!n.stops(true, false, a, b));
  CHECK(!n.stops(false, true, a, eol));
  CHECK(n.stops(false, true, eol, eol));
  CHECK(n.stops(false, true, a, double_eol));
  CHECK(!n.stops(false, true, std::nullopt, eol));
  CHECK(!n.stops(false, true, double_eol, eol));  // Megatron: 198 after 198 only
  std::vector<float> logits(7, 1.0f);
  n.suppress_after_colon(a, logits.data(), 7);
  CHECK(logits == std::vector<float>(7, 1.0f));
  for (std::int32_t last : {colon, paren_colon}) {
    std::vector<float> l(7, 1.0f);
    n.suppress_after_colon(last, l.data(), 7);
    CHECK(l[eol] == -1e10f);
    CHECK(l[double_eol] == 1.0f);  // Megatron suppresses the one "\n" token
    CHECK(l[a] == 1.0f);
  }
}

TEST_CASE("prevent_newline_after_colon: no newline right after a colon", "[unit]") {
  Bytes tok;
  Table gen;
  gen.next = {{'a', {':', -1}}, {':', {'\n', 'q'}}, {'q', {'\n', -1}}};
  auto run = [&](const std::string& extra) {
    return generate_for_request(gen, tok, 64, parse_generation_request(
        R"({"prompts": ["a"], "tokens_to_generate": 3, "top_k": 1, "logprobs": true)" + extra + "}"));
  };
  CHECK(run("").text[0] == "a:\nz");
  const GenerationResponse r = run(R"(, "prevent_newline_after_colon": true)");
  CHECK(r.text[0] == "a:q\n");  // a newline after 'q' is fine
  // As Megatron, logprobs come from the changed logits: 'q' (logit 8 against 254 zeros) is now likely.
  CHECK((*r.logprobs)[0][1] > -0.2);
  // A prompt ending with a colon counts.
  CHECK(generate_for_request(gen, tok, 64, parse_generation_request(
      R"({"prompts": [":"], "tokens_to_generate": 1, "top_k": 1, "prevent_newline_after_colon": true})")).text[0] == ":q");
}

namespace {

// Four tokens: 'a', 'b', 'c' and end of document (3).
class Abc : public Tokenizer {
 public:
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    for (char c : text) ids.push_back(c - 'a');
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (std::int32_t id : ids) s += id == 3 ? std::string("<eod>") : std::string(1, static_cast<char>('a' + id));
    return s;
  }
  std::int64_t vocab_size() const override { return 4; }
  std::int32_t eod() const override { return 3; }
  std::optional<std::int32_t> special_token(std::string_view) const override { return std::nullopt; }
  std::string name() const override { return "abc"; }
};

// Logits in [−2, 2], a hash of the whole context and the token: every beam's future differs.
std::vector<float> hashed_logits(const std::vector<std::int32_t>& context) {
  std::vector<float> out(4);
  for (std::int32_t v = 0; v < 4; ++v) {
    std::uint64_t h = 1469598103934665603ull;
    for (std::int32_t t : context) h = (h ^ static_cast<std::uint64_t>(t + 7)) * 1099511628211ull;
    h = (h ^ static_cast<std::uint64_t>(v + 101)) * 1099511628211ull;
    h ^= h >> 29;
    out[static_cast<std::size_t>(v)] = static_cast<float>(static_cast<double>(h % 10007) / 10007.0 * 4.0 - 2.0);
  }
  return out;
}

// A session that keeps every row's context, so that wrong row bookkeeping gives other logits.
class HashedSession : public GenerationSession {
 public:
  explicit HashedSession(std::vector<std::vector<std::int32_t>> rows) : rows_(std::move(rows)) {}
  Tensor logits() const {
    std::vector<float> all;
    for (const auto& r : rows_) {
      const std::vector<float> l = hashed_logits(r);
      all.insert(all.end(), l.begin(), l.end());
    }
    return Tensor::from<float>({static_cast<std::int64_t>(rows_.size()), 4}, all);
  }
  Tensor step(const std::vector<std::int32_t>& next) override {
    REQUIRE(next.size() == rows_.size());
    for (std::size_t b = 0; b < next.size(); ++b) rows_[b].push_back(next[b]);
    ++steps;
    return logits();
  }
  std::int64_t batch() const override { return static_cast<std::int64_t>(rows_.size()); }
  std::int64_t length(std::int64_t row) const override { return static_cast<std::int64_t>(rows_.at(row).size()); }
  std::int64_t capacity() const override { return 64; }
  void select_rows(const std::vector<std::int64_t>& rows) override {
    std::vector<std::vector<std::int32_t>> picked;
    for (std::int64_t r : rows) picked.push_back(rows_.at(static_cast<std::size_t>(r)));
    rows_ = std::move(picked);
  }
  inline static int steps = 0;

 private:
  std::vector<std::vector<std::int32_t>> rows_;
};

class Hashed : public Generator {
 public:
  bool cached = true;
  Tensor next_token_logits(const Tensor& tokens) override {
    const std::int64_t B = tokens.size(0), T = tokens.size(1);
    const std::int32_t* t = tokens.data<std::int32_t>();
    std::vector<std::vector<std::int32_t>> rows;
    for (std::int64_t b = 0; b < B; ++b) rows.emplace_back(t + b * T, t + (b + 1) * T);
    return HashedSession(rows).logits();
  }
  SessionStart start_session(const std::vector<std::vector<std::int32_t>>& prompts, std::int64_t = 0) override {
    if (!cached) return {};
    auto s = std::make_unique<HashedSession>(prompts);
    Tensor logits = s->logits();
    return {std::move(s), logits};
  }
};

double logprob(const std::vector<std::int32_t>& context, std::int32_t token) {
  const std::vector<float> l = hashed_logits(context);
  return token_logprob(l.data(), 4, token);
}

struct Scored {
  std::vector<std::int32_t> ids;
  double score;
};

// Every finished sequence of up to n tokens: k < n non-stop tokens and the stop token (length k + 1),
// or n non-stop tokens; scored as Megatron's BeamHypotheses.
std::vector<Scored> exhaustive(const std::vector<std::int32_t>& prompt, std::int64_t n, double penalty) {
  std::vector<Scored> out;
  std::function<void(std::vector<std::int32_t>, double)> walk = [&](std::vector<std::int32_t> ids, double sum) {
    std::vector<std::int32_t> context = prompt;
    context.insert(context.end(), ids.begin(), ids.end());
    const auto k = static_cast<std::int64_t>(ids.size());
    if (k == n) {
      out.push_back({ids, sum / std::pow(static_cast<double>(k), penalty)});
      return;
    }
    out.push_back({ids, (sum + logprob(context, 3)) / std::pow(static_cast<double>(k + 1), penalty)});
    for (std::int32_t v = 0; v < 3; ++v) {
      std::vector<std::int32_t> longer = ids;
      longer.push_back(v);
      walk(longer, sum + logprob(context, v));
    }
  };
  walk({}, 0.0);
  std::sort(out.begin(), out.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
  return out;
}

}  // namespace

TEST_CASE("beam search: a beam as wide as every sequence finds them all, scored as Megatron scores", "[unit]") {
  Abc tok;
  Hashed gen;
  const std::vector<std::int32_t> prompt{0, 1};
  for (double penalty : {1.0, 0.5, 0.0, 2.0}) {
    INFO("length_penalty " << penalty);
    const std::vector<Scored> all = exhaustive(prompt, 3, penalty);
    REQUIRE(all.size() == 40u);  // 1 + 3 + 9 stopped, 27 of three tokens
    BeamSearchOptions o;
    o.beam_width = 64;
    o.max_new_tokens = 3;
    o.stop_token = 3;
    o.length_penalty = penalty;
    for (bool cached : {true, false}) {
      INFO("cached " << cached);
      gen.cached = cached;
      HashedSession::steps = 0;
      const std::vector<BeamHypothesis> beams = beam_search(gen, tok, prompt, o);
      CHECK(HashedSession::steps == (cached ? 2 : 0));  // the prompt, then two steps
      REQUIRE(beams.size() == all.size());
      for (std::size_t i = 0; i < beams.size(); ++i) {
        CHECK(beams[i].score == Approx(all[i].score).epsilon(1e-12));
        CHECK(beams[i].ids == all[i].ids);
      }
    }
  }
}

TEST_CASE("beam scores order best first with NaN last, a strict weak ordering", "[unit]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<double> scores{-1.0, nan, -inf, 0.0, -0.0, nan, -3.5, inf, -1.0};
  for (double a : scores) {
    CHECK(!better_beam_score(a, a));  // irreflexive, NaN included
    for (double b : scores) CHECK(!(better_beam_score(a, b) && better_beam_score(b, a)));
  }
  std::stable_sort(scores.begin(), scores.end(), better_beam_score);
  CHECK(scores[0] == inf);
  CHECK(scores[1] == 0.0);
  CHECK(scores[3] == -1.0);
  CHECK(scores[5] == -3.5);
  CHECK(scores[6] == -inf);
  CHECK(std::isnan(scores[7]));
  CHECK(std::isnan(scores[8]));
}

TEST_CASE("beam search: narrow beams, cached as uncached, each score its beam's", "[unit]") {
  Abc tok;
  Hashed gen;
  const std::vector<std::int32_t> prompt{2};
  for (std::int64_t width : {1, 2, 3}) {
    for (double penalty : {1.0, 0.3}) {
      BeamSearchOptions o;
      o.beam_width = width;
      o.max_new_tokens = 6;
      o.stop_token = 3;
      o.length_penalty = penalty;
      gen.cached = true;
      const std::vector<BeamHypothesis> cached = beam_search(gen, tok, prompt, o);
      gen.cached = false;
      const std::vector<BeamHypothesis> plain = beam_search(gen, tok, prompt, o);
      REQUIRE(!cached.empty());
      CHECK(cached.size() <= static_cast<std::size_t>(width));
      REQUIRE(cached.size() == plain.size());
      for (std::size_t i = 0; i < cached.size(); ++i) {
        CHECK(cached[i].ids == plain[i].ids);
        CHECK(cached[i].score == plain[i].score);
        if (i > 0) CHECK(cached[i].score <= cached[i - 1].score);
        // The score from the model: shorter than 6 means it ended at the stop token, which counts.
        std::vector<std::int32_t> context = prompt;
        double sum = 0;
        for (std::int32_t t : cached[i].ids) {
          sum += logprob(context, t);
          context.push_back(t);
        }
        auto length = static_cast<double>(cached[i].ids.size());
        if (cached[i].ids.size() < 6) {
          sum += logprob(context, 3);
          length += 1;
        }
        CHECK(cached[i].score == Approx(sum / std::pow(length, penalty)).epsilon(1e-12));
      }
      // One beam is greedy until the stop token wins.
      if (width == 1) {
        std::vector<std::int32_t> context = prompt, greedy;
        for (int i = 0; i < 6; ++i) {
          const std::vector<float> l = hashed_logits(context);
          const auto best = static_cast<std::int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
          if (best == 3) break;
          greedy.push_back(best);
          context.push_back(best);
        }
        CHECK(cached[0].ids == greedy);
      }
    }
  }
}

TEST_CASE("generation request: beam_width answers text, segments and scores of the whole beam", "[unit]") {
  Bytes tok;
  Counting gen;
  // Counting is certain of its next token: one beam is greedy, and the stop token ends it.
  GenerationResponse r = generate_for_request(gen, tok, 16, parse_generation_request(
      R"({"prompts": ["xyzc"], "tokens_to_generate": 5, "beam_width": 1})"));
  CHECK(r.text == std::vector<std::string>{"xyzcde"});
  CHECK(r.segments[0] == std::vector<std::string>{"x", "y", "z", "c", "d", "e"});
  REQUIRE(r.scores);
  REQUIRE(r.scores->size() == 1);
  CHECK((*r.scores)[0] < 0);
  CHECK((*r.scores)[0] > -0.01);  // (log p(d) + log p(e) + log p(end)) / 3, all near 0
  CHECK(!r.logprobs);
  json j = json::parse(generation_response_json(r));
  CHECK(j["text"] == json({"xyzcde"}));
  CHECK(j.contains("scores"));
  CHECK(!j.contains("logprobs"));
  // Three beams: the certain one first, then the others, each with its prompt; a stop_token of its own.
  r = generate_for_request(gen, tok, 16, parse_generation_request(
      R"({"prompts": ["a"], "tokens_to_generate": 2, "beam_width": 3, "stop_token": 100, "length_penalty": 0.0})"));
  REQUIRE(r.text.size() == 3);
  CHECK(r.text[0] == "abc");
  for (const std::string& t : r.text) CHECK(t.rfind("a", 0) == 0);
  CHECK(std::is_sorted(r.scores->rbegin(), r.scores->rend()));
  // The context check holds for beams too.
  CHECK_THAT(message_of<BadRequest>([&] {
               generate_for_request(gen, tok, 8, parse_generation_request(
                   R"({"prompts": ["abcdef"], "tokens_to_generate": 3, "beam_width": 2})"));
             }),
             Catch::Contains("would exceed the context of 8"));
}

namespace {

// Twelve tokens, newlines and a colon among them, so that a tiny random GPT generates them often.
class Few : public Tokenizer {
 public:
  std::vector<std::string> words{"a", "b", "c", "d", "e", ":", "\n", "\n\n", " ", "f", "g", "<eod>"};
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    for (char c : text)
      ids.push_back(
          static_cast<std::int32_t>(std::find(words.begin(), words.end(), std::string(1, c)) - words.begin()));
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (std::int32_t id : ids) s += words.at(static_cast<std::size_t>(id));
    return s;
  }
  std::int64_t vocab_size() const override { return 12; }
  std::int32_t eod() const override { return 11; }
  std::optional<std::int32_t> special_token(std::string_view) const override { return std::nullopt; }
  std::string name() const override { return "few"; }
};

// Counts the sessions and the rows stepped, around a real Generator.
class CountingSessions : public Generator {
 public:
  explicit CountingSessions(Generator& inner) : inner_(inner) {}
  Tensor next_token_logits(const Tensor& tokens) override {
    ++forwards;
    return inner_.next_token_logits(tokens);
  }
  SessionStart start_session(const std::vector<std::vector<std::int32_t>>& prompts,
                             std::int64_t capacity_asked = 0) override {
    ++sessions;
    rows = prompts.size();
    SessionStart s = inner_.start_session(prompts, capacity_asked);
    capacity = s.session ? s.session->capacity() : 0;
    if (s.session) s.session = std::make_unique<Stepped>(std::move(s.session), *this);
    return s;
  }
  int sessions = 0, forwards = 0, steps = 0;
  std::size_t rows = 0;
  std::int64_t capacity = 0;  // the last session's

 private:
  class Stepped : public ForwardingSession {
   public:
    Stepped(std::unique_ptr<GenerationSession> inner, CountingSessions& counts)
        : ForwardingSession(std::move(inner)), counts_(counts) {}
    Tensor step(const std::vector<std::int32_t>& next) override {
      ++counts_.steps;
      for (std::int64_t b = 0; b < batch(); ++b) REQUIRE(length(b) < capacity());
      return ForwardingSession::step(next);
    }

   private:
    CountingSessions& counts_;
  };
  Generator& inner_;
};


}  // namespace

TEST_CASE("generation request: the prompts are one cached session, each row what its prompt gives alone", "[unit]") {
  Few tok;
  auto model = test::make_tiny_gpt(tok.vocab_size());
  CountingSessions gen(*model->generator());
  // Prompts of 2, 5 and 9 tokens; 9 + 7 fills the context of 16.
  const std::vector<std::string> prompts{"ab", "c:d e", "gfedcba:f"};
  const auto body = [&](const std::vector<std::string>& p, const std::string& extra) {
    json j = json::parse("{" + extra + "}");
    j["prompts"] = p;
    return parse_generation_request(j.dump());
  };
  // Greedy and sampled; stop strings, newline rules, another stop token, top_p decay and scoring. The
  // rows stop at different tokens (end of document, a rule) and prompt 2's often at the context's end.
  const std::vector<std::string> cases{
      R"("tokens_to_generate": 7, "top_k": 1, "logprobs": true)",
      R"("tokens_to_generate": 7, "top_k": 1, "logprobs": true, "stop": ["aaa"], "stop_on_eol": true)",
      R"("tokens_to_generate": 7, "random_seed": 11, "logprobs": true)",
      R"("tokens_to_generate": 7, "random_seed": 11, "logprobs": true, "stop": ["\n\n\n"])",
      R"("tokens_to_generate": 7, "random_seed": 5, "temperature": 0.7, "logprobs": true, "stop_on_double_eol": true,
         "prevent_newline_after_colon": true, "stop_token": 3)",
      R"("tokens_to_generate": 7, "random_seed": 2, "top_p": 0.9, "top_p_decay": 0.7, "top_p_bound": 0.3,
         "logprobs": true)",
      R"("tokens_to_generate": 0, "logprobs": true)",
  };
  std::vector<GenerationResponse> results;
  bool mixed = false;  // one row stopped early while another reached the context's end
  for (const std::string& c : cases) {
    INFO(c);
    gen.sessions = gen.forwards = gen.steps = 0;
    const GenerationRequest batched_request = body(prompts, c);
    const GenerationResponse batched = generate_for_request(gen, tok, 16, batched_request, 77);
    // One session of three rows, no full forward; at most one step per token after the prefill.
    CHECK(gen.sessions == 1);
    CHECK(gen.rows == 3);
    CHECK(gen.forwards == 0);
    const std::int64_t n = batched_request.tokens_to_generate;
    CHECK(gen.steps <= (n > 0 ? n - 1 : 9 - 2));  // scoring: the longest prompt's tokens after its first
    CHECK(gen.capacity == (n > 0 ? 9 + n : 9));  // the longest prompt and the tokens to generate
    REQUIRE(batched.text.size() == 3);
    REQUIRE(batched.logprobs);
    bool early = false, full_context = false;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      INFO("prompt " << i);
      const GenerationResponse alone = generate_for_request(gen, tok, 16, body({prompts[i]}, c), 77);
      CHECK(batched.text[i] == alone.text[0]);
      CHECK(batched.segments[i] == alone.segments[0]);
      const std::vector<double>& lb = (*batched.logprobs)[i];
      const std::vector<double>& la = (*alone.logprobs)[0];
      REQUIRE(lb.size() == la.size());
      for (std::size_t t = 0; t < lb.size(); ++t) CHECK(lb[t] == Approx(la[t]).margin(1e-5));
      const std::size_t length = tok.encode(prompts[i]).size() + static_cast<std::size_t>(n);
      early = early || batched.segments[i].size() < length;
      full_context = full_context || batched.segments[i].size() == 16;
    }
    mixed = mixed || (early && full_context);
    results.push_back(batched);
  }
  CHECK(mixed);
  // The stop string cut some row before "\n\n\n", the others are as without it.
  bool cut = false;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const std::string& with = results[3].text[i];
    const std::string& without = results[2].text[i];
    CHECK(without.starts_with(with));
    if (with != without) {
      CHECK(without.substr(with.size()).starts_with("\n\n\n"));
      cut = true;
    }
  }
  CHECK(cut);
}

TEST_CASE("generation request: the session's cache holds the longest prompt and the tokens to generate", "[unit]") {
  Few tok;
  auto model = test::make_tiny_gpt(tok.vocab_size());
  CountingSessions gen(*model->generator());
  // Not the context of 16: many short rows at the full length were most of a request's memory.
  GenerationResponse r = generate_for_request(gen, tok, 16, parse_generation_request(
      R"({"prompts": ["ab", "c", "d"], "tokens_to_generate": 2, "top_k": 1, "logprobs": true})"));
  CHECK(gen.capacity == 4);
  REQUIRE(r.logprobs);
  // As a session at the full length answers (a row's cache never fills before its last token).
  Generator& full = *model->generator();
  for (std::size_t i = 0; i < 3; ++i) {
    const std::vector<std::string> prompt{std::vector<std::string>{"ab", "c", "d"}[i]};
    json j = {{"prompts", prompt}, {"tokens_to_generate", 2}, {"top_k", 1}, {"logprobs", true}};
    const GenerationResponse alone = generate_for_request(full, tok, 16, parse_generation_request(j.dump()));
    CHECK(r.text[i] == alone.text[0]);
  }
  generate_for_request(gen, tok, 16, parse_generation_request(R"({"prompts": ["abc", "c"], "tokens_to_generate": 0, "logprobs": true})"));
  CHECK(gen.capacity == 3);  // scoring: the longest prompt
  generate_for_request(gen, tok, 16, parse_generation_request(
      R"({"prompts": ["abc"], "tokens_to_generate": 4, "beam_width": 3, "stop_token": 11})"));
  CHECK(gen.capacity == 7);  // beams: the prompt and every token a beam can add
  generate_for_request(gen, tok, 16, parse_generation_request(R"({"prompts": ["abcdefga"], "tokens_to_generate": 8})"));
  CHECK(gen.capacity == 16);  // never past the context
}

TEST_CASE("generation request: 4 prompts batched against one after another, timed (printed, not checked)", "[unit]") {
  Few tok;
  auto model = test::make_tiny_gpt(tok.vocab_size());
  Generator& gen = *model->generator();
  const std::vector<std::string> prompts{"ab", "c:d e", "gfe", "dcba"};
  const auto request = [&](const std::vector<std::string>& p) {
    json j = {{"prompts", p}, {"tokens_to_generate", 10}, {"top_k", 1}};
    return parse_generation_request(j.dump());
  };
  const auto seconds = [](auto&& f) {
    f();  // warm
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 50; ++i) f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 50;
  };
  const GenerationRequest all = request(prompts);
  const double batched = seconds([&] { generate_for_request(gen, tok, 16, all, 1); });
  const double sequential = seconds([&] {
    for (const std::string& p : prompts) generate_for_request(gen, tok, 16, request({p}), 1);
  });
  std::printf("4 prompts, 10 tokens each, tiny GPT (2 layers, hidden 32): batched %.2f ms, one after another %.2f ms "
              "(%.1fx)\n", batched * 1e3, sequential * 1e3, sequential / batched);
}
