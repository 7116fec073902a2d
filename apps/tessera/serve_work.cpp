#include "serve_work.hpp"

#include <bit>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace tessera::app {

void broadcast_serve_work(Communicator& group, ServeWork& work, int root) {
  const bool sender = group.rank() == root;
  Tensor header = Tensor::from<std::int64_t>(
      {3}, {sender && work.stop ? 1 : 0, sender ? static_cast<std::int64_t>(work.request.size()) : 0,
            sender ? std::bit_cast<std::int64_t>(work.entropy) : 0});
  group.broadcast(header, root);
  const std::int64_t* h = header.data<std::int64_t>();
  if ((h[0] != 0 && h[0] != 1) || h[1] < 0)
    throw CommError(fmt::format("tessera serve: a malformed message from rank {} of {}", root, group.describe()));
  work.stop = h[0] == 1;
  work.entropy = std::bit_cast<std::uint64_t>(h[2]);
  if (h[1] == 0) {
    if (!sender) work.request.clear();
    return;
  }
  Tensor bytes = Tensor::empty({h[1]}, DType::u8);
  if (sender) std::memcpy(bytes.raw(), work.request.data(), work.request.size());
  group.broadcast(bytes, root);
  if (!sender) work.request.assign(static_cast<const char*>(bytes.raw()), static_cast<std::size_t>(h[1]));
}

}  // namespace tessera::app
