// Sums gradients over the data-parallel group, one all-reduce (or, for a distributed optimizer, one
// reduce-scatter) per gradient bucket (GradBuckets:
// the grads of a bucket are one contiguous range of a flat buffer), overlapped with backward.
//
// With overlap on, modules report each gradient final (GradReadyListener) during the last
// microbatch's backward; when every parameter of a bucket has reported, the bucket's non-blocking
// all-reduce starts while backward goes on with earlier layers. Every report also polls the
// reductions in flight, because OpenMPI moves a non-blocking collective forward only inside MPI
// calls. A bucket whose parameters never all report (the tied embedding, which must not report)
// and the after_tp_reduce buckets (summed over tp first, by the trainer, after backward) start in
// finish(), which then waits for everything. With overlap off, finish() starts every bucket.
//
// Buckets start in an order every dp rank reproduces (the order of the reports, then bucket
// order in finish()), as MPI requires of collectives on one communicator.
#pragma once
#include <cstdint>
#include <vector>

#include "tessera/nn/parameter.hpp"
#include "tessera/nn/step_context.hpp"
#include "tessera/parallel/communicator.hpp"
#include "tessera/train/grad_buckets.hpp"

namespace tessera {

class GradientReducer : public GradReadyListener {
 public:
  // overlap = false: everything is reduced in finish() (Megatron's --overlap-grad-reduce off).
  // One iteration's reducer: it counts reports from construction. On a one-rank group it still
  // keeps the books (the all-reduces are no-ops), which is what tests observe.
  // `scatter_into` (a distributed optimizer's gradient shards, one per bucket, numel / dp each):
  // reduce-scatter each bucket into it instead of all-reducing (ZeRO); null: all-reduce.
  // `expert_dp`: the group that sums the expert_parallel buckets (null: dp).
  GradientReducer(GradBuckets& buckets, Communicator& dp, bool overlap, std::vector<Tensor>* scatter_into = nullptr,
                  Communicator* expert_dp = nullptr);
  ~GradientReducer() override;
  void grad_ready(Parameter& p) override;
  void finish();
  // Buckets whose all-reduce started before finish(): > 0 means backward overlapped them.
  std::int64_t started_during_backward() const { return started_early_; }
  bool started(std::size_t bucket) const { return started_.at(bucket); }

 private:
  void start(std::size_t bucket);
  void poll();

  GradBuckets& buckets_;
  Communicator& dp_;
  Communicator& expert_dp_;
  bool overlap_;
  std::vector<Tensor>* scatter_into_;
  std::vector<CommRequest> pending_;
  std::vector<bool> reported_;            // per parameter (GradBuckets::index_of)
  std::vector<std::size_t> ready_;        // per bucket: parameters reported
  std::vector<bool> started_;             // per bucket
  std::int64_t started_early_ = 0;
};

}  // namespace tessera
