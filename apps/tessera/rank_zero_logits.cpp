#include "rank_zero_logits.hpp"

#include <utility>

namespace tessera::app {

namespace {

// A session of the inner Generator whose step logits are rank 0's. Every rank selects rows alike:
// it decided from rank 0's logits.
class RankZeroSession final : public ForwardingSession {
 public:
  RankZeroSession(std::unique_ptr<GenerationSession> inner, Communicator& group)
      : ForwardingSession(std::move(inner)), group_(group) {}
  Tensor step(const std::vector<std::int32_t>& next) override {
    return rank_zero_logits(ForwardingSession::step(next), group_);
  }

 private:
  Communicator& group_;
};

}  // namespace

Tensor rank_zero_logits(Tensor logits, Communicator& group) {
  if (group.size() > 1) group.broadcast(logits, 0);
  return logits;
}

Tensor RankZeroLogits::next_token_logits(const Tensor& tokens) {
  return rank_zero_logits(inner_.next_token_logits(tokens), group_);
}

SessionStart RankZeroLogits::start_session(const std::vector<std::vector<std::int32_t>>& prompts,
                                           std::int64_t capacity) {
  SessionStart s = inner_.start_session(prompts, capacity);
  if (!s.session) return s;  // no cached path: callers use next_token_logits
  s.logits = rank_zero_logits(std::move(s.logits), group_);
  s.session = std::make_unique<RankZeroSession>(std::move(s.session), group_);
  return s;
}

}  // namespace tessera::app
