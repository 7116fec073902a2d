#include "tessera/train/gradient_reducer.hpp"

#include <exception>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/parallel/abort.hpp"

namespace tessera {

GradientReducer::GradientReducer(GradBuckets& buckets, Communicator& dp, bool overlap,
                                 std::vector<Tensor>* scatter_into, Communicator* expert_dp)
    : buckets_(buckets),
      dp_(dp),
      expert_dp_(expert_dp ? *expert_dp : dp),
      overlap_(overlap),
      scatter_into_(scatter_into),
      reported_(buckets.num_params(), false),
      ready_(buckets.size(), 0),
      started_(buckets.size(), false) {
  if (scatter_into_ && scatter_into_->size() != buckets.size())
    throw Error(fmt::format("gradient reducer: {} gradient shards for {} buckets", scatter_into_->size(), buckets.size()));
}

GradientReducer::~GradientReducer() {
  // Unwinding with reductions in flight: waiting for them would wait for ranks that may never join
  // (they may be failing too, or waiting elsewhere), and the real error would be lost behind a
  // collective timeout. End the job now, with the error.
  if (!pending_.empty() && std::uncaught_exceptions() > 0)
    abort_job("an error was thrown during backward while gradient all-reduces were in flight");
}

void GradientReducer::start(std::size_t bucket) {
  started_[bucket] = true;
  Communicator& group = buckets_.buckets()[bucket].expert_parallel ? expert_dp_ : dp_;
  if (group.size() == 1) {  // the experts' group when ep = dp: one rank holds them, nothing to sum
    if (scatter_into_) ops::copy(buckets_.data(bucket), scatter_into_->at(bucket));
    return;
  }
  if (scatter_into_)
    pending_.push_back(group.start_reduce_scatter(buckets_.data(bucket), scatter_into_->at(bucket)));
  else
    pending_.push_back(group.start_all_reduce(buckets_.data(bucket)));
}

void GradientReducer::poll() {
  for (CommRequest& r : pending_) r.test();
}

void GradientReducer::grad_ready(Parameter& p) {
  if (!overlap_) return;
  // The pipeline's tied embedding is summed over the embedding group after backward, in place in
  // its bucket: its bucket must not start before that.
  if (p.stage_tie != Parameter::StageTie::none)
    throw Error(fmt::format("'{}' is tied across pipeline stages and must not report its gradient final "
                            "(StepContext::grad_ready): the trainer sums it over the embedding group after backward",
                            p.name));
  const std::size_t i = buckets_.index_of(p);
  // A second report means more was added after the reduction may have started (a shared parameter).
  if (reported_[i])
    throw Error(fmt::format("gradient of '{}' reported final twice in one backward: a parameter shared by two "
                            "modules must not report (StepContext::grad_ready)", p.name));
  reported_[i] = true;
  const std::size_t b = buckets_.bucket_of(p);
  const GradBuckets::Bucket& bucket = buckets_.buckets()[b];
  // A bucket summed over tp first is not final yet: it starts in finish().
  if (!bucket.after_tp_reduce && ++ready_[b] == bucket.params.size()) {
    start(b);
    ++started_early_;
  }
  poll();
}

void GradientReducer::finish() {
  for (std::size_t b = 0; b < buckets_.size(); ++b)
    if (!started_[b]) start(b);
  for (CommRequest& r : pending_) r.wait();
  pending_.clear();
}

}  // namespace tessera
