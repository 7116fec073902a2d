// Tokens/s of GPT generation with and without the key/value cache (greedy, random weights), for
// docs/benchmarks.md; benchmarks/pytorch_generate.py times PyTorch's own loops on the same shape.
//
//   bench_generation [--layers 12 --hidden 768 --heads 12 --groups 0 --vocab 50257 --seq 128
//                     --prompt 16 --new 64 --batch 4 --threads 2 --uncached 1]
//
// Prints one JSON line: uncached tokens/s (batch 1, a full forward over the context per token),
// cached tokens/s at batch 1 and at --batch (prompts of different lengths: prompt − b), whether the
// cached and uncached tokens are identical and the largest relative logit difference between them.
// Needs TESSERA_PLUGIN_PATH (the build's lib/tessera) to find the gpt plugin.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/ops.hpp"
#include "tessera/plugin.hpp"

using namespace tessera;

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::int32_t argmax(const float* v, std::int64_t n) { return static_cast<std::int32_t>(std::max_element(v, v + n) - v); }
}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::int64_t> a{{"layers", 12}, {"hidden", 768}, {"heads", 12}, {"groups", 0},
                                        {"vocab", 50257}, {"seq", 128}, {"prompt", 16}, {"new", 64},
                                        {"batch", 4}, {"threads", 2}, {"uncached", 1}};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2))) {
      fmt::print(stderr, "unknown option {}\n", k);
      return 2;
    }
    a[k.substr(2)] = std::stoll(argv[i + 1]);
  }
  ops::set_num_threads(static_cast<int>(a["threads"]));
  Config config = Config::from_string(fmt::format(R"(
[model]
plugin = "gpt"
num_layers = {}
hidden_size = {}
num_attention_heads = {}
num_query_groups = {}
seq_length = {}
max_position_embeddings = {}
)", a["layers"], a["hidden"], a["heads"], a["groups"] > 0 ? a["groups"] : a["heads"], a["seq"], a["seq"]));
  auto model = create_plugin<Model>("model", "gpt", config.section("model"), ModelContext{a["vocab"], 1234, nullptr});
  Generator& g = *model->generator();
  const std::int64_t V = a["vocab"], P = a["prompt"], N = a["new"], B = a["batch"];
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> tok(0, static_cast<int>(V) - 1);
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(P));
  for (auto& t : prompt) t = tok(rng);

  // Cached, batch 1 (also the reference tokens and logits for the comparison).
  std::vector<std::vector<float>> cached_logits;
  std::vector<std::int32_t> cached_ids;
  g.start_session({prompt});  // warm-up
  double t0 = now();
  {
    SessionStart s = g.start_session({prompt});
    Tensor logits = s.logits;
    for (std::int64_t i = 0; i < N; ++i) {
      const std::vector<float> row = logits.to_vector<float>();
      cached_logits.push_back(row);
      cached_ids.push_back(argmax(row.data(), V));
      if (i + 1 < N) logits = s.session->step({cached_ids.back()});
    }
  }
  const double cached1 = N / (now() - t0);

  // Cached, batch B: row b's prompt is the first P − b tokens (different lengths).
  std::vector<std::vector<std::int32_t>> prompts;
  for (std::int64_t b = 0; b < B; ++b) prompts.emplace_back(prompt.begin(), prompt.end() - std::min(b, P - 1));
  t0 = now();
  {
    SessionStart s = g.start_session(prompts);
    Tensor logits = s.logits;
    for (std::int64_t i = 0; i + 1 < N; ++i) {
      const std::vector<float> all = logits.to_vector<float>();
      std::vector<std::int32_t> next;
      for (std::int64_t b = 0; b < B; ++b) next.push_back(argmax(all.data() + b * V, V));
      logits = s.session->step(next);
    }
  }
  const double cachedB = B * N / (now() - t0);

  // Uncached, batch 1: a full forward over the whole context per token.
  double uncached1 = 0, worst = 0;
  bool same = true;
  if (a["uncached"]) {
    std::vector<std::int32_t> ids = prompt;
    t0 = now();
    for (std::int64_t i = 0; i < N; ++i) {
      Tensor logits = g.next_token_logits(Tensor::from<std::int32_t>({1, static_cast<std::int64_t>(ids.size())}, ids));
      const std::vector<float> row = logits.to_vector<float>();
      double diff = 0, scale = 0;
      for (std::int64_t v = 0; v < V; ++v) {
        diff = std::max(diff, std::abs(static_cast<double>(row[v]) - cached_logits[i][v]));
        scale = std::max(scale, std::abs(static_cast<double>(row[v])));
      }
      worst = std::max(worst, diff / scale);
      const std::int32_t next = argmax(row.data(), V);
      same = same && next == cached_ids[i];
      ids.push_back(next);
    }
    uncached1 = N / (now() - t0);
  }
  fmt::print("{{\"layers\": {}, \"hidden\": {}, \"heads\": {}, \"groups\": {}, \"vocab\": {}, \"seq\": {}, \"prompt\": {}, "
             "\"new_tokens\": {}, \"threads\": {}, \"uncached_tokens_per_s\": {:.2f}, \"cached_tokens_per_s\": {:.2f}, "
             "\"batch\": {}, \"cached_batch_tokens_per_s\": {:.2f}, \"same_tokens\": {}, \"max_rel_logit_diff\": {:.3g}}}\n",
             a["layers"], a["hidden"], a["heads"], a["groups"], V, a["seq"], P, N, a["threads"], uncached1, cached1, B,
             cachedB, same ? "true" : "false", worst);
  return 0;
}
