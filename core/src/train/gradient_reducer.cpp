#include "tessera/train/gradient_reducer.hpp"

namespace tessera {

GradientReducer::GradientReducer(const std::vector<Parameter*>& params, Communicator& dp, bool overlap)
    : params_(params), dp_(dp), overlap_(overlap && dp.size() > 1) {}

void GradientReducer::start(Parameter& p) {
  if (!started_.insert(&p).second) return;
  pending_.push_back(dp_.start_all_reduce(p.grad));
}

void GradientReducer::grad_ready(Parameter& p) {
  // A replicated tensor whose gradient the model still reduces over tp is not final yet.
  if (!overlap_ || p.reduce_grad_over_tp) return;
  start(p);
  ++started_early_;
  for (CommRequest& r : pending_) r.test();
}

void GradientReducer::finish() {
  if (dp_.size() > 1) {
    for (auto it = params_.rbegin(); it != params_.rend(); ++it) start(**it);
    for (CommRequest& r : pending_) r.wait();
  }
  pending_.clear();
  started_.clear();
}

}  // namespace tessera
