// LocalCommunicator: the one-rank group. A plain single-process run uses it everywhere, so code
// written for groups runs unchanged without MPI. Reductions are identities, gathers and scatters
// copies; send/recv would need a second rank and are errors. Arguments are checked exactly as the
// MPI communicator checks them, so a size bug shows up without launching several ranks.
#pragma once
#include "tessera/parallel/communicator.hpp"

namespace tessera {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(std::string name = "world") : Communicator(std::move(name)) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }

  CommRequest start_all_reduce(Tensor& t, ReduceOp op) override;
  CommRequest start_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  CommRequest start_all_gather(const Tensor& in, Tensor& out) override;
  CommRequest start_broadcast(Tensor& t, int root) override;
  CommRequest start_send(const Tensor& t, int peer, int tag) override;
  CommRequest start_recv(Tensor& t, int peer, int tag) override;
  CommRequest start_barrier() override;
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;
};

}  // namespace tessera
