#include "tessera/parallel/comm_checks.hpp"

#include <fmt/format.h>

#include "tessera/backend.hpp"

namespace tessera::comm_checks {

void tensor(const Communicator& c, const char* op, const Tensor& t, bool host_addressed) {
  if (!t.defined()) throw ShapeError(fmt::format("{} on {}: the tensor is undefined", op, c.describe()));
  if (host_addressed && !backend_of(t.device()).mpi_addressable())
    throw ShapeError(fmt::format("{} on {}: {} is on {}, whose memory this communicator cannot reach (it needs "
                                 "the device's own communicator)", op, c.describe(), t.str(), t.device().str()));
}

static void same_dtype(const Communicator& c, const char* op, const Tensor& in, const Tensor& out) {
  if (in.dtype() != out.dtype())
    throw ShapeError(fmt::format("{} on {}: input {} and output {} differ in dtype", op, c.describe(),
                                 in.str(), out.str()));
}

void reduce_scatter(const Communicator& c, const Tensor& in, const Tensor& out, bool host_addressed) {
  tensor(c, "reduce_scatter", in, host_addressed);
  tensor(c, "reduce_scatter", out, host_addressed);
  same_dtype(c, "reduce_scatter", in, out);
  if (in.numel() != out.numel() * c.size())
    throw ShapeError(fmt::format(
        "reduce_scatter on {}: input {} must hold group size {} × output {} = {} elements, has {}",
        c.describe(), in.str(), c.size(), out.str(), out.numel() * c.size(), in.numel()));
}

void all_gather(const Communicator& c, const Tensor& in, const Tensor& out, bool host_addressed) {
  tensor(c, "all_gather", in, host_addressed);
  tensor(c, "all_gather", out, host_addressed);
  same_dtype(c, "all_gather", in, out);
  if (out.numel() != in.numel() * c.size())
    throw ShapeError(fmt::format(
        "all_gather on {}: output {} must hold group size {} × input {} = {} elements, has {}",
        c.describe(), out.str(), c.size(), in.str(), in.numel() * c.size(), out.numel()));
}

void root(const Communicator& c, const char* op, int root) {
  if (root < 0 || root >= c.size())
    throw CommError(fmt::format("{} on {}: root {} is not a rank of the group (0..{})", op, c.describe(),
                                root, c.size() - 1));
}

void peer(const Communicator& c, const char* op, int peer, int tag) {
  if (peer < 0 || peer >= c.size())
    throw CommError(fmt::format("{} on {}: peer {} is not a rank of the group (0..{})", op, c.describe(),
                                peer, c.size() - 1));
  if (peer == c.rank())
    throw CommError(fmt::format("{} on {}: peer {} is this rank; a rank cannot {} to itself", op,
                                c.describe(), peer, op));
  if (tag < 0) throw CommError(fmt::format("{} on {}: tag {} is negative", op, c.describe(), tag));
}

}  // namespace tessera::comm_checks
