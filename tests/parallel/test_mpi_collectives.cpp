// Every collective on odd sizes and empty tensors, against reference results computed locally from
// every rank's (deterministic) input.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <catch2/catch.hpp>

#include "tessera/ops.hpp"

#include "expect_error.hpp"
#include "mpi_test_world.hpp"

using namespace tessera;

namespace {
const std::int64_t kSizes[] = {0, 1, 7, 1001};

Tensor inputs(int rank, std::int64_t n) {
  Tensor t = Tensor::empty({n});
  for (std::int64_t i = 0; i < n; ++i) t.data<float>()[i] = test_value(rank, i);
  return t;
}
}  // namespace

TEST_CASE("mpi: all_reduce sum and max, f32, i32, i64", "[mpi]") {
  Communicator& w = *test_world();
  const int p = w.size();
  for (std::int64_t n : kSizes) {
    CAPTURE(n, w.rank());
    Tensor sum = inputs(w.rank(), n);
    Tensor max = inputs(w.rank(), n);
    w.all_reduce(sum, ReduceOp::sum);
    w.all_reduce(max, ReduceOp::max);
    for (std::int64_t i = 0; i < n; ++i) {
      float s = 0, m = test_value(0, i);
      for (int r = 0; r < p; ++r) s += test_value(r, i), m = std::max(m, test_value(r, i));
      REQUIRE(sum.data<float>()[i] == s);
      REQUIRE(max.data<float>()[i] == m);
    }

    Tensor i32 = Tensor::empty({n}, DType::i32);
    Tensor i64 = Tensor::empty({n}, DType::i64);
    for (std::int64_t i = 0; i < n; ++i) {
      i32.data<std::int32_t>()[i] = static_cast<std::int32_t>(w.rank() * 1000 - i);
      i64.data<std::int64_t>()[i] = (std::int64_t{w.rank()} + 1) << 40 | i;  // needs all 64 bits
    }
    w.all_reduce(i32);
    w.all_reduce(i64, ReduceOp::max);
    for (std::int64_t i = 0; i < n; ++i) {
      REQUIRE(i32.data<std::int32_t>()[i] == static_cast<std::int32_t>(1000 * p * (p - 1) / 2 - p * i));
      REQUIRE(i64.data<std::int64_t>()[i] == (std::int64_t{p} << 40 | i));
    }
  }
}

TEST_CASE("mpi: all_reduce of f64 keeps double precision (scalar sums: loss, squared grad norm)", "[mpi]") {
  Communicator& w = *test_world();
  const int p = w.size();
  // 1 + r·2^-40 is exact in double and rounds to 1 in float: a float sum would lose the small parts.
  Tensor v = Tensor::from<double>({2}, {1.0 + std::ldexp(1.0, -40) * (w.rank() + 1), 1e300 / p});
  w.all_reduce(v);
  double want = 0;
  for (int r = 0; r < p; ++r) want += 1.0 + std::ldexp(1.0, -40) * (r + 1);
  REQUIRE(v.data<double>()[0] == want);
  REQUIRE(v.data<double>()[0] != static_cast<double>(p));
  REQUIRE(v.data<double>()[1] == Approx(1e300));  // beyond float's range
}

TEST_CASE("mpi: reduce_scatter splits the flat input (dim 0) into one block per rank", "[mpi]") {
  Communicator& w = *test_world();
  const int p = w.size();
  for (std::int64_t n : kSizes) {
    CAPTURE(n, w.rank());
    Tensor in = inputs(w.rank(), p * n);
    Tensor sum = Tensor::full({n}, -1.0f);
    Tensor max = Tensor::full({n}, -1.0f);
    w.reduce_scatter(in, sum);
    w.reduce_scatter(in, max, ReduceOp::max);
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t j = w.rank() * n + i;
      float s = 0, m = test_value(0, j);
      for (int r = 0; r < p; ++r) s += test_value(r, j), m = std::max(m, test_value(r, j));
      REQUIRE(sum.data<float>()[i] == s);
      REQUIRE(max.data<float>()[i] == m);
    }
  }
  // A 2-D tensor is split along dim 0: rank r gets rows [3r, 3r+3).
  Tensor in = inputs(w.rank(), p * 3 * 5).reshape({p * 3, 5});
  Tensor out = Tensor::zeros({3, 5});
  w.reduce_scatter(in, out);
  for (std::int64_t i = 0; i < 15; ++i) {
    float s = 0;
    for (int r = 0; r < p; ++r) s += test_value(r, w.rank() * 15 + i);
    REQUIRE(out.data<float>()[i] == s);
  }
}

TEST_CASE("mpi: all_gather concatenates in rank order", "[mpi]") {
  Communicator& w = *test_world();
  const int p = w.size();
  for (std::int64_t n : kSizes) {
    CAPTURE(n, w.rank());
    Tensor out = Tensor::full({p * n}, -1.0f);
    w.all_gather(inputs(w.rank(), n), out);
    for (int r = 0; r < p; ++r)
      for (std::int64_t i = 0; i < n; ++i) REQUIRE(out.data<float>()[r * n + i] == test_value(r, i));
  }
  // 16-bit floats move as raw bits.
  Tensor half = Tensor::empty({3}, DType::bf16);
  const std::uint16_t bits[3] = {0x3f80, static_cast<std::uint16_t>(0x4000 + w.rank()), 0xbf80};
  std::memcpy(half.raw(), bits, sizeof bits);
  Tensor gathered = Tensor::empty({3 * p}, DType::bf16);
  w.all_gather(half, gathered);
  for (int r = 0; r < p; ++r) REQUIRE(static_cast<const std::uint16_t*>(gathered.raw())[3 * r + 1] == 0x4000 + r);
}

// bf16 and f16 reduce through our own MPI ops (add or compare in f32, round back). Small integers
// keep every partial sum exact in either format, whatever order MPI combines the ranks in.
TEST_CASE("mpi: bf16 and f16 all_reduce and reduce_scatter", "[mpi]") {
  Communicator& w = *test_world();
  const int p = w.size(), r = w.rank();
  for (DType t : {DType::bf16, DType::f16}) {
    CAPTURE(dtype_name(t), r);
    const auto make = [&](std::vector<float> values) {
      Tensor f = Tensor::from<float>({static_cast<std::int64_t>(values.size())}, values);
      Tensor h = Tensor::empty(f.shape(), t);
      ops::cast(f, h);
      return h;
    };
    const auto values = [](const Tensor& h) {
      Tensor f = Tensor::empty(h.shape());
      ops::cast(h, f);
      return f.to_vector<float>();
    };
    Tensor sum = make({1.0f, static_cast<float>(r), -2.0f, 0.5f});
    w.all_reduce(sum);
    CHECK(values(sum) == std::vector<float>{float(p), float(p * (p - 1) / 2), -2.0f * p, 0.5f * p});
    Tensor max = make({static_cast<float>(r), -static_cast<float>(r)});
    w.all_reduce(max, ReduceOp::max);
    CHECK(values(max) == std::vector<float>{float(p - 1), 0.0f});
    std::vector<float> mine(static_cast<std::size_t>(2 * p));
    for (int i = 0; i < 2 * p; ++i) mine[static_cast<std::size_t>(i)] = static_cast<float>(i + r);
    Tensor scattered = Tensor::empty({2}, t);
    w.reduce_scatter(make(mine), scattered);
    // element i: Σ_q (i + q) = p·i + p(p−1)/2, for i in this rank's [2r, 2r + 2)
    CHECK(values(scattered) == std::vector<float>{float(p * 2 * r + p * (p - 1) / 2), float(p * (2 * r + 1) + p * (p - 1) / 2)});
  }
}

TEST_CASE("mpi: broadcast from the last rank and from rank 0", "[mpi]") {
  Communicator& w = *test_world();
  for (int root : {w.size() - 1, 0})
    for (std::int64_t n : kSizes) {
      CAPTURE(root, n, w.rank());
      Tensor t = inputs(w.rank(), n);
      w.broadcast(t, root);
      for (std::int64_t i = 0; i < n; ++i) REQUIRE(t.data<float>()[i] == test_value(root, i));
    }
  Tensor ids = Tensor::from<std::int64_t>({2}, {w.rank(), -w.rank()});
  w.broadcast(ids, 1);
  REQUIRE(ids.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, -1});
}

TEST_CASE("mpi: size mismatches are ShapeErrors on every rank, before anything is sent", "[mpi]") {
  Communicator& w = *test_world();
  Tensor in = Tensor::zeros({7});
  Tensor out = Tensor::zeros({7});
  auto msg = message_of<ShapeError>([&] { w.reduce_scatter(in, out); });
  REQUIRE_THAT(msg, Catch::StartsWith("reduce_scatter on group 'world' (rank " + std::to_string(w.rank()) + " of " +
                                      std::to_string(w.size()) + "): input f32[7] must hold group size"));
  msg = message_of<ShapeError>([&] { w.all_gather(in, out); });
  REQUIRE_THAT(msg, Catch::StartsWith("all_gather on group 'world'"));
  REQUIRE_THROWS_AS(w.broadcast(in, w.size()), CommError);
  // The group is still usable afterwards.
  w.barrier();
}
