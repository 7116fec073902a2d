// NcclCommunicator: the Communicator of CUDA tensors (plugin "nccl", kind "communicator").
//
// - Made from the host world (MPI): rank 0's ncclUniqueId is broadcast over it, every rank joins
//   the NCCL world, and split() makes each group with ncclCommSplit beside the host group's split —
//   the same ranks in the same order, since both order by (key, parent rank).
// - CUDA tensors go through NCCL; host tensors (loss sums, checkpoint agreement) through the host
//   group, so every caller keeps using one communicator per group.
// - Each group has its own NCCL stream. A transfer first waits (on the GPU) for the work queued on
//   the compute stream so far, and records an event when done; wait() makes the compute stream
//   wait for that event — the host does not block, as with PyTorch's work.wait(). The request holds
//   its tensors until then, and their memory is freed in compute-stream order after the wait, so it
//   is never reused while NCCL still reads or writes it.
// - Deadlines: a watchdog thread (nccl_watchdog.hpp). The communicators are non-blocking
//   (ncclConfig_t::blocking = 0): joining the world and splitting it poll with the group's deadline.
// - Point-to-point: NCCL has no tags and a send waits on the GPU for its receive; start_batch runs
//   its ops as one NCCL group (Megatron-LM's batch_isend_irecv), and the pipeline executor pairs
//   each send with the receive that follows it (schedule.hpp, batched_with_next). A receive cannot
//   check the incoming element count as MPI's does: both sides must agree on shapes.
#pragma once
#include <memory>
#include <string>

#include "nccl_support.hpp"
#include "nccl_watchdog.hpp"

namespace tessera::nccl {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over host_world: joins (or creates) the NCCL world of `device`'s GPU.
  static std::unique_ptr<NcclCommunicator> world(std::shared_ptr<Communicator> host_world, Device device);
  ~NcclCommunicator() override;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  CommRequest start_all_reduce(Tensor& t, ReduceOp op) override;
  CommRequest start_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  CommRequest start_all_gather(const Tensor& in, Tensor& out) override;
  CommRequest start_broadcast(Tensor& t, int root) override;
  CommRequest start_send(const Tensor& t, int peer, int tag) override;
  CommRequest start_recv(Tensor& t, int peer, int tag) override;
  CommRequest start_barrier() override;
  std::vector<CommRequest> start_batch(std::vector<P2POp> ops) override;
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;

 private:
  struct Shared;  // what every group of the process shares: the device, its compute stream, the watchdog
  NcclCommunicator(std::string name, std::shared_ptr<Communicator> host, ncclComm_t comm,
                   std::shared_ptr<Shared> shared);

  // Whether the op runs on the host group: every tensor on the host. Mixed or foreign devices throw.
  bool on_host(const char* op, std::initializer_list<const Tensor*> tensors) const;
  // Queues `enqueue` (NCCL calls on the group's stream) after the compute stream's work so far and
  // returns the request of its completion, keeping `keep` alive until the compute stream waited.
  template <class F>
  CommRequest launch(const char* op, std::vector<Tensor> keep, F&& enqueue);
  // Waits for a non-blocking NCCL call to finish enqueuing (ncclInProgress), within the deadline.
  void settle(ncclResult_t r, ncclComm_t comm, const std::string& what) const;

  std::shared_ptr<Communicator> host_;
  ncclComm_t comm_ = nullptr;
  std::shared_ptr<Shared> shared_;
  cudaStream_t stream_ = nullptr;  // this group's NCCL stream
  std::shared_ptr<Event> ready_;   // recorded on the compute stream before each transfer
};

}  // namespace tessera::nccl
