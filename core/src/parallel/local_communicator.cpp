#include "tessera/parallel/local_communicator.hpp"

#include "tessera/parallel/comm_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera {

// With one rank, in and out of a scatter or gather may be the same buffer.
static void copy_bytes(const Tensor& in, Tensor& out) {
  if (in.numel() == 0 || in.same_memory(out)) return;
  Tensor flat_out = out.reshape({out.numel()});
  ops::copy(in.reshape({in.numel()}), flat_out);
}

CommRequest LocalCommunicator::start_all_reduce(Tensor& t, ReduceOp) {
  comm_checks::tensor(*this, "all_reduce", t, false);
  return {};
}

CommRequest LocalCommunicator::start_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp) {
  comm_checks::reduce_scatter(*this, in, out, false);
  copy_bytes(in, out);
  return {};
}

CommRequest LocalCommunicator::start_all_gather(const Tensor& in, Tensor& out) {
  comm_checks::all_gather(*this, in, out, false);
  copy_bytes(in, out);
  return {};
}

CommRequest LocalCommunicator::start_broadcast(Tensor& t, int root) {
  comm_checks::tensor(*this, "broadcast", t, false);
  comm_checks::root(*this, "broadcast", root);
  return {};
}

CommRequest LocalCommunicator::start_send(const Tensor& t, int peer, int tag) {
  comm_checks::tensor(*this, "send", t, false);
  comm_checks::peer(*this, "send", peer, tag);
  return {};  // unreachable: the only rank is this one, which peer() rejects
}

CommRequest LocalCommunicator::start_recv(Tensor& t, int peer, int tag) {
  comm_checks::tensor(*this, "recv", t, false);
  comm_checks::peer(*this, "recv", peer, tag);
  return {};
}

CommRequest LocalCommunicator::start_barrier() { return {}; }

std::unique_ptr<Communicator> LocalCommunicator::split(int color, int, const std::string& name) {
  if (color < 0) return nullptr;
  auto c = std::make_unique<LocalCommunicator>(name);
  c->set_timeout(timeout());
  return c;
}

}  // namespace tessera
