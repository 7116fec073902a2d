// The 1f1b schedule plugin's step lists against hand-written tables (pp = 4, 6 microbatches, every
// stage), its degenerate cases (pp = 1 is gradient accumulation, fewer microbatches than stages),
// the activations each stage holds by construction, and the validator that guards the executor
// against a broken schedule.
#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"

using namespace tessera;
using K = PipelineStep::Kind;

namespace {

// Requires f to throw E with a message containing every one of `parts`.
template <typename E, typename F>
void expect_error(F&& f, std::initializer_list<const char*> parts) {
  const std::string message = message_of<E>(f);
  for (const char* part : parts) CHECK_THAT(message, Catch::Contains(part));
}

PluginPtr<Schedule> one_f_one_b() {
  static const Config empty = Config::from_string("");
  return create_plugin<Schedule>("schedule", "1f1b", empty.section("schedule"));
}

// The passes only ("F0 F1 B0 …"), for compact tables.
std::string passes(const std::vector<PipelineStep>& steps) {
  std::string s;
  for (const PipelineStep& p : steps)
    if (p.kind == K::forward || p.kind == K::backward) {
      if (!s.empty()) s += ' ';
      s += describe(p);
    }
  return s;
}

// Most microbatches between their forward and their backward at once.
std::int64_t peak_in_flight(const std::vector<PipelineStep>& steps) {
  std::int64_t now = 0, peak = 0;
  for (const PipelineStep& p : steps) {
    if (p.kind == K::forward) peak = std::max(peak, ++now);
    if (p.kind == K::backward) --now;
  }
  return peak;
}

}  // namespace

TEST_CASE("1f1b: warm-up, steady state and cool-down for pp = 4, m = 6", "[unit]") {
  auto s = one_f_one_b();
  // Stage s: min(p − s − 1, m) warm-up forwards, then F/B pairs, then the remaining backwards.
  CHECK(passes(s->training_steps({4, 0, 6})) == "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
  CHECK(passes(s->training_steps({4, 1, 6})) == "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5");
  CHECK(passes(s->training_steps({4, 2, 6})) == "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5");
  CHECK(passes(s->training_steps({4, 3, 6})) == "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
  for (int stage = 0; stage < 4; ++stage) CHECK(peak_in_flight(s->training_steps({4, stage, 6})) == 4 - stage);
}

TEST_CASE("1f1b: transfers surround their passes", "[unit]") {
  auto s = one_f_one_b();
  // A middle stage of 3 with 2 microbatches: one warm-up forward, one steady pair, one cool-down.
  const std::vector<PipelineStep> expected = {
      {K::recv_activation, 0}, {K::forward, 0}, {K::send_activation, 0},  // warm-up
      {K::recv_activation, 1}, {K::forward, 1}, {K::send_activation, 1},  // steady: F1
      {K::recv_grad, 0},       {K::backward, 0}, {K::send_grad, 0},       //         B0
      {K::recv_grad, 1},       {K::backward, 1}, {K::send_grad, 1},       // cool-down
  };
  CHECK(s->training_steps({3, 1, 2}) == expected);
  // The first stage receives no activations, the last no gradients.
  for (const PipelineStep& p : s->training_steps({3, 0, 2})) {
    CHECK(p.kind != K::recv_activation);
    CHECK(p.kind != K::send_grad);
  }
  for (const PipelineStep& p : s->training_steps({3, 2, 2})) {
    CHECK(p.kind != K::send_activation);
    CHECK(p.kind != K::recv_grad);
  }
}

TEST_CASE("1f1b: pp = 1 is gradient accumulation; fewer microbatches than stages", "[unit]") {
  auto s = one_f_one_b();
  CHECK(passes(s->training_steps({1, 0, 3})) == "F0 B0 F1 B1 F2 B2");
  CHECK(passes(s->training_steps({4, 0, 2})) == "F0 F1 B0 B1");
  CHECK(passes(s->training_steps({4, 3, 2})) == "F0 B0 F1 B1");
  for (int p : {1, 2, 4, 8})
    for (int stage = 0; stage < p; ++stage)
      for (std::int64_t m : {1, 2, 3, 8, 13}) {
        const ScheduleSpec spec{p, stage, m};
        CHECK_NOTHROW(validate_steps(s->training_steps(spec), spec, true, "1f1b"));
        CHECK(peak_in_flight(s->training_steps(spec)) == std::min<std::int64_t>(p - stage, m));
      }
}

TEST_CASE("forward-only steps and the validator's errors", "[unit]") {
  const ScheduleSpec spec{2, 1, 2};
  CHECK(forward_only_steps(spec) ==
        std::vector<PipelineStep>{{K::recv_activation, 0}, {K::forward, 0}, {K::recv_activation, 1}, {K::forward, 1}});
  CHECK_NOTHROW(validate_steps(forward_only_steps(spec), spec, false, "eval"));
  // Each broken list names the schedule, the step and what is wrong.
  expect_error<Error>([&] { validate_steps({{K::forward, 0}, {K::forward, 1}}, spec, false, "mine"); },
                            {"schedule 'mine'", "step 0 (F0)", "forward before its activation was received"});
  const ScheduleSpec first{2, 0, 1};
  expect_error<Error>([&] { validate_steps({{K::backward, 0}}, first, true, "mine"); },
                            {"step 0 (B0)", "backward before forward"});
  expect_error<Error>([&] { validate_steps({{K::forward, 0}, {K::send_activation, 0}}, first, true, "mine"); },
                            {"microbatch 0 is never backwarded"});
  expect_error<Error>([&] { validate_steps({{K::forward, 3}}, first, true, "mine"); }, {"no such microbatch"});
  expect_error<Error>(
      [&] { validate_steps({{K::forward, 0}, {K::forward, 0}}, ScheduleSpec{1, 0, 1}, false, "mine"); },
      {"step 1 (F0)", "repeated"});
}
