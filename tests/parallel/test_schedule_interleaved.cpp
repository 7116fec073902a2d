// The interleaved schedule plugin's step lists against hand-written tables (pp = 2 with 2 chunks,
// m = 4 and m = p), its errors, and — for it and 1f1b over many (pp, v, m) — a simulation of all
// stages running their lists the way the executor does (sends never wait, a receive waits for the
// matching send) that must finish: no schedule may deadlock; and every (src → dst) direction
// receives its messages in the order they are sent (NCCL matches by order, not by tag).
#include <map>
#include <set>
#include <tuple>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"

using namespace tessera;
using K = PipelineStep::Kind;

namespace {

PluginPtr<Schedule> schedule(const char* name) {
  static const Config empty = Config::from_string("");
  return create_plugin<Schedule>("schedule", name, empty.section("schedule"));
}

// Passes as "F<microbatch>.<chunk>".
std::string passes(const std::vector<PipelineStep>& steps) {
  std::string s;
  for (const PipelineStep& p : steps)
    if (p.kind == K::forward || p.kind == K::backward) {
      if (!s.empty()) s += ' ';
      s += fmt::format("{}{}.{}", p.kind == K::forward ? 'F' : 'B', p.microbatch, p.chunk);
    }
  return s;
}

// Runs every stage's list in lock-free rounds: passes and sends always proceed, a receive only
// once its matching send ran. Returns false if the stages stop with steps left (a deadlock).
bool runs_to_completion(const Schedule& s, int p, int v, std::int64_t m) {
  std::vector<std::vector<PipelineStep>> lists;
  for (int stage = 0; stage < p; ++stage) {
    const ScheduleSpec spec{p, stage, m, v};
    lists.push_back(s.training_steps(spec));
    validate_steps(lists.back(), spec, true, s.describe());
  }
  // (is gradient, microbatch, receiving virtual stage) of every send so far.
  std::set<std::tuple<bool, std::int64_t, int>> sent;
  std::vector<std::size_t> next(p, 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int stage = 0; stage < p; ++stage) {
      while (next[stage] < lists[stage].size()) {
        const PipelineStep& st = lists[stage][next[stage]];
        const int vs = st.chunk * p + stage;  // virtual stage
        if (st.kind == K::recv_activation && !sent.count({false, st.microbatch, vs})) break;
        if (st.kind == K::recv_grad && !sent.count({true, st.microbatch, vs})) break;
        if (st.kind == K::send_activation) sent.insert({false, st.microbatch, vs + 1});
        if (st.kind == K::send_grad) sent.insert({true, st.microbatch, vs - 1});
        ++next[stage];
        progress = true;
      }
    }
  }
  for (int stage = 0; stage < p; ++stage)
    if (next[stage] != lists[stage].size()) return false;
  return true;
}

}  // namespace

TEST_CASE("interleaved: pp = 2, two chunks, m = 4 against the hand-made table", "[unit]") {
  auto s = schedule("interleaved");
  // Passes in groups of p microbatches per chunk; rank 0 warms up with (p−s−1)·2 + (v−1)·p = 4.
  CHECK(passes(s->training_steps({2, 0, 4, 2})) ==
        "F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0");
  CHECK(passes(s->training_steps({2, 1, 4, 2})) ==
        "F0.0 F1.0 F0.1 B0.1 F1.1 B1.1 F2.0 B0.0 F3.0 B1.0 F2.1 B2.1 F3.1 B3.1 B2.0 B3.0");
  // m = p: every forward first.
  CHECK(passes(s->training_steps({2, 1, 2, 2})) == "F0.0 F1.0 F0.1 F1.1 B0.1 B1.1 B0.0 B1.0");
}

TEST_CASE("interleaved: transfers cross from the last rank to the first between chunks", "[unit]") {
  auto s = schedule("interleaved");
  const std::vector<PipelineStep> first_rank = s->training_steps({2, 0, 2, 2});
  // Rank 0 chunk 0 is the first virtual stage (no receive); chunk 1 receives from rank 1's chunk 0.
  CHECK(first_rank[0] == PipelineStep{K::forward, 0, 0});
  CHECK(first_rank[1] == PipelineStep{K::send_activation, 0, 0});
  CHECK(std::find(first_rank.begin(), first_rank.end(), PipelineStep{K::recv_activation, 0, 1}) != first_rank.end());
  CHECK(std::find(first_rank.begin(), first_rank.end(), PipelineStep{K::recv_activation, 0, 0}) == first_rank.end());
  // Rank 1 chunk 1 is the last virtual stage: it neither sends activations nor receives gradients.
  for (const PipelineStep& st : s->training_steps({2, 1, 2, 2}))
    if (st.chunk == 1) CHECK((st.kind != K::send_activation && st.kind != K::recv_grad));
}

TEST_CASE("interleaved and 1f1b never deadlock and pass the validator", "[unit]") {
  auto interleaved = schedule("interleaved");
  auto one_f_one_b = schedule("1f1b");
  for (int p : {2, 3, 4, 8})
    for (std::int64_t m : {1, 2, 3, 4, 5, 8, 16}) {
      INFO(fmt::format("p = {}, m = {}", p, m));
      CHECK(runs_to_completion(*one_f_one_b, p, 1, m));
      for (int v : {2, 3, 4})
        if (m % p == 0) {
          INFO(fmt::format("v = {}", v));
          CHECK(runs_to_completion(*interleaved, p, v, m));
        }
    }
}

// Every stage's list, for the p2p order check.
std::vector<std::vector<PipelineStep>> all_stages(const Schedule& s, int p, int v, std::int64_t m, bool training) {
  std::vector<std::vector<PipelineStep>> lists;
  for (int stage = 0; stage < p; ++stage) {
    const ScheduleSpec spec{p, stage, m, v};
    lists.push_back(training ? s.training_steps(spec) : forward_only_steps(spec));
  }
  return lists;
}

TEST_CASE("every direction receives in the order it sends (what NCCL, without tags, needs)", "[unit]") {
  auto interleaved = schedule("interleaved");
  auto one_f_one_b = schedule("1f1b");
  for (int p : {2, 3, 4, 8})
    for (std::int64_t m : {1, 2, 3, 4, 5, 8, 16}) {
      INFO(fmt::format("p = {}, m = {}", p, m));
      CHECK(p2p_order_mismatch(all_stages(*one_f_one_b, p, 1, m, true)) == "");
      CHECK(p2p_order_mismatch(all_stages(*one_f_one_b, p, 1, m, false)) == "");
      for (int v : {2, 3, 4})
        if (m % p == 0) {
          INFO(fmt::format("v = {}", v));
          CHECK(p2p_order_mismatch(all_stages(*interleaved, p, v, m, true)) == "");
          CHECK(p2p_order_mismatch(all_stages(*interleaved, p, v, m, false)) == "");
        }
    }
}

TEST_CASE("the executor batches each send with the receive right after it, nothing else", "[unit]") {
  auto one_f_one_b = schedule("1f1b");
  auto interleaved = schedule("interleaved");
  const auto is_send = [](K k) { return k == K::send_activation || k == K::send_grad; };
  const auto is_recv = [](K k) { return k == K::recv_activation || k == K::recv_grad; };
  for (const auto& [s, v] : {std::pair{one_f_one_b.get(), 1}, std::pair{interleaved.get(), 2}})
    for (int stage = 0; stage < 4; ++stage) {
      const std::vector<PipelineStep> steps = s->training_steps({4, stage, 8, v});
      int batched = 0;
      for (std::size_t i = 0; i < steps.size(); ++i) {
        const bool pair = i + 1 < steps.size() && is_send(steps[i].kind) && is_recv(steps[i + 1].kind);
        CHECK(batched_with_next(steps, i) == pair);
        batched += pair ? 1 : 0;
      }
      INFO(s->describe() << " stage " << stage);
      // The steady state sends and receives in pairs on every stage (1F1B's send_forward_recv_backward).
      CHECK(batched > 0);
    }
  CHECK_FALSE(batched_with_next({{K::send_activation, 0}}, 0));  // the last step has no next
}

TEST_CASE("the order check names a direction whose messages cross", "[unit]") {
  // Stage 0 sends activations 0 then 1; stage 1 receives 1 first (MPI's tags would sort it out,
  // NCCL would hand it activation 0).
  const std::vector<std::vector<PipelineStep>> lists = {
      {{K::forward, 0}, {K::send_activation, 0}, {K::forward, 1}, {K::send_activation, 1}},
      {{K::recv_activation, 1}, {K::forward, 1}, {K::recv_activation, 0}, {K::forward, 0}}};
  CHECK(p2p_order_mismatch(lists) ==
        "stage 0 → stage 1: message 0 sent is activation of microbatch 0 for virtual stage 1, received as activation "
        "of microbatch 1 for virtual stage 1");
  // A message never received.
  CHECK(p2p_order_mismatch({{{K::forward, 0}, {K::send_activation, 0}}, {{K::forward, 0}}}) ==
        "stage 0 → stage 1: message 0 sent is activation of microbatch 0 for virtual stage 1, received as nothing");
}

TEST_CASE("the simulation does catch a deadlock", "[unit]") {
  // Valid lists on their own, but stage 0 waits for gradient 0 before sending activation 1, which
  // stage 1 needs before it computes gradient 0.
  struct Crossed : Schedule {
    std::vector<PipelineStep> training_steps(const ScheduleSpec& spec) const override {
      if (spec.stage == 0)
        return {{K::forward, 0}, {K::send_activation, 0}, {K::recv_grad, 0}, {K::backward, 0},
                {K::forward, 1}, {K::send_activation, 1}, {K::recv_grad, 1}, {K::backward, 1}};
      return {{K::recv_activation, 0}, {K::forward, 0}, {K::recv_activation, 1}, {K::forward, 1},
              {K::backward, 0},        {K::send_grad, 0}, {K::backward, 1},      {K::send_grad, 1}};
    }
    std::string describe() const override { return "crossed"; }
  };
  CHECK_FALSE(runs_to_completion(Crossed{}, 2, 1, 2));
}

TEST_CASE("interleaved and 1f1b refuse what they cannot run", "[unit]") {
  const std::string uneven = message_of<ConfigError>([] { schedule("interleaved")->training_steps({4, 0, 6, 2}); });
  CHECK_THAT(uneven, Catch::Contains("= 6) to be a multiple of parallel.pipeline_model_parallel_size (4)"));
  const std::string one_chunk = message_of<ConfigError>([] { schedule("interleaved")->training_steps({4, 0, 8, 1}); });
  CHECK_THAT(one_chunk, Catch::Contains("virtual_pipeline_model_parallel_size >= 2") && Catch::Contains("1f1b"));
  const std::string chunks = message_of<ConfigError>([] { schedule("1f1b")->training_steps({4, 0, 8, 2}); });
  CHECK_THAT(chunks, Catch::Contains("interleaved"));
}
