// MpiCommunicator: a process group backed by an MPI communicator (CPU tensors only; GPU tensors
// will go through NCCL, which MPI then only bootstraps). MPI types stay in the .cpp (pimpl), so
// including this header does not need MPI.
//
// Every operation is started non-blocking (MPI_I*) and completed by polling MPI_Test with a
// deadline (timeout()); on expiry the job is aborted with the group, op and rank in the log.
// Communicators use MPI_ERRORS_RETURN and every return code is checked, so an MPI failure is a
// CommError naming the call. f32, i32, i64 and u8 reduce; bf16/f16 can be moved but not reduced.
#pragma once
#include <memory>

#include "tessera/parallel/communicator.hpp"

namespace tessera {

class MpiCommunicator final : public Communicator {
 public:
  // A duplicate of MPI_COMM_WORLD (library traffic never mixes with other users of the world).
  // Initialises MPI through MpiRuntime if needed.
  static std::unique_ptr<MpiCommunicator> world();
  ~MpiCommunicator() override;

  int rank() const override;
  int size() const override;

  CommRequest start_all_reduce(Tensor& t, ReduceOp op) override;
  CommRequest start_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  CommRequest start_all_gather(const Tensor& in, Tensor& out) override;
  CommRequest start_broadcast(Tensor& t, int root) override;
  CommRequest start_send(const Tensor& t, int peer, int tag) override;
  CommRequest start_recv(Tensor& t, int peer, int tag) override;
  CommRequest start_barrier() override;
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;
  // Waits on this communicator are for a peer that may stay idle for hours (a server's followers
  // waiting for the next request): after the first second, polling backs off to every 10 ms
  // instead of every 100 µs. Off by default; a split does not inherit it.
  void set_idle_waits(bool idle);
  bool idle_waits() const;

  struct Impl;

 private:
  MpiCommunicator(std::string name, std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
