#include "tessera/schedule.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

const char* step_kind_name(PipelineStep::Kind kind) {
  switch (kind) {
    case PipelineStep::Kind::recv_activation: return "recv_act";
    case PipelineStep::Kind::forward: return "F";
    case PipelineStep::Kind::send_activation: return "send_act";
    case PipelineStep::Kind::recv_grad: return "recv_grad";
    case PipelineStep::Kind::backward: return "B";
    case PipelineStep::Kind::send_grad: return "send_grad";
  }
  return "?";
}

std::string describe(const PipelineStep& step) {
  const bool pass = step.kind == PipelineStep::Kind::forward || step.kind == PipelineStep::Kind::backward;
  std::string s = pass ? fmt::format("{}{}", step_kind_name(step.kind), step.microbatch)
                       : fmt::format("{} {}", step_kind_name(step.kind), step.microbatch);
  if (step.chunk != 0) s += fmt::format(" (chunk {})", step.chunk);
  return s;
}

void append_forward(std::vector<PipelineStep>& steps, const ScheduleSpec& spec, std::int64_t microbatch, int chunk) {
  using K = PipelineStep::Kind;
  if (spec.has_previous(chunk)) steps.push_back({K::recv_activation, microbatch, chunk});
  steps.push_back({K::forward, microbatch, chunk});
  if (spec.has_next(chunk)) steps.push_back({K::send_activation, microbatch, chunk});
}

void append_backward(std::vector<PipelineStep>& steps, const ScheduleSpec& spec, std::int64_t microbatch, int chunk) {
  using K = PipelineStep::Kind;
  if (spec.has_next(chunk)) steps.push_back({K::recv_grad, microbatch, chunk});
  steps.push_back({K::backward, microbatch, chunk});
  if (spec.has_previous(chunk)) steps.push_back({K::send_grad, microbatch, chunk});
}

std::vector<PipelineStep> forward_only_steps(const ScheduleSpec& spec) {
  std::vector<PipelineStep> steps;
  for (int c = 0; c < spec.virtual_size; ++c)
    for (std::int64_t m = 0; m < spec.num_microbatches; ++m) append_forward(steps, spec, m, c);
  return steps;
}

void validate_steps(const std::vector<PipelineStep>& steps, const ScheduleSpec& spec, bool with_backward,
                    const std::string& schedule_name) {
  using K = PipelineStep::Kind;
  struct Progress {
    bool received_act = false, forwarded = false, sent_act = false;
    bool received_grad = false, backwarded = false, sent_grad = false;
  };
  const std::int64_t v = spec.virtual_size;
  std::vector<Progress> mb(static_cast<std::size_t>(spec.num_microbatches * v));
  const std::string where = fmt::format("schedule '{}' (stage {} of {}, {} microbatches{})", schedule_name, spec.stage,
                                        spec.pipeline_size, spec.num_microbatches,
                                        v > 1 ? fmt::format(", {} chunks", v) : "");
  auto fail = [&](std::size_t i, const std::string& why) {
    throw Error(fmt::format("{}: step {} ({}): {}", where, i, describe(steps[i]), why));
  };
  // The executor's message tags repeat every 128 microbatches, which is safe only if each chunk's
  // passes (and so its transfers) come in microbatch order.
  std::vector<std::int64_t> last_forward(static_cast<std::size_t>(v), -1), last_backward(static_cast<std::size_t>(v), -1);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const PipelineStep& s = steps[i];
    if (s.microbatch < 0 || s.microbatch >= spec.num_microbatches) fail(i, "no such microbatch");
    if (s.chunk < 0 || s.chunk >= v) fail(i, "no such model chunk");
    const bool first = !spec.has_previous(s.chunk), last = !spec.has_next(s.chunk);
    Progress& p = mb[static_cast<std::size_t>(s.microbatch * v + s.chunk)];
    auto once = [&](bool& flag) {
      if (flag) fail(i, "repeated");
      flag = true;
    };
    switch (s.kind) {
      case K::recv_activation:
        if (first) fail(i, "the first stage has no previous stage");
        once(p.received_act);
        break;
      case K::forward:
        if (!first && !p.received_act) fail(i, "forward before its activation was received");
        once(p.forwarded);
        if (s.microbatch < last_forward[static_cast<std::size_t>(s.chunk)]) fail(i, "a chunk's forwards must run in microbatch order");
        last_forward[static_cast<std::size_t>(s.chunk)] = s.microbatch;
        break;
      case K::send_activation:
        if (last) fail(i, "the last stage has no next stage");
        if (!p.forwarded) fail(i, "sent before its forward");
        once(p.sent_act);
        break;
      case K::recv_grad:
        if (!with_backward) fail(i, "a forward-only schedule has no gradients");
        if (last) fail(i, "the last stage has no next stage");
        if (!p.sent_act) fail(i, "gradient received before the activation was sent");
        once(p.received_grad);
        break;
      case K::backward:
        if (!with_backward) fail(i, "a forward-only schedule has no backward");
        if (!p.forwarded) fail(i, "backward before forward");
        if (!last && !p.received_grad) fail(i, "backward before its output gradient was received");
        once(p.backwarded);
        if (s.microbatch < last_backward[static_cast<std::size_t>(s.chunk)]) fail(i, "a chunk's backwards must run in microbatch order");
        last_backward[static_cast<std::size_t>(s.chunk)] = s.microbatch;
        break;
      case K::send_grad:
        if (first) fail(i, "the first stage has no previous stage");
        if (!p.backwarded) fail(i, "sent before its backward");
        once(p.sent_grad);
        break;
    }
  }
  for (std::int64_t m = 0; m < spec.num_microbatches; ++m)
    for (int c = 0; c < v; ++c) {
      const Progress& p = mb[static_cast<std::size_t>(m * v + c)];
      const bool first = !spec.has_previous(c), last = !spec.has_next(c);
      const bool complete = p.forwarded && (last || p.sent_act) &&
                            (!with_backward || (p.backwarded && (first || p.sent_grad)));
      if (!complete)
        throw Error(fmt::format("{}: microbatch {}{} is never {}", where, m, v > 1 ? fmt::format(" of chunk {}", c) : "",
                                !p.forwarded                 ? "forwarded"
                                : (!last && !p.sent_act)     ? "sent on"
                                : !p.backwarded              ? "backwarded"
                                                             : "sent back"));
    }
}

bool batched_with_next(const std::vector<PipelineStep>& steps, std::size_t i) {
  using K = PipelineStep::Kind;
  if (i + 1 >= steps.size()) return false;
  const K a = steps[i].kind, b = steps[i + 1].kind;
  return (a == K::send_activation || a == K::send_grad) && (b == K::recv_activation || b == K::recv_grad);
}

std::string p2p_order_mismatch(const std::vector<std::vector<PipelineStep>>& lists) {
  using K = PipelineStep::Kind;
  const int pp = static_cast<int>(lists.size());
  // A message is named by (is gradient, microbatch, the receiving virtual stage), as its receiver
  // sees it; per direction, the senders' sequence and the receivers' must be the same.
  using Message = std::tuple<bool, std::int64_t, int>;
  std::map<std::pair<int, int>, std::vector<Message>> sent, received;
  for (int stage = 0; stage < pp; ++stage) {
    const int next = (stage + 1) % pp, previous = (stage + pp - 1) % pp;
    for (const PipelineStep& st : lists[static_cast<std::size_t>(stage)]) {
      const int vs = st.chunk * pp + stage;
      switch (st.kind) {
        case K::send_activation: sent[{stage, next}].emplace_back(false, st.microbatch, vs + 1); break;
        case K::send_grad: sent[{stage, previous}].emplace_back(true, st.microbatch, vs - 1); break;
        case K::recv_activation: received[{previous, stage}].emplace_back(false, st.microbatch, vs); break;
        case K::recv_grad: received[{next, stage}].emplace_back(true, st.microbatch, vs); break;
        default: break;
      }
    }
  }
  const auto name = [](const Message& m) {
    return fmt::format("{} of microbatch {} for virtual stage {}", std::get<0>(m) ? "gradient" : "activation",
                       std::get<1>(m), std::get<2>(m));
  };
  for (const auto& [direction, messages] : sent) {
    const std::vector<Message>& got = received[direction];
    for (std::size_t i = 0; i < std::max(messages.size(), got.size()); ++i) {
      if (i < messages.size() && i < got.size() && messages[i] == got[i]) continue;
      return fmt::format("stage {} → stage {}: message {} sent is {}, received as {}", direction.first,
                         direction.second, i, i < messages.size() ? name(messages[i]) : "nothing",
                         i < got.size() ? name(got[i]) : "nothing");
    }
  }
  for (const auto& [direction, got] : received)
    if (!sent.count(direction) && !got.empty())
      return fmt::format("stage {} → stage {}: {} received, nothing sent", direction.first, direction.second,
                         name(got.front()));
  return "";
}

}  // namespace tessera
