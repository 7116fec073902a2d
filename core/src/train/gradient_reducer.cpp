#include "tessera/train/gradient_reducer.hpp"

#include <exception>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/parallel/abort.hpp"

namespace tessera {

GradientReducer::GradientReducer(const std::vector<Parameter*>& params, Communicator& dp, bool overlap)
    : params_(params), dp_(dp), overlap_(overlap && dp.size() > 1) {}

GradientReducer::~GradientReducer() {
  // Unwinding with reductions in flight: waiting for them would wait for ranks that may never join
  // (they may be failing too, or waiting elsewhere), and the real error would be lost behind a
  // collective timeout. End the job now, with the error.
  if (!pending_.empty() && std::uncaught_exceptions() > 0)
    abort_job("an error was thrown during backward while gradient all-reduces were in flight");
}

bool GradientReducer::start(Parameter& p) {
  if (!started_.insert(&p).second) return false;
  pending_.push_back(dp_.start_all_reduce(p.grad));
  return true;
}

void GradientReducer::grad_ready(Parameter& p) {
  // A replicated tensor whose gradient the model still reduces over tp is not final yet.
  if (!overlap_ || p.reduce_grad_over_tp) return;
  // A second report means more was added after the reduction started (a shared parameter).
  if (!start(p))
    throw Error(fmt::format("gradient of '{}' reported final twice in one backward: a parameter shared by two "
                            "modules must not report (StepContext::grad_ready)", p.name));
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
