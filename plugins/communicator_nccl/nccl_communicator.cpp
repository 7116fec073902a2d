#include "nccl_communicator.hpp"

#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "tessera/backend.hpp"
#include "tessera/parallel/abort.hpp"
#include "tessera/parallel/comm_checks.hpp"

namespace tessera::nccl {

struct NcclCommunicator::Shared {
  Device device;
  int cuda_device = 0;            // the GPU behind `device` (its local rank's)
  cudaStream_t compute = nullptr;  // the CUDA backend's stream
  std::shared_ptr<Watchdog> watchdog;

  // CUDA's current device is per host thread: set it on whichever thread calls.
  void use_device(const std::string& where) const {
    thread_local int set_for = -1;
    if (set_for == cuda_device) return;
    check_cuda(cudaSetDevice(cuda_device), "selecting the GPU", where);
    set_for = cuda_device;
  }
};

namespace {

// One transfer (or batch of transfers): complete once its event has fired on the NCCL stream.
class NcclRequest final : public CommRequest::Impl {
 public:
  NcclRequest(std::shared_ptr<Event> done, cudaStream_t compute, std::vector<Tensor> keep, std::string what)
      : done_(std::move(done)), compute_(compute), keep_(std::move(keep)), what_(std::move(what)) {}
  // Freeing the tensors (in compute-stream order) comes after the compute stream's wait. A
  // destructor must not throw: a CUDA error here is reported by the next checked call.
  ~NcclRequest() override {
    if (!waited_) cudaStreamWaitEvent(compute_, done_->get(), 0);
  }

  bool test() override {
    const cudaError_t e = cudaEventQuery(done_->get());
    if (e == cudaErrorNotReady) return false;
    check_cuda(e, "testing completion", what_);
    return true;
  }
  // Later compute-stream work runs after the transfer; the host goes on (the watchdog keeps the deadline).
  void wait() override {
    if (waited_) return;
    waited_ = true;
    check_cuda(cudaStreamWaitEvent(compute_, done_->get(), 0), "ordering compute after", what_);
  }

 private:
  std::shared_ptr<Event> done_;
  cudaStream_t compute_;
  std::vector<Tensor> keep_;
  std::string what_;
  bool waited_ = false;
};

// Several requests of one NCCL group share its event; each keeps its own tensor.
std::vector<CommRequest> requests_of_batch(const std::shared_ptr<Event>& done, cudaStream_t compute,
                                           const std::vector<P2POp>& ops, const std::string& what) {
  std::vector<CommRequest> out;
  out.reserve(ops.size());
  for (const P2POp& op : ops) out.emplace_back(std::make_unique<NcclRequest>(done, compute, std::vector<Tensor>{op.tensor}, what));
  return out;
}

// NCCL needs one GPU per rank. Ranks sharing one (more ranks than GPUs on a machine, as when
// testing layouts on a one-GPU box) get a PluginError on every rank alike, so that the trainer's
// `communicator = "auto"` falls back to MPI through host memory everywhere. Collective.
void require_own_gpus(Communicator& host_world, int cuda_device) {
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, cuda_device), "reading the GPU's UUID", host_world.describe());
  constexpr std::int64_t kUuid = sizeof prop.uuid.bytes;
  Tensor mine = Tensor::empty({kUuid}, DType::u8), all = Tensor::empty({kUuid * host_world.size()}, DType::u8);
  std::memcpy(mine.data<std::uint8_t>(), prop.uuid.bytes, kUuid);
  host_world.all_gather(mine, all);
  const std::uint8_t* uuid = all.data<std::uint8_t>();
  for (int a = 0; a < host_world.size(); ++a)
    for (int b = a + 1; b < host_world.size(); ++b)
      if (std::memcmp(uuid + a * kUuid, uuid + b * kUuid, kUuid) == 0)
        throw PluginError(fmt::format("ranks {} and {} of the {} ranks share one GPU; NCCL needs a GPU per rank", a, b,
                                      host_world.size()));
}

ncclConfig_t nonblocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::string name, std::shared_ptr<Communicator> host, ncclComm_t comm,
                                   std::shared_ptr<Shared> shared)
    : Communicator(std::move(name)), host_(std::move(host)), comm_(comm), shared_(std::move(shared)) {
  set_timeout(host_->timeout());
  shared_->use_device(describe());
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating the NCCL stream", describe());
  ready_ = std::make_shared<Event>();
}

NcclCommunicator::~NcclCommunicator() {
  // Everything queued has run (a missing peer is ended by the watchdog); then nothing refers to comm_.
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  if (comm_ != nullptr) {
    shared_->watchdog->forget(comm_);
    ncclCommDestroy(comm_);
  }
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::world(std::shared_ptr<Communicator> host_world, Device device) {
  if (device.is_cpu() || backend_of(device).communicator_plugin() != "nccl")
    throw ConfigError(fmt::format("the nccl communicator moves CUDA tensors; this run's device is {}", device.str()));
  const std::string where = host_world->describe();
  auto shared = std::make_shared<Shared>();
  shared->device = device;
  shared->compute = static_cast<cudaStream_t>(backend_of(device).native_stream(device.index));
  check_cuda(cudaStreamGetDevice(shared->compute, &shared->cuda_device), "finding the compute stream's GPU", where);
  shared->use_device(where);
  require_own_gpus(*host_world, shared->cuda_device);
  shared->watchdog = std::make_shared<Watchdog>(shared->cuda_device);

  // Rank 0's id reaches every rank over the host world (whose broadcast has a deadline).
  ncclUniqueId id{};
  if (host_world->rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId", where);
  Tensor bytes = Tensor::empty({static_cast<std::int64_t>(sizeof id)}, DType::u8);
  std::memcpy(bytes.data<std::uint8_t>(), &id, sizeof id);
  host_world->broadcast(bytes, 0);
  std::memcpy(&id, bytes.data<std::uint8_t>(), sizeof id);

  ncclConfig_t config = nonblocking_config();
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRankConfig(&comm, host_world->size(), id, host_world->rank(), &config);
  if (r != ncclSuccess && r != ncclInProgress) check(r, "ncclCommInitRank", where, comm);
  auto world = std::unique_ptr<NcclCommunicator>(new NcclCommunicator("world", std::move(host_world), comm, shared));
  world->settle(r, comm, "joining the NCCL world");
  return world;
}

void NcclCommunicator::settle(ncclResult_t r, ncclComm_t comm, const std::string& what) const {
  const auto deadline = Watchdog::Clock::now() + timeout();
  while (r == ncclInProgress) {
    if (Watchdog::Clock::now() >= deadline) {
      ncclCommAbort(comm);
      abort_job(fmt::format("{} on {} did not complete within {:.1f} s (TESSERA_COMM_TIMEOUT_S); another rank of the "
                            "group has failed or is stuck", what, describe(),
                            std::chrono::duration<double>(timeout()).count()));
    }
    std::this_thread::yield();
    check(ncclCommGetAsyncError(comm, &r), what, describe(), comm);
  }
  check(r, what, describe(), comm);
}

bool NcclCommunicator::on_host(const char* op, std::initializer_list<const Tensor*> tensors) const {
  int host = 0;
  for (const Tensor* t : tensors) {
    comm_checks::tensor(*this, op, *t, false);
    if (t->device().is_cpu())
      ++host;
    else if (t->device() != shared_->device)
      throw ShapeError(fmt::format("{} on {}: {} is on {}; this communicator moves {} tensors", op, describe(),
                                   t->str(), t->device().str(), shared_->device.str()));
  }
  if (host != 0 && host != static_cast<int>(tensors.size()))
    throw ShapeError(fmt::format("{} on {}: tensors on the host and on {} in one operation", op, describe(),
                                 shared_->device.str()));
  return host != 0;
}

template <class F>
CommRequest NcclCommunicator::launch(const char* op, std::vector<Tensor> keep, F&& enqueue) {
  const std::string what = fmt::format("{} on {}", op, describe());
  shared_->use_device(what);
  check_cuda(cudaEventRecord(ready_->get(), shared_->compute), "ordering after compute", what);
  check_cuda(cudaStreamWaitEvent(stream_, ready_->get(), 0), "ordering after compute", what);
  settle(enqueue(stream_), comm_, op);
  auto done = std::make_shared<Event>();
  check_cuda(cudaEventRecord(done->get(), stream_), "recording completion", what);
  shared_->watchdog->watch(done, comm_, what, timeout());
  return CommRequest(std::make_unique<NcclRequest>(std::move(done), shared_->compute, std::move(keep), what));
}

CommRequest NcclCommunicator::start_all_reduce(Tensor& t, ReduceOp op) {
  if (on_host("all_reduce", {&t})) return host_->start_all_reduce(t, op);
  return launch("all_reduce", {t}, [&](cudaStream_t s) {
    return ncclAllReduce(t.device_raw(), t.device_raw(), t.numel(), data_type(t.dtype()), reduce_op(op), comm_, s);
  });
}

CommRequest NcclCommunicator::start_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  if (on_host("reduce_scatter", {&in, &out})) return host_->start_reduce_scatter(in, out, op);
  comm_checks::reduce_scatter(*this, in, out, false);
  return launch("reduce_scatter", {in, out}, [&](cudaStream_t s) {
    return ncclReduceScatter(in.device_raw(), out.device_raw(), out.numel(), data_type(in.dtype()), reduce_op(op), comm_,
                             s);
  });
}

CommRequest NcclCommunicator::start_all_gather(const Tensor& in, Tensor& out) {
  if (on_host("all_gather", {&in, &out})) return host_->start_all_gather(in, out);
  comm_checks::all_gather(*this, in, out, false);
  return launch("all_gather", {in, out}, [&](cudaStream_t s) {
    return ncclAllGather(in.device_raw(), out.device_raw(), in.numel(), data_type(in.dtype()), comm_, s);
  });
}

CommRequest NcclCommunicator::start_broadcast(Tensor& t, int root) {
  if (on_host("broadcast", {&t})) return host_->start_broadcast(t, root);
  comm_checks::root(*this, "broadcast", root);
  return launch("broadcast", {t}, [&](cudaStream_t s) {
    return ncclBroadcast(t.device_raw(), t.device_raw(), t.numel(), data_type(t.dtype()), root, comm_, s);
  });
}

CommRequest NcclCommunicator::start_send(const Tensor& t, int peer, int tag) {
  if (on_host("send", {&t})) return host_->start_send(t, peer, tag);
  comm_checks::peer(*this, "send", peer, tag);
  return launch("send", {t}, [&](cudaStream_t s) {
    return ncclSend(t.device_raw(), t.numel(), data_type(t.dtype()), peer, comm_, s);
  });
}

CommRequest NcclCommunicator::start_recv(Tensor& t, int peer, int tag) {
  if (on_host("recv", {&t})) return host_->start_recv(t, peer, tag);
  comm_checks::peer(*this, "recv", peer, tag);
  return launch("recv", {t}, [&](cudaStream_t s) {
    return ncclRecv(t.device_raw(), t.numel(), data_type(t.dtype()), peer, comm_, s);
  });
}

CommRequest NcclCommunicator::start_barrier() { return host_->start_barrier(); }

std::vector<CommRequest> NcclCommunicator::start_batch(std::vector<P2POp> ops) {
  if (ops.empty()) return {};
  int host = 0;
  for (const P2POp& op : ops) {
    const char* name = op.kind == P2POp::Kind::send ? "send" : "recv";
    host += on_host(name, {&op.tensor});
    comm_checks::peer(*this, name, op.peer, op.tag);
  }
  if (host == static_cast<int>(ops.size())) return host_->start_batch(std::move(ops));
  if (host != 0)
    throw ShapeError(fmt::format("batched send/recv on {}: tensors on the host and on {} in one batch", describe(),
                                 shared_->device.str()));
  // One NCCL group: the sends and receives between two ranks in both directions cannot deadlock.
  const std::string what = fmt::format("batched send/recv ({} ops) on {}", ops.size(), describe());
  std::vector<Tensor> keep;
  for (const P2POp& op : ops) keep.push_back(op.tensor);
  CommRequest group = launch("batched send/recv", std::move(keep), [&](cudaStream_t s) {
    ncclResult_t r = ncclGroupStart();
    for (const P2POp& op : ops) {
      if (r != ncclSuccess) break;
      Tensor t = op.tensor;
      r = op.kind == P2POp::Kind::send ? ncclSend(t.device_raw(), t.numel(), data_type(t.dtype()), op.peer, comm_, s)
                                       : ncclRecv(t.device_raw(), t.numel(), data_type(t.dtype()), op.peer, comm_, s);
    }
    const ncclResult_t end = ncclGroupEnd();  // always closes the group, even after a failed call in it
    return r != ncclSuccess ? r : end;
  });
  // The group's request orders compute after the whole batch; each op's own request repeats that wait.
  group.wait();
  auto done = std::make_shared<Event>();
  check_cuda(cudaEventRecord(done->get(), stream_), "recording completion", what);
  return requests_of_batch(done, shared_->compute, ops, what);
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key, const std::string& name) {
  // The host split first: it has a deadline (a barrier), so every rank is known to have arrived
  // before NCCL's split, which has none of its own.
  std::shared_ptr<Communicator> host_group = host_->split(color, key, name);
  ncclConfig_t config = nonblocking_config();
  ncclComm_t child = nullptr;
  const ncclResult_t r = ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child, &config);
  settle(r, comm_, fmt::format("ncclCommSplit of group '{}'", name));
  if (!host_group) {
    if (child != nullptr) ncclCommDestroy(child);
    return nullptr;
  }
  if (child == nullptr)
    throw CommError(fmt::format("ncclCommSplit on {}: no NCCL communicator for group '{}' of {} ranks", describe(),
                                name, host_group->size()));
  auto group = std::unique_ptr<NcclCommunicator>(new NcclCommunicator(name, std::move(host_group), child, shared_));
  group->settle(ncclInProgress, child, "creating the group");
  int nccl_rank = -1, nccl_size = -1;
  check(ncclCommUserRank(child, &nccl_rank), "ncclCommUserRank", group->describe(), child);
  check(ncclCommCount(child, &nccl_size), "ncclCommCount", group->describe(), child);
  if (nccl_rank != group->rank() || nccl_size != group->size())
    throw CommError(fmt::format("{}: NCCL placed this rank at {} of {}, MPI at {} of {}", group->describe(), nccl_rank,
                                nccl_size, group->rank(), group->size()));
  return group;
}

}  // namespace tessera::nccl
