#include "tessera/parallel/communicator.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace tessera {

Communicator::~Communicator() = default;

std::vector<CommRequest> Communicator::start_batch(std::vector<P2POp> ops) {
  std::vector<CommRequest> requests;
  requests.reserve(ops.size());
  for (P2POp& op : ops)
    requests.push_back(op.kind == P2POp::Kind::send ? start_send(op.tensor, op.peer, op.tag)
                                                    : start_recv(op.tensor, op.peer, op.tag));
  return requests;
}

const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::sum ? "sum" : "max"; }

std::string Communicator::describe() const {
  return fmt::format("group '{}' (rank {} of {})", name_, rank(), size());
}

std::chrono::milliseconds default_comm_timeout() {
  const char* text = std::getenv("TESSERA_COMM_TIMEOUT_S");
  if (text == nullptr || *text == '\0') return std::chrono::milliseconds(300'000);
  char* end = nullptr;
  errno = 0;
  double seconds = std::strtod(text, &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(seconds) || seconds <= 0 || seconds > 1e9)
    throw ConfigError(fmt::format(
        "TESSERA_COMM_TIMEOUT_S='{}': expected a number of seconds > 0 (the collective deadline)", text));
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000)));
}

void run_on_all_or_throw(Communicator& group, const std::string& what, const std::function<void()>& body) {
  std::exception_ptr error;
  try {
    body();
  } catch (...) {
    error = std::current_exception();
  }
  Tensor failed = Tensor::full({1}, error ? 1.0f : 0.0f);
  group.all_reduce(failed);
  if (error) std::rethrow_exception(error);
  const int others = static_cast<int>(failed.data<float>()[0]);
  if (others > 0)
    throw Error(fmt::format("{} failed on {} other rank(s) of {} (their log says why)", what, others, group.describe()));
}

}  // namespace tessera
