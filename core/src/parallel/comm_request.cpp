#include "tessera/parallel/comm_request.hpp"

#include <exception>

#include "tessera/parallel/abort.hpp"

namespace tessera {

CommRequest::Impl::~Impl() = default;

CommRequest& CommRequest::operator=(CommRequest&& other) noexcept {
  if (this != &other) {
    finish_noexcept();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

CommRequest::~CommRequest() { finish_noexcept(); }

// A request whose test or wait threw is finished (MPI releases a request that completed in error),
// so it is dropped before the exception leaves; the destructor must not wait on it again.
bool CommRequest::test() {
  if (!impl_) return true;
  std::unique_ptr<Impl> impl = std::move(impl_);
  if (!impl->test()) impl_ = std::move(impl);
  return impl_ == nullptr;
}

void CommRequest::wait() {
  if (!impl_) return;
  std::unique_ptr<Impl> impl = std::move(impl_);
  impl->wait();
}

void CommRequest::finish_noexcept() noexcept {
  if (!impl_) return;
  try {
    wait();
  } catch (const std::exception& e) {
    // The buffers may still be in use by the library: continuing would corrupt memory.
    abort_job(std::string("a communication failed while its request was being destroyed: ") + e.what());
  }
}

}  // namespace tessera
