// OfflineCommunicator: a group position without peers — the rank and size of one rank's group in a
// layout that is not running — so that a model can be built, in one process, as any rank of any
// layout builds it (its shard shapes follow the group's size and rank). Building communicates
// nothing; any collective or message is a CommError. `tessera checkpoint reshard` builds every
// rank's model of two layouts this way to learn their parameters.
#pragma once
#include <memory>

#include "tessera/parallel/communicator.hpp"
#include "tessera/parallel/parallel.hpp"

namespace tessera {

class OfflineCommunicator final : public Communicator {
 public:
  OfflineCommunicator(std::string name, int rank, int size) : Communicator(std::move(name)), rank_(rank), size_(size) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  CommRequest start_all_reduce(Tensor&, ReduceOp) override { fail("all_reduce"); }
  CommRequest start_reduce_scatter(const Tensor&, Tensor&, ReduceOp) override { fail("reduce_scatter"); }
  CommRequest start_all_gather(const Tensor&, Tensor&) override { fail("all_gather"); }
  CommRequest start_broadcast(Tensor&, int) override { fail("broadcast"); }
  CommRequest start_send(const Tensor&, int, int) override { fail("send"); }
  CommRequest start_recv(Tensor&, int, int) override { fail("recv"); }
  CommRequest start_barrier() override { fail("barrier"); }
  std::unique_ptr<Communicator> split(int, int, const std::string&) override { fail("split"); }

 private:
  [[noreturn]] void fail(const char* op) const;
  int rank_, size_;
};

// The Parallel of world rank `world_rank` of a layout of `world_size` ranks split by `sizes`, every
// group an OfflineCommunicator with that rank's place in it (no embedding group off its stages).
std::shared_ptr<const Parallel> offline_parallel(int world_rank, int world_size, const ParallelSizes& sizes);

}  // namespace tessera
