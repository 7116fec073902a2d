// The deadline of every NCCL transfer in flight.
//
// NCCL's calls return at once and the GPU waits for the peers, so a rank that never arrives would
// hang the next host synchronisation with no message. A thread polls each transfer's completion
// event and its communicator's asynchronous error; past the transfer's deadline (the group's
// timeout(), TESSERA_COMM_TIMEOUT_S) or on an NCCL error it aborts the NCCL communicator and ends the
// job naming the group, the op and the rank, as the MPI communicator's wait does. One watchdog
// serves every communicator of the process.
#pragma once
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nccl_support.hpp"

namespace tessera::nccl {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Watchdog(int cuda_device);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Watches `done` until it completes; `what` is how the abort message names the transfer
  // ("all_reduce on group 'dp' (rank 1 of 4)").
  void watch(std::shared_ptr<Event> done, ncclComm_t comm, std::string what, std::chrono::milliseconds timeout);
  // Stops watching comm's transfers (its communicator is being destroyed, after they completed).
  void forget(ncclComm_t comm);

 private:
  struct Entry {
    std::shared_ptr<Event> done;
    ncclComm_t comm;
    std::string what;
    std::chrono::milliseconds timeout;
    Clock::time_point deadline;
  };
  void loop();
  // Ends the job if e's communicator failed or e is past its deadline; true once e completed.
  bool check(const Entry& e, Clock::time_point now);

  int cuda_device_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Entry> entries_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tessera::nccl
