// tessera serve's request handling without HTTP (apps/tools generation_request.hpp): parsing and
// validation of Megatron's fields (every invalid request a BadRequest naming the field), generation
// for a request with a scripted Generator (greedy top_k = 1, stop token, stop strings, scoring mode,
// the context check, add_BOS) and the response JSON.
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "expect_error.hpp"
#include "tessera/generation.hpp"
#include "tessera/tensor.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/tools/generation_request.hpp"

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
    const std::int32_t last = tokens.data<std::int32_t>()[tokens.numel() - 1];
    std::vector<float> logits(257, 0.0f);
    logits[last == 'e' ? 256 : (last + 1) % 256] = 16.0f;
    return Tensor::from<float>({1, 257}, logits);
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
  CHECK_THAT(bad(R"({"prompts": ["a"], "beam_width": 2})"), Catch::Contains("unknown field \"beam_width\""));
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
