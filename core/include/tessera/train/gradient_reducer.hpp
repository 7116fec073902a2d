// Sums gradients over the data-parallel group, overlapped with backward: each parameter's
// all-reduce starts as soon as its module reports the gradient final (GradReadyListener), and
// every report also polls the reductions in flight, because OpenMPI moves a non-blocking
// collective forward only inside MPI calls. finish() starts what was never reported (e.g. the
// tied embedding, whose gradient is complete only after the embedding's backward) and waits.
#pragma once
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "tessera/nn/parameter.hpp"
#include "tessera/nn/step_context.hpp"
#include "tessera/parallel/communicator.hpp"

namespace tessera {

class GradientReducer : public GradReadyListener {
 public:
  // overlap = false: everything is reduced in finish() (Megatron's --overlap-grad-reduce off).
  GradientReducer(const std::vector<Parameter*>& params, Communicator& dp, bool overlap);
  ~GradientReducer() override;
  void grad_ready(Parameter& p) override;
  void finish();
  // Reductions started before finish() in the last iteration: > 0 means backward overlapped them.
  std::int64_t started_during_backward() const { return started_early_; }

 private:
  bool start(Parameter& p);  // false when p's reduction had started already

  std::vector<Parameter*> params_;
  Communicator& dp_;
  bool overlap_;
  std::vector<CommRequest> pending_;
  std::unordered_set<const Parameter*> started_;
  std::int64_t started_early_ = 0;
};

}  // namespace tessera
