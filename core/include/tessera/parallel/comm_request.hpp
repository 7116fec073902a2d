// CommRequest: the handle of a communication that may still be in flight.
//
// A backend (MPI today, NCCL later) supplies the Impl; callers only see test() and wait(). A request
// keeps the tensors it reads or writes alive, and destroying an unfinished request waits for it, so
// a buffer is never freed or reused while the library still touches it.
#pragma once
#include <memory>

namespace tessera {

class CommRequest {
 public:
  class Impl {
   public:
    virtual ~Impl();
    // True once the operation has completed; drives progress (MPI progresses only inside calls).
    virtual bool test() = 0;
    // Blocks until completion. A backend with a deadline aborts the job on expiry instead of hanging.
    virtual void wait() = 0;
  };

  CommRequest() = default;  // an operation that has already completed
  explicit CommRequest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
  CommRequest(CommRequest&& other) noexcept = default;
  CommRequest& operator=(CommRequest&& other) noexcept;
  CommRequest(const CommRequest&) = delete;
  CommRequest& operator=(const CommRequest&) = delete;
  ~CommRequest();

  bool test();
  void wait();
  bool done() const { return impl_ == nullptr; }

 private:
  // Waits without throwing; a failure here ends the job (see abort.hpp), as nothing can recover it.
  void finish_noexcept() noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
