#include "rank_zero_logits.hpp"

#include <utility>

namespace tessera::app {

namespace {

// A session of the inner Generator whose step logits are rank 0's.
class RankZeroSession final : public GenerationSession {
 public:
  RankZeroSession(std::unique_ptr<GenerationSession> inner, Communicator& group)
      : inner_(std::move(inner)), group_(group) {}
  Tensor step(const std::vector<std::int32_t>& next) override { return rank_zero_logits(inner_->step(next), group_); }
  std::int64_t batch() const override { return inner_->batch(); }
  std::int64_t length(std::int64_t row) const override { return inner_->length(row); }
  std::int64_t capacity() const override { return inner_->capacity(); }
  // Every rank selects alike: it decided from rank 0's logits.
  void select_rows(const std::vector<std::int64_t>& rows) override { inner_->select_rows(rows); }

 private:
  std::unique_ptr<GenerationSession> inner_;
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

SessionStart RankZeroLogits::start_session(const std::vector<std::vector<std::int32_t>>& prompts) {
  SessionStart s = inner_.start_session(prompts);
  if (!s.session) return s;  // no cached path: callers use next_token_logits
  s.logits = rank_zero_logits(std::move(s.logits), group_);
  s.session = std::make_unique<RankZeroSession>(std::move(s.session), group_);
  return s;
}

}  // namespace tessera::app
