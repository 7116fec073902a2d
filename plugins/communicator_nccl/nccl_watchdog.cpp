#include "nccl_watchdog.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/parallel/abort.hpp"

namespace tessera::nccl {

Watchdog::Watchdog(int cuda_device) : cuda_device_(cuda_device), thread_([this] { loop(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Watchdog::watch(std::shared_ptr<Event> done, ncclComm_t comm, std::string what, std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_back(Entry{std::move(done), comm, std::move(what), timeout, Clock::now() + timeout});
  }
  wake_.notify_all();
}

void Watchdog::forget(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::erase_if(entries_, [comm](const Entry& e) { return e.comm == comm; });
}

bool Watchdog::check(const Entry& e, Clock::time_point now) {
  const cudaError_t state = cudaEventQuery(e.done->get());
  if (state == cudaSuccess) return true;
  if (state != cudaErrorNotReady)
    abort_job(fmt::format("{} failed on the GPU: CUDA: {}", e.what, cudaGetErrorString(state)));
  ncclResult_t async = ncclSuccess;
  if (ncclCommGetAsyncError(e.comm, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
    const std::string text = error_text(async, e.what, "the GPU", e.comm);
    ncclCommAbort(e.comm);
    abort_job(text);
  }
  if (now >= e.deadline) {
    ncclCommAbort(e.comm);  // frees the GPU's kernels that wait for the missing peer
    abort_job(fmt::format("{} did not complete within {:.1f} s (TESSERA_COMM_TIMEOUT_S); another rank of the group "
                          "has failed, is stuck, or called a different collective",
                          e.what, std::chrono::duration<double>(e.timeout).count()));
  }
  return false;
}

void Watchdog::loop() {
  // The CUDA device is per thread: events are queried on the communicator's GPU.
  cudaSetDevice(cuda_device_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    if (entries_.empty()) {
      wake_.wait(lock, [this] { return stop_ || !entries_.empty(); });
      continue;
    }
    const Clock::time_point now = Clock::now();
    std::erase_if(entries_, [&](const Entry& e) { return check(e, now); });
    // Transfers take micro- to milliseconds; a deadline is seconds away: polling every 10 ms costs
    // nothing measurable and reports a stuck group within its deadline plus 10 ms.
    wake_.wait_for(lock, std::chrono::milliseconds(10), [this] { return stop_; });
  }
}

}  // namespace tessera::nccl
