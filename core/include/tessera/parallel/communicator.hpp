// Communicator: collectives and point-to-point transfers over one process group.
//
// The group is an explicit object (never a global), tensors go in and out, and no library type
// appears here, so that MPI (CPU tensors), NCCL (CUDA tensors) and the one-rank group implement the
// same interface. Every operation exists as a non-blocking start_* returning a CommRequest; the
// blocking forms are start_*(...).wait(). A backend's wait has a deadline (timeout()): a collective
// that cannot complete aborts the whole job with a message naming the group, the op and the rank
// instead of hanging (DESIGN.md §2).
//
// All ranks of the group must call a collective in the same order with the same element counts and
// dtype. Argument errors (sizes, dtypes, devices, ranks) are detected locally before any transfer
// starts and thrown as ShapeError / CommError naming the op and the group.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/parallel/comm_request.hpp"
#include "tessera/tensor.hpp"

namespace tessera {

enum class ReduceOp { sum, max };

// One transfer of a batch of point-to-point operations (Communicator::start_batch).
struct P2POp {
  enum class Kind { send, recv };
  Kind kind;
  Tensor tensor;  // read by a send, written by a receive
  int peer;
  int tag = 0;
};
const char* reduce_op_name(ReduceOp op);

// Default collective deadline: TESSERA_COMM_TIMEOUT_S (seconds, > 0) if set, else 300 s.
// A malformed value is a ConfigError naming the variable.
std::chrono::milliseconds default_comm_timeout();

class Communicator {
 public:
  // A communicator plugin (kind `communicator`, e.g. "nccl") is made from the host world (MPI),
  // which it uses to bootstrap and for host tensors, for the tensors of `device`. Collective.
  using FactorySignature = std::unique_ptr<Communicator>(std::shared_ptr<Communicator> host_world, Device device);
  virtual ~Communicator();

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Short name used in messages ("world", "tp", "dp", "pp", "embedding").
  const std::string& name() const { return name_; }
  // "group 'tp' (rank 1 of 2)": how messages name this group and the calling rank in it.
  std::string describe() const;

  // How long a blocking wait may take before the job is aborted.
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

  // In place: t becomes the element-wise reduction of every rank's t.
  virtual CommRequest start_all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  // in holds size() equal blocks (flat, i.e. split along dim 0); rank r's out gets the reduction of
  // every rank's block r. in.numel() == size() * out.numel().
  virtual CommRequest start_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::sum) = 0;
  // out is every rank's in, concatenated in rank order. out.numel() == size() * in.numel().
  virtual CommRequest start_all_gather(const Tensor& in, Tensor& out) = 0;
  // Every rank's t becomes root's t.
  virtual CommRequest start_broadcast(Tensor& t, int root) = 0;
  virtual CommRequest start_send(const Tensor& t, int peer, int tag = 0) = 0;
  // t must have exactly as many elements as the matching send.
  virtual CommRequest start_recv(Tensor& t, int peer, int tag = 0) = 0;
  virtual CommRequest start_barrier() = 0;
  // Starts every transfer of `ops` together; one request per op, in order. A communicator without
  // tags whose sends block until received (NCCL) runs them as one group, so that a send and a
  // receive between two ranks in opposite directions cannot deadlock — Megatron-LM's
  // batch_isend_irecv. This default posts them one by one, as MPI may (its tags match them).
  virtual std::vector<CommRequest> start_batch(std::vector<P2POp> ops);

  void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum) { start_all_reduce(t, op).wait(); }
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::sum) {
    start_reduce_scatter(in, out, op).wait();
  }
  void all_gather(const Tensor& in, Tensor& out) { start_all_gather(in, out).wait(); }
  void broadcast(Tensor& t, int root) { start_broadcast(t, root).wait(); }
  void send(const Tensor& t, int peer, int tag = 0) { start_send(t, peer, tag).wait(); }
  void recv(Tensor& t, int peer, int tag = 0) { start_recv(t, peer, tag).wait(); }
  void barrier() { start_barrier().wait(); }

  // Collective over this group: ranks passing the same color >= 0 form a new group, ordered by key
  // (ties by rank in this group); a rank passing a negative color gets nullptr. Named `name`.
  virtual std::unique_ptr<Communicator> split(int color, int key, const std::string& name) = 0;

 protected:
  explicit Communicator(std::string name) : name_(std::move(name)), timeout_(default_comm_timeout()) {}

 private:
  std::string name_;
  std::chrono::milliseconds timeout_;
};

// Runs `body` on every rank of `group`, then agrees: if it threw on any rank, every rank throws —
// the failing ranks their own error, the others an Error saying `what` failed elsewhere — instead
// of the healthy ranks waiting in their next collective for a rank that has left. Collective.
void run_on_all_or_throw(Communicator& group, const std::string& what, const std::function<void()>& body);

}  // namespace tessera
