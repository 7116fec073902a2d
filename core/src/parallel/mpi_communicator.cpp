#include "tessera/parallel/mpi_communicator.hpp"

#include <algorithm>
#include <climits>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "tessera/parallel/comm_checks.hpp"
#include "tessera/parallel/mpi_runtime.hpp"
#include "mpi_check.hpp"
#include "tessera/backend.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/parallel/abort.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

namespace tessera {

struct MpiCommunicator::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  bool idle_waits = false;  // set_idle_waits
};

namespace {

using Clock = std::chrono::steady_clock;

// One MPI request. It holds the tensors it touches so that their storage outlives the transfer.
class MpiRequest final : public CommRequest::Impl {
 public:
  MpiRequest(const MpiCommunicator& c, const char* op, std::vector<Tensor> keep)
      : op_(op), group_(c.describe()), timeout_(c.timeout()), idle_(c.idle_waits()), keep_(std::move(keep)) {}

  MPI_Request* handle() { return &request_; }
  // For a recv: the element count the message must have, checked on completion.
  void expect_count(std::int64_t count, MPI_Datatype type, int peer, int tag) {
    expected_ = count;
    type_ = type;
    peer_ = peer;
    tag_ = tag;
  }

  // Runs once the operation completes (a staged result's copy back to the device).
  void then(std::function<void()> f) { then_ = std::move(f); }

  bool test() override {
    if (done_) return true;
    int flag = 0;
    MPI_Status status;
    int rc = MPI_Test(&request_, &flag, &status);
    if (rc != MPI_SUCCESS) on_error(rc);
    if (flag && expected_ >= 0) check_count(status);
    if (flag) {
      done_ = true;
      if (then_) then_();
    }
    return flag != 0;
  }

  // Polls until done or the deadline; MPI progresses a non-blocking operation only inside calls,
  // so the loop keeps calling. A pure spin first keeps small operations at MPI_Allreduce's latency;
  // then yielding lets oversubscribed ranks share a core without slowing transfers that need many
  // progress calls; only a wait past a second (a straggler, not data movement) sleeps between polls.
  // On an idle communicator (set_idle_waits: a peer that may stay silent for hours) that sleep
  // doubles up to 10 ms, so that an idle rank costs next to no CPU. Not for the others: a large
  // transfer that takes over a second still needs frequent progress calls.
  void wait() override {
    using namespace std::chrono_literals;
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline = start + timeout_;
    std::chrono::microseconds pause = 100us;
    while (!test()) {
      Clock::time_point now = Clock::now();
      if (now >= deadline)
        abort_job(fmt::format(
            "{} on {} did not complete within {:.1f} s (TESSERA_COMM_TIMEOUT_S); another rank of the "
            "group has failed, is stuck, or called a different collective",
            op_, group_, std::chrono::duration<double>(timeout_).count()));
      if (now - start < 50us) continue;
      if (now - start < 1s) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(pause);
        if (idle_) pause = std::min<std::chrono::microseconds>(pause * 2, 10ms);
      }
    }
  }

 private:
  void on_error(int rc) {
    int error_class = rc;
    MPI_Error_class(rc, &error_class);
    if (error_class == MPI_ERR_TRUNCATE)
      throw ShapeError(fmt::format("{} on {}: the message from rank {} (tag {}) has more than the {} "
                                   "elements of the receiving tensor", op_, group_, peer_, tag_, expected_));
    mpi::throw_error(rc, "MPI_Test", __FILE__, __LINE__);
  }
  void check_count(const MPI_Status& status) {
    int count = 0;
    TESSERA_MPI_CHECK(MPI_Get_count(&status, type_, &count));
    if (count != expected_)
      throw ShapeError(fmt::format("{} on {}: the message from rank {} (tag {}) has {} elements, the "
                                   "receiving tensor has {}", op_, group_, peer_, tag_, count, expected_));
  }

  const char* op_;
  std::string group_;
  std::chrono::milliseconds timeout_;
  bool idle_;
  std::vector<Tensor> keep_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  std::int64_t expected_ = -1;
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
  int peer_ = -1, tag_ = -1;
  std::function<void()> then_;
  bool done_ = false;
};

// Device memory MPI cannot read (a GPU without a CUDA-aware MPI, while no NCCL communicator exists)
// goes through host copies: the operation runs on a host tensor, and a result is copied back when
// it completes. Correct for every layout, and slower — each transfer crosses the host twice.
bool needs_staging(const Tensor& t) { return t.defined() && !backend_of(t.device()).mpi_addressable(); }

void log_staging_once(const Tensor& t) {
  static std::once_flag once;
  std::call_once(once, [&] {
    log_warn("collectives of {} tensors go through host memory: MPI cannot read {} memory and this build has no "
             "communicator of that device (docs/cuda.md)", backend_of(t.device()).name(), t.device().str());
  });
}

// The tensor MPI works on: t itself, or a host copy of it (with its values when `with_values`).
Tensor staged(const Tensor& t, bool with_values) {
  if (!needs_staging(t)) return t;
  log_staging_once(t);
  return with_values ? t.to(Device::cpu()) : Tensor::empty(t.shape(), t.dtype());
}

// After completion: the host result into the device tensor it stands for (nothing when unstaged).
void copy_back_when_done(MpiRequest& r, const Tensor& host, Tensor device) {
  if (host.device() == device.device()) return;
  r.then([host, device]() mutable { ops::copy(host, device); });
}

int count_of(const Communicator& c, const char* op, std::int64_t n) {
  if (n > INT_MAX)
    throw ShapeError(fmt::format("{} on {}: {} elements exceed MPI's int count; split the tensor", op,
                                 c.describe(), n));
  return static_cast<int>(n);
}

MPI_Op mpi_op(ReduceOp op, DType t) {
  return mpi::reduce_op(op == ReduceOp::sum ? mpi::Reduction::sum : mpi::Reduction::max, t);
}

}  // namespace

MpiCommunicator::MpiCommunicator(std::string name, std::unique_ptr<Impl> impl)
    : Communicator(std::move(name)), impl_(std::move(impl)) {}

std::unique_ptr<MpiCommunicator> MpiCommunicator::world() {
  MpiRuntime::init();
  auto impl = std::make_unique<Impl>();
  TESSERA_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &impl->comm));
  TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN));
  TESSERA_MPI_CHECK(MPI_Comm_rank(impl->comm, &impl->rank));
  TESSERA_MPI_CHECK(MPI_Comm_size(impl->comm, &impl->size));
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator("world", std::move(impl)));
}

MpiCommunicator::~MpiCommunicator() {
  // A communicator outliving MPI_Finalize (a static destroyed late) has nothing left to free.
  if (impl_->comm != MPI_COMM_NULL && MpiRuntime::active()) MPI_Comm_free(&impl_->comm);
}

int MpiCommunicator::rank() const { return impl_->rank; }
int MpiCommunicator::size() const { return impl_->size; }

CommRequest MpiCommunicator::start_all_reduce(Tensor& device_t, ReduceOp op) {
  comm_checks::tensor(*this, "all_reduce", device_t, false);
  Tensor t = staged(device_t, true);
  MPI_Datatype type = mpi::reduce_datatype(t.dtype());
  auto r = std::make_unique<MpiRequest>(*this, "all_reduce", std::vector<Tensor>{t});
  copy_back_when_done(*r, t, device_t);
  TESSERA_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, t.device_raw(), count_of(*this, "all_reduce", t.numel()), type,
                                   mpi_op(op, t.dtype()), impl_->comm, r->handle()));
  return CommRequest(std::move(r));
}

CommRequest MpiCommunicator::start_reduce_scatter(const Tensor& device_in, Tensor& device_out, ReduceOp op) {
  const Tensor in = staged(device_in, true);
  Tensor out = staged(device_out, false);
  comm_checks::reduce_scatter(*this, in, out);
  MPI_Datatype type = mpi::reduce_datatype(in.dtype());
  auto r = std::make_unique<MpiRequest>(*this, "reduce_scatter", std::vector<Tensor>{in, out});
  copy_back_when_done(*r, out, device_out);
  TESSERA_MPI_CHECK(MPI_Ireduce_scatter_block(in.device_raw(), out.device_raw(), count_of(*this, "reduce_scatter", out.numel()),
                                              type, mpi_op(op, in.dtype()), impl_->comm, r->handle()));
  return CommRequest(std::move(r));
}

CommRequest MpiCommunicator::start_all_gather(const Tensor& device_in, Tensor& device_out) {
  const Tensor in = staged(device_in, true);
  Tensor out = staged(device_out, false);
  comm_checks::all_gather(*this, in, out);
  MPI_Datatype type = mpi::datatype(in.dtype());
  int n = count_of(*this, "all_gather", in.numel());
  auto r = std::make_unique<MpiRequest>(*this, "all_gather", std::vector<Tensor>{in, out});
  copy_back_when_done(*r, out, device_out);
  TESSERA_MPI_CHECK(MPI_Iallgather(in.device_raw(), n, type, out.device_raw(), n, type, impl_->comm, r->handle()));
  return CommRequest(std::move(r));
}

CommRequest MpiCommunicator::start_broadcast(Tensor& device_t, int root) {
  comm_checks::tensor(*this, "broadcast", device_t, false);
  comm_checks::root(*this, "broadcast", root);
  Tensor t = staged(device_t, rank() == root);
  auto r = std::make_unique<MpiRequest>(*this, "broadcast", std::vector<Tensor>{t});
  if (rank() != root) copy_back_when_done(*r, t, device_t);
  TESSERA_MPI_CHECK(MPI_Ibcast(t.device_raw(), count_of(*this, "broadcast", t.numel()), mpi::datatype(t.dtype()), root,
                               impl_->comm, r->handle()));
  return CommRequest(std::move(r));
}

CommRequest MpiCommunicator::start_send(const Tensor& device_t, int peer, int tag) {
  comm_checks::tensor(*this, "send", device_t, false);
  const Tensor t = staged(device_t, true);
  comm_checks::peer(*this, "send", peer, tag);
  auto r = std::make_unique<MpiRequest>(*this, "send", std::vector<Tensor>{t});
  TESSERA_MPI_CHECK(MPI_Isend(t.device_raw(), count_of(*this, "send", t.numel()), mpi::datatype(t.dtype()), peer, tag,
                              impl_->comm, r->handle()));
  return CommRequest(std::move(r));
}

CommRequest MpiCommunicator::start_recv(Tensor& device_t, int peer, int tag) {
  comm_checks::tensor(*this, "recv", device_t, false);
  comm_checks::peer(*this, "recv", peer, tag);
  Tensor t = staged(device_t, false);
  MPI_Datatype type = mpi::datatype(t.dtype());
  auto r = std::make_unique<MpiRequest>(*this, "recv", std::vector<Tensor>{t});
  copy_back_when_done(*r, t, device_t);
  r->expect_count(t.numel(), type, peer, tag);
  TESSERA_MPI_CHECK(MPI_Irecv(t.device_raw(), count_of(*this, "recv", t.numel()), type, peer, tag, impl_->comm,
                              r->handle()));
  return CommRequest(std::move(r));
}

CommRequest MpiCommunicator::start_barrier() {
  auto r = std::make_unique<MpiRequest>(*this, "barrier", std::vector<Tensor>{});
  TESSERA_MPI_CHECK(MPI_Ibarrier(impl_->comm, r->handle()));
  return CommRequest(std::move(r));
}

void MpiCommunicator::set_idle_waits(bool idle) { impl_->idle_waits = idle; }
bool MpiCommunicator::idle_waits() const { return impl_->idle_waits; }

void set_idle_waits(Communicator& c) {
  if (auto* mpi = dynamic_cast<MpiCommunicator*>(&c)) mpi->set_idle_waits(true);
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key, const std::string& name) {
  // MPI_Comm_split blocks with no deadline; a barrier first (which has one) makes sure every rank
  // arrived, so a failed rank ends the job instead of hanging it here.
  barrier();
  auto impl = std::make_unique<Impl>();
  TESSERA_MPI_CHECK(MPI_Comm_split(impl_->comm, color < 0 ? MPI_UNDEFINED : color, key, &impl->comm));
  if (impl->comm == MPI_COMM_NULL) return nullptr;
  TESSERA_MPI_CHECK(MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN));
  TESSERA_MPI_CHECK(MPI_Comm_rank(impl->comm, &impl->rank));
  TESSERA_MPI_CHECK(MPI_Comm_size(impl->comm, &impl->size));
  auto c = std::unique_ptr<MpiCommunicator>(new MpiCommunicator(name, std::move(impl)));
  c->set_timeout(timeout());
  return c;
}

}  // namespace tessera
