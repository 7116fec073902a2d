// Generation with a key/value cache (Megatron-LM's inference_params; nn/kv_cache.hpp, GPT's
// start_session, generate_text's cached path): for GPT-2-style (MHA, learned positions), MQA and
// Llama-style (rope, RMSNorm, SwiGLU, GQA, untied) models, cached greedy generation gives the same
// tokens and the same logits (within 1e-5 of the logits' scale) as a full forward over the context
// at every step; a batch of prompts of different lengths equals each prompt generated alone;
// generate_text's logprobs are log_softmax of the uncached logits; a full cache refuses a step and
// generate_text slides the window uncached from there, as the uncached loop does; generate_texts
// (a batch of prompts in one session, rows leaving it as their caches fill) gives each row what
// generate_text gives its prompt alone; select_rows (beam search) copies rows with their lengths,
// and later steps equal the uncached forward of each row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tiny_gpt.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/nn/kv_cache.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/tools/sampling.hpp"
#include "tessera/tools/text_generation.hpp"

using namespace tessera;

namespace {

constexpr std::int64_t kVocab = 37, kSeq = 16;

const char* const kGpt2 = "";
const char* const kMqa = "num_query_groups = 1\n";
const char* const kLlama =
    "num_query_groups = 2\nposition_embedding_type = \"rope\"\nnormalization = \"RMSNorm\"\nswiglu = true\n"
    "untie_embeddings_and_output_weights = true\nadd_bias_linear = false\nrotary_percent = 0.5\n";
// q/k norms before the rotation, which a cached step applies to its one token too; and Llama 3.1's
// scaled rotary frequencies at each step's interpolated position.
const char* const kQkNorm =
    "num_query_groups = 2\nposition_embedding_type = \"rope\"\nqk_layernorm = true\nadd_bias_linear = false\n"
    "add_qkv_bias = true\nuse_rope_scaling = true\nrotary_base = 500000.0\nrotary_seq_len_interpolation_factor = 2.5\n";

// Mixture-of-experts MLPs: a cached step routes its one token as the whole sequence routes it.
const char* const kMoe = "num_experts = 4\nmoe_router_topk = 2\nmoe_ffn_hidden_size = 24\n";

// A sliding window of 5 keys (Mistral's sliding_window 5): prompts and steps past it attend their
// last 5 positions only, each row at its own position.
const std::string kWindow = std::string(kLlama) + "window_size = [4, 0]\n";
// YaRN positions (gpt-oss's factor and base): a cached step rotates its token at its own position.
const std::string kYarnBlocks = "num_query_groups = 2\nposition_embedding_type = \"yarn\"\nrotary_base = 150000.0\n"
                                "normalization = \"RMSNorm\"\nswiglu = true\nadd_bias_linear = false\n";
const std::string kYarn = kYarnBlocks + "yarn_rotary_scaling_factor = 32.0\n";
// Attention sinks (Megatron-Core's softmax_type): learned per head, and the off-by-one softmax's zero.
const std::string kSink = std::string(kLlama) + "softmax_type = \"learnable\"\n";
const std::string kOffByOne = std::string(kGpt2) + "softmax_type = \"off-by-one\"\n";
// The window in the second of the two layers only (Megatron-Core's window_attn_skip_freq).
const std::string kWindowLayers = kWindow + "window_attn_skip_freq = [0, 1]\n";
// No rotary positions in the first of the two layers (Megatron-Core's no_rope_freq).
const std::string kNope = std::string(kLlama) + "no_rope_freq = [1, 0]\n";

auto make_model(const std::string& extra) { return test::make_tiny_gpt(kVocab, extra); }

std::vector<float> row_of(const Tensor& logits, std::int64_t b) {
  const std::vector<float> all = logits.to_vector<float>();
  const std::int64_t V = logits.size(1);
  return {all.begin() + b * V, all.begin() + (b + 1) * V};
}

// max |a − b| / max |b|
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

std::int32_t argmax(const std::vector<float>& v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::vector<float> uncached(Generator& g, const std::vector<std::int32_t>& context) {
  return row_of(g.next_token_logits(Tensor::from<std::int32_t>({1, static_cast<std::int64_t>(context.size())}, context)), 0);
}

std::vector<std::int32_t> random_prompt(std::mt19937& rng, std::size_t n) {
  std::uniform_int_distribution<int> tok(0, kVocab - 1);
  std::vector<std::int32_t> p(n);
  for (auto& t : p) t = tok(rng);
  return p;
}

// Greedy from `prompt` until the cache is full: every step's cached logits against the uncached
// forward over the whole context. Returns the largest relative difference.
double check_greedy(Generator& g, std::vector<std::int32_t> ids) {
  SessionStart s = g.start_session({ids});
  REQUIRE(s.session);
  CHECK(s.session->capacity() == kSeq);
  std::vector<float> cached = row_of(s.logits, 0);
  double worst = 0;
  while (true) {
    const std::vector<float> full = uncached(g, ids);
    worst = std::max(worst, relative_difference(cached, full));
    const std::int32_t next = argmax(full);
    REQUIRE(argmax(cached) == next);
    if (static_cast<std::int64_t>(ids.size()) == kSeq) break;
    ids.push_back(next);
    cached = row_of(s.session->step({next}), 0);
    CHECK(s.session->length(0) == static_cast<std::int64_t>(ids.size()));
  }
  // Full: another step is refused, naming the cache.
  const std::string msg = message_of<Error>([&] { s.session->step({0}); });
  CHECK(msg.find("key/value cache is full") != std::string::npos);
  return worst;
}

}  // namespace

TEST_CASE("cached greedy generation equals uncached: GPT-2-style, MQA, Llama-style, q/k norms, MoE, sliding windows, "
          "sinks",
          "[unit]") {
  for (const std::string extra : {kGpt2, kMqa, kLlama, kQkNorm, kMoe, kWindow.c_str(), kWindowLayers.c_str(),
                                  kSink.c_str(), kOffByOne.c_str(), kYarn.c_str(), kNope.c_str()}) {
    INFO("config: " << extra);
    auto model = make_model(extra);
    Generator& g = require_generator(*model, "model plugin 'gpt'");
    std::mt19937 rng(3);
    for (std::size_t n : {1u, 5u, 11u}) {
      const double worst = check_greedy(g, random_prompt(rng, n));
      INFO("prompt " << n << " tokens: max relative logit difference " << worst);
      CHECK(worst < 1e-5);
    }
  }
}

TEST_CASE("a batch of prompts of different lengths equals each prompt generated alone", "[unit]") {
  for (const std::string extra : {kGpt2, kMqa, kLlama, kQkNorm, kMoe, kWindow.c_str(), kWindowLayers.c_str(),
                                  kSink.c_str(), kOffByOne.c_str(), kYarn.c_str(), kNope.c_str()}) {
    INFO("config: " << extra);
    auto model = make_model(extra);
    Generator& g = *model->generator();
    std::mt19937 rng(11);
    const std::vector<std::vector<std::int32_t>> prompts{random_prompt(rng, 3), random_prompt(rng, 9),
                                                         random_prompt(rng, 1), random_prompt(rng, 6)};
    const std::int64_t B = static_cast<std::int64_t>(prompts.size()), steps = 6;
    // Each alone: the cached session of that one prompt.
    std::vector<std::vector<std::vector<float>>> alone(prompts.size());
    std::vector<std::vector<std::int32_t>> contexts = prompts;
    for (std::size_t b = 0; b < prompts.size(); ++b) {
      SessionStart s = g.start_session({prompts[b]});
      alone[b].push_back(row_of(s.logits, 0));
      for (std::int64_t i = 0; i < steps; ++i) alone[b].push_back(row_of(s.session->step({argmax(alone[b].back())}), 0));
    }
    SessionStart s = g.start_session(prompts);
    REQUIRE(s.session->batch() == B);
    Tensor logits = s.logits;
    for (std::int64_t i = 0; i <= steps; ++i) {
      std::vector<std::int32_t> next;
      for (std::int64_t b = 0; b < B; ++b) {
        const std::vector<float> row = row_of(logits, b);
        CHECK(relative_difference(row, alone[b][i]) < 1e-5);
        CHECK(relative_difference(row, uncached(g, contexts[b])) < 1e-5);  // and the full forward
        next.push_back(argmax(row));
        REQUIRE(next.back() == argmax(alone[b][i]));
        contexts[b].push_back(next.back());
        CHECK(s.session->length(b) == static_cast<std::int64_t>(prompts[b].size()) + i);
      }
      if (i < steps) logits = s.session->step(next);
    }
  }
}

namespace {
// Ids 0–36 as letters; 36 is end of document.
class Letters : public Tokenizer {
 public:
  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> ids;
    for (char c : text) ids.push_back(static_cast<std::int32_t>(static_cast<unsigned char>(c) % 36));
    return ids;
  }
  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (std::int32_t id : ids) s.push_back(static_cast<char>('0' + id));
    return s;
  }
  std::int64_t vocab_size() const override { return kVocab; }
  std::int32_t eod() const override { return 36; }
  std::optional<std::int32_t> special_token(std::string_view) const override { return std::nullopt; }
  std::string name() const override { return "letters"; }
};
}  // namespace

TEST_CASE("generate_text: cached and uncached give the same tokens and logprobs, past the window too", "[unit]") {
  for (const char* extra : {kGpt2, kLlama}) {
    INFO("config: " << extra);
    auto model = make_model(extra);
    Generator& g = *model->generator();
    Letters tokenizer;
    std::mt19937 rng(5);
    const std::vector<std::int32_t> prompt = random_prompt(rng, 4);
    for (bool slide : {true, false}) {
      TextGenerationOptions o;
      o.max_new_tokens = 20;  // 4 + 20 > the window of 16
      o.sampling.temperature = 0.0;
      o.window = kSeq;
      o.slide_window = slide;
      GeneratedText cached = generate_text(g, tokenizer, prompt, o);
      o.use_kv_cache = false;
      GeneratedText plain = generate_text(g, tokenizer, prompt, o);
      CHECK(plain.cached_steps == 0);
      // Cached while the context fits the window: the prompt's logits, then steps up to a context of
      // 16 (without sliding generation ends there: 12 tokens from 12 cached logits).
      CHECK(cached.cached_steps == (slide ? 13 : 12));
      CHECK(cached.ids == plain.ids);
      CHECK(cached.text == plain.text);
      CHECK(cached.reason == plain.reason);
      CHECK(cached.ids.size() == (slide ? 20u : 12u));
      REQUIRE(cached.logprobs.size() == cached.ids.size());
      // logprobs = log_softmax of the uncached logits at the chosen token.
      std::vector<std::int32_t> context = prompt;
      for (std::size_t i = 0; i < cached.ids.size(); ++i) {
        std::vector<std::int32_t> window(context.end() - std::min<std::ptrdiff_t>(kSeq, context.size()), context.end());
        const std::vector<float> full = uncached(g, window);
        double z = 0;
        const float top = *std::max_element(full.begin(), full.end());
        for (float v : full) z += std::exp(static_cast<double>(v) - top);
        const double expected = full[static_cast<std::size_t>(cached.ids[i])] - top - std::log(z);
        CHECK(cached.logprobs[i] == Approx(expected).margin(1e-5));
        CHECK(plain.logprobs[i] == Approx(expected).margin(1e-6));
        CHECK(token_logprob(full.data(), kVocab, cached.ids[i]) == Approx(expected).margin(1e-9));
        context.push_back(cached.ids[i]);
      }
    }
  }
}

TEST_CASE("generate_texts: a batch of prompts, each row what generate_text gives it alone, past the window too",
          "[unit]") {
  for (const char* extra : {kGpt2, kLlama}) {
    INFO("config: " << extra);
    auto model = make_model(extra);
    Generator& g = *model->generator();
    Letters tokenizer;
    std::mt19937 rng(9);
    // 3, 7 and 16 tokens: the last fills the cache with its prompt and slides uncached from its
    // second token (or, without sliding, ends there); the others leave the session as theirs fill.
    const std::vector<std::vector<std::int32_t>> prompts{random_prompt(rng, 3), random_prompt(rng, 7),
                                                         random_prompt(rng, 16)};
    const std::vector<std::uint64_t> seeds{4, 8, 15};
    for (bool slide : {true, false}) {
      for (double temperature : {0.0, 1.0}) {
        INFO("slide " << slide << ", temperature " << temperature);
        TextGenerationOptions o;
        o.max_new_tokens = 15;
        o.sampling.temperature = temperature;
        o.window = kSeq;
        o.slide_window = slide;
        std::vector<std::string> streamed(prompts.size());
        const std::vector<GeneratedText> batch = generate_texts(
            g, tokenizer, prompts, o, seeds, [&](std::size_t b, std::string_view p) { streamed[b] += p; });
        REQUIRE(batch.size() == prompts.size());
        for (std::size_t b = 0; b < prompts.size(); ++b) {
          INFO("prompt " << b);
          o.seed = seeds[b];
          const GeneratedText alone = generate_text(g, tokenizer, prompts[b], o);
          CHECK(batch[b].ids == alone.ids);
          CHECK(batch[b].text == alone.text);
          CHECK(streamed[b] == alone.text);
          CHECK(batch[b].reason == alone.reason);
          CHECK(batch[b].cached_steps == alone.cached_steps);
          REQUIRE(batch[b].logprobs.size() == alone.logprobs.size());
          for (std::size_t t = 0; t < alone.logprobs.size(); ++t)
            CHECK(batch[b].logprobs[t] == Approx(alone.logprobs[t]).margin(1e-5));
          // Cached until the context reaches the window of 16: the prefill's logits, then 16 − P steps
          // (without sliding, the prefill's and 15 − P steps, then the end).
          const auto P = static_cast<std::int64_t>(prompts[b].size());
          CHECK(alone.cached_steps == (slide ? std::min<std::int64_t>(kSeq - P + 1, 15) : kSeq - P));
          CHECK(alone.ids.size() == (slide ? 15u : static_cast<std::size_t>(kSeq - P)));
        }
      }
    }
  }
}

TEST_CASE("a cached session refuses bad prompts and steps", "[unit]") {
  auto model = make_model(kGpt2);
  Generator& g = *model->generator();
  CHECK(message_of<Error>([&] { g.start_session({}); }).find("no prompts") != std::string::npos);
  CHECK(message_of<Error>([&] { g.start_session({{1, 2}, {}}); }).find("prompt 1 has 0 tokens") != std::string::npos);
  CHECK(message_of<Error>([&] { g.start_session({std::vector<std::int32_t>(17, 1)}); })
            .find("prompt 0 has 17 tokens; it needs 1 … 16") != std::string::npos);
  CHECK(message_of<Error>([&] { g.start_session({{1, 37}}); }).find("token id 37 of row 0 is outside") !=
        std::string::npos);
  SessionStart s = g.start_session({{1, 2}, {3}});
  CHECK(message_of<Error>([&] { s.session->step({1}); }).find("one token per row (2), got 1") != std::string::npos);
  CHECK(message_of<Error>([&] { s.session->step({1, -1}); }).find("token id -1 of row 1") != std::string::npos);
}

TEST_CASE("select_rows: a session's rows reordered and repeated go on as their own contexts", "[unit]") {
  for (const char* extra : {kGpt2, kLlama}) {
    INFO("config: " << extra);
    auto model = make_model(extra);
    Generator& g = *model->generator();
    std::mt19937 rng(7);
    std::vector<std::vector<std::int32_t>> contexts{random_prompt(rng, 4), random_prompt(rng, 2)};
    SessionStart s = g.start_session(contexts);
    s.session->step({5, 6});
    contexts[0].push_back(5);
    contexts[1].push_back(6);
    // Row 1 twice, then row 0: three rows of different lengths, stepped on together.
    s.session->select_rows({1, 0, 1});
    REQUIRE(s.session->batch() == 3);
    CHECK(s.session->length(0) == 3);
    CHECK(s.session->length(1) == 5);
    CHECK(s.session->length(2) == 3);
    std::vector<std::vector<std::int32_t>> rows{contexts[1], contexts[0], contexts[1]};
    const std::vector<std::int32_t> next{7, 8, 9};
    Tensor logits = s.session->step(next);
    for (std::size_t b = 0; b < 3; ++b) {
      rows[b].push_back(next[b]);
      CHECK(relative_difference(row_of(logits, static_cast<std::int64_t>(b)), uncached(g, rows[b])) < 1e-5);
    }
    // Down to one row, then on.
    s.session->select_rows({2});
    logits = s.session->step({10});
    rows[2].push_back(10);
    CHECK(relative_difference(row_of(logits, 0), uncached(g, rows[2])) < 1e-5);
    CHECK_THAT(message_of<Error>([&] { s.session->select_rows({1}); }), Catch::Contains("rows[0] = 1 is not a row of a batch of 1"));
    CHECK_THAT(message_of<Error>([&] { s.session->select_rows({}); }), Catch::Contains("no rows"));
  }
}

TEST_CASE("start_session's capacity sizes the cache: at least the longest prompt, at most the sequence length",
          "[unit]") {
  auto model = make_model(kGpt2);
  Generator& g = *model->generator();
  CHECK(g.start_session({{1, 2}, {3}}).session->capacity() == kSeq);  // 0: the sequence length
  CHECK(g.start_session({{1, 2}, {3}}, 5).session->capacity() == 5);
  CHECK(g.start_session({{1, 2, 3}, {3}}, 2).session->capacity() == 3);  // never below a prompt
  CHECK(g.start_session({{1, 2}}, 1000).session->capacity() == kSeq);
  // A small cache answers as the full one until it is full, then refuses a step.
  std::vector<std::int32_t> ids{4, 5};
  SessionStart s = g.start_session({ids}, 4);
  std::vector<float> logits = row_of(s.logits, 0);
  while (static_cast<std::int64_t>(ids.size()) < 4) {
    CHECK(relative_difference(logits, uncached(g, ids)) < 1e-5);
    ids.push_back(argmax(logits));
    logits = row_of(s.session->step({ids.back()}), 0);
  }
  CHECK(relative_difference(logits, uncached(g, ids)) < 1e-5);
  CHECK_THAT(message_of<Error>([&] { s.session->step({0}); }), Catch::Contains("key/value cache is full"));
}

// Beam search selects rows every step with the same row count: the buffers are reused (no
// allocation per call), and what the rows attend to stays right, rows of different lengths included.
TEST_CASE("select_rows repeated on the same row count reuses its buffers and steps stay right", "[unit]") {
  for (const char* extra : {kGpt2, kLlama}) {
    INFO("config: " << extra);
    auto model = make_model(extra);
    Generator& g = *model->generator();
    std::mt19937 rng(11);
    std::vector<std::vector<std::int32_t>> rows{random_prompt(rng, 5), random_prompt(rng, 1), random_prompt(rng, 3)};
    SessionStart s = g.start_session(rows);
    std::uniform_int_distribution<std::int64_t> pick(0, 2);
    std::uniform_int_distribution<int> tok(0, kVocab - 1);
    for (int step = 0; step < 8; ++step) {
      std::vector<std::int64_t> sel{pick(rng), pick(rng), pick(rng)};
      if (step == 0) sel = {1, 1, 0};  // a short row where a long one was: its old slots must not leak
      s.session->select_rows(sel);
      std::vector<std::vector<std::int32_t>> picked;
      for (std::int64_t r : sel) picked.push_back(rows[static_cast<std::size_t>(r)]);
      rows = std::move(picked);
      std::vector<std::int32_t> next;
      for (auto& r : rows) {
        next.push_back(tok(rng));
        r.push_back(next.back());
      }
      Tensor logits = s.session->step(next);
      for (std::size_t b = 0; b < rows.size(); ++b) {
        INFO("step " << step << " row " << b);
        CHECK(s.session->length(static_cast<std::int64_t>(b)) == static_cast<std::int64_t>(rows[b].size()));
        CHECK(relative_difference(row_of(logits, static_cast<std::int64_t>(b)), uncached(g, rows[b])) < 1e-5);
      }
    }
  }
}

TEST_CASE("KvCache::select_rows: one spare buffer for a row count, slots past a row's length zero", "[unit]") {
  KvCache cache(2, 6);
  const int layers[3] = {};  // three layers: buffers found by address
  const std::int64_t W = 2;
  const Tensor like = Tensor::zeros({1});
  // Row 0 holds 4 tokens, row 1 holds 2 and prefill padding at slots 2 and 3 (here NaN: a value the
  // model must never attend to). Layer l's values are offset by 1000·l.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int l = 0; l < 3; ++l) {
    float* p = cache.buffer(&layers[l], W, like).data<float>();
    for (std::int64_t t = 0; t < 4; ++t)
      for (std::int64_t w = 0; w < W; ++w) {
        p[(0 * 6 + t) * W + w] = static_cast<float>(1000 * l + 100 + t);
        p[(1 * 6 + t) * W + w] = t < 2 ? static_cast<float>(1000 * l + 200 + t) : nan;
      }
  }
  cache.finish_prefill({4, 2});
  CHECK(cache.allocations() == 3);
  // Slot t of row i of every layer (the first of its W): want[i][t], 0 past it, never NaN.
  const auto expect = [&](const std::vector<std::vector<float>>& want) {
    for (int l = 0; l < 3; ++l) {
      const Tensor& b = cache.buffer(&layers[l], W, like);
      REQUIRE(b.size(0) == static_cast<std::int64_t>(want.size()));
      const float* p = b.data<float>();
      for (std::size_t i = 0; i < want.size(); ++i)
        for (std::int64_t t = 0; t < 6; ++t) {
          INFO("layer " << l << " row " << i << " slot " << t);
          const float v = p[(static_cast<std::int64_t>(i) * 6 + t) * W];
          REQUIRE(!std::isnan(v));
          const bool used = t < static_cast<std::int64_t>(want[i].size());
          CHECK(v == (used ? want[i][static_cast<std::size_t>(t)] + 1000.0f * static_cast<float>(l) : 0.0f));
        }
    }
  };
  const std::vector<float> a{100, 101, 102, 103}, b{200, 201};
  cache.select_rows({1, 0});
  expect({b, a});
  CHECK(cache.allocations() == 4);  // one destination; each layer's old buffer is the next one's
  cache.select_rows({1, 0});        // into old buffers: row 1's NaN padding and row 0's long row there
  expect({a, b});
  cache.select_rows({1, 1});
  expect({b, b});
  for (int i = 0; i < 50; ++i) cache.select_rows({i % 2, 1 - i % 2});
  CHECK(cache.allocations() == 4);  // no allocation per call on the same row count
  CHECK(cache.lengths() == std::vector<std::int64_t>{2, 2});
  expect({b, b});
  cache.select_rows({0});  // a new row count: new buffers
  CHECK(cache.allocations() == 7);
  expect({b});
}

TEST_CASE("model.window_size: [left, 0] only, anything else an error naming the key", "[unit]") {
  for (const char* bad : {"window_size = [4, 1]\n", "window_size = [-1, 0]\n", "window_size = 4\n", "window_size = [4]\n"}) {
    INFO(bad);
    const std::string msg = message_of<ConfigError>([&] { make_model(std::string(kLlama) + bad); });
    CHECK(msg.find("model.window_size") != std::string::npos);
    CHECK(msg.find("[left, right]") != std::string::npos);
  }
  // The model line names the window.
  CHECK(make_model(kWindow)->describe().find("sliding window of 5 keys") != std::string::npos);
}

TEST_CASE("position_embedding_type = \"yarn\": on the model line; its keys only with it, naming them", "[unit]") {
  CHECK(make_model(kYarn)->describe().find("YaRN factor 32 of 4096 positions") != std::string::npos);
  const std::string msg =
      message_of<ConfigError>([&] { make_model(std::string(kLlama) + "yarn_rotary_scaling_factor = 4.0\n"); });
  CHECK(msg.find("model.yarn_rotary_scaling_factor") != std::string::npos);
  CHECK(msg.find("position_embedding_type = \"yarn\"") != std::string::npos);
  const std::string below_one =
      message_of<ConfigError>([&] { make_model(kYarnBlocks + "yarn_rotary_scaling_factor = 0.5\n"); });
  CHECK(below_one.find("yarn_rotary_scaling_factor") != std::string::npos);
}

TEST_CASE("model.softmax_type: sinks on the model line, a learned one per head, bad values naming the key", "[unit]") {
  auto learned = make_model(kSink);
  CHECK(learned->describe().find("learned attention sinks") != std::string::npos);
  std::vector<Parameter*> params;
  learned->collect_parameters(params);
  int sinks = 0;
  for (const Parameter* p : params)
    if (p->name.ends_with("attention.softmax_offset")) {
      ++sinks;
      CHECK(p->value.shape() == Shape{4});  // kLlama's 4 heads
      CHECK_FALSE(p->weight_decay);
    }
  CHECK(sinks == 2);
  CHECK(make_model(kOffByOne)->describe().find("off-by-one softmax") != std::string::npos);
  const std::string msg = message_of<ConfigError>([&] { make_model("softmax_type = \"sink\"\n"); });
  CHECK(msg.find("model.softmax_type") != std::string::npos);
  CHECK(msg.find("off-by-one") != std::string::npos);
}

TEST_CASE("model.no_rope_freq: Megatron-Core's NoPE layers, bad values naming the key", "[unit]") {
  CHECK(make_model(kNope)->describe().find("no rope in 1 of 2 layers") != std::string::npos);
  CHECK(make_model(std::string(kLlama) + "no_rope_freq = 2\n")->describe().find("no rope in 1 of 2 layers") !=
        std::string::npos);
  CHECK(make_model(std::string(kLlama) + "no_rope_freq = [0, 0]\n")->describe().find("no rope") == std::string::npos);
  std::string msg = message_of<ConfigError>([&] { make_model(std::string(kLlama) + "no_rope_freq = 3\n"); });
  CHECK(msg.find("model.no_rope_freq = 3") != std::string::npos);
  CHECK(msg.find("divide model.num_layers (2)") != std::string::npos);
  for (const char* bad : {"no_rope_freq = [1, 0, 1]\n", "no_rope_freq = [2, 0]\n"}) {
    msg = message_of<ConfigError>([&] { make_model(std::string(kLlama) + bad); });
    CHECK(msg.find("one flag per layer: 2 values") != std::string::npos);
  }
  msg = message_of<ConfigError>([&] { make_model(std::string(kGpt2) + "no_rope_freq = 2\n"); });  // learned positions
  CHECK(msg.find("model.no_rope_freq") != std::string::npos);
  CHECK(msg.find("position_embedding_type") != std::string::npos);
}

TEST_CASE("model.window_attn_skip_freq: Megatron-Core's layers without the window, bad values naming the key",
          "[unit]") {
  // N: every N-th layer counting from 1 attends every earlier key; flags: 1 for the window.
  CHECK(make_model(kWindowLayers)->describe().find("sliding window of 5 keys in 1 of 2 layers") != std::string::npos);
  CHECK(make_model(kWindow + "window_attn_skip_freq = 2\n")->describe().find("in 1 of 2 layers") != std::string::npos);
  for (const char* every : {"window_attn_skip_freq = 3\n", "window_attn_skip_freq = [1, 1]\n"}) {
    const std::string line = make_model(kWindow + every)->describe();
    CHECK(line.find("sliding window of 5 keys") != std::string::npos);
    CHECK(line.find(" of 2 layers") == std::string::npos);
  }
  // Without the window it picks nothing: refused, naming both keys.
  std::string msg = message_of<ConfigError>([&] { make_model(std::string(kLlama) + "window_attn_skip_freq = 2\n"); });
  CHECK(msg.find("model.window_attn_skip_freq") != std::string::npos);
  CHECK(msg.find("model.window_size") != std::string::npos);
  for (const char* bad : {"window_attn_skip_freq = [1, 0, 1]\n", "window_attn_skip_freq = [2, 0]\n",
                          "window_attn_skip_freq = 0\n"}) {
    INFO(bad);
    msg = message_of<ConfigError>([&] { make_model(kWindow + bad); });
    CHECK(msg.find("model.window_attn_skip_freq") != std::string::npos);
  }
}
