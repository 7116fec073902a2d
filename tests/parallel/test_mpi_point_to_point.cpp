// send/recv around a ring (blocking and non-blocking, eager and rendezvous sizes), receive-size
// checks, and non-blocking all_reduce overlapped with local work as bucketed gradient reduction will.
#include <chrono>
#include <cmath>
#include <thread>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "mpi_test_world.hpp"
#include "tessera/parallel/mpi_communicator.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

using namespace tessera;

namespace {
const std::int64_t kSizes[] = {0, 1, 7, 1001, 1 << 20};  // the last is past the eager limit

Tensor inputs(int rank, std::int64_t n) {
  Tensor t = Tensor::empty({n});
  for (std::int64_t i = 0; i < n; ++i) t.data<float>()[i] = test_value(rank, i);
  return t;
}

bool matches(const Tensor& t, int rank) {
  for (std::int64_t i = 0; i < t.numel(); ++i)
    if (t.data<float>()[i] != test_value(rank, i)) return false;
  return true;
}
}  // namespace

TEST_CASE("mpi: blocking send/recv ring", "[mpi]") {
  Communicator& w = *test_world();
  const int next = (w.rank() + 1) % w.size(), prev = (w.rank() + w.size() - 1) % w.size();
  for (std::int64_t n : kSizes) {
    CAPTURE(n, w.rank());
    Tensor mine = inputs(w.rank(), n);
    Tensor got = Tensor::full({n}, -1.0f);
    // Blocking sends of large messages wait for the matching receive: alternate the order by parity
    // (with an odd ring size, the last even rank sends to rank 0, which has already sent).
    const int tag = static_cast<int>(n % 1000);
    if (w.rank() % 2 == 0) {
      w.send(mine, next, tag);
      w.recv(got, prev, tag);
    } else {
      w.recv(got, prev, tag);
      w.send(mine, next, tag);
    }
    REQUIRE(matches(got, prev));
  }
}

TEST_CASE("mpi: non-blocking send/recv ring, both directions at once", "[mpi]") {
  Communicator& w = *test_world();
  const int next = (w.rank() + 1) % w.size(), prev = (w.rank() + w.size() - 1) % w.size();
  for (std::int64_t n : kSizes) {
    CAPTURE(n, w.rank());
    Tensor mine = inputs(w.rank(), n);
    Tensor from_prev = Tensor::full({n}, -1.0f), from_next = Tensor::full({n}, -1.0f);
    // Tags keep the two directions apart when the ring has only two ranks (next == prev).
    CommRequest r1 = w.start_recv(from_prev, prev, 1);
    CommRequest r2 = w.start_recv(from_next, next, 2);
    CommRequest s1 = w.start_send(mine, next, 1);
    CommRequest s2 = w.start_send(mine, prev, 2);
    s2.wait();
    s1.wait();
    r2.wait();
    r1.wait();
    REQUIRE(matches(from_prev, prev));
    REQUIRE(matches(from_next, next));
  }
}

TEST_CASE("mpi: a message of the wrong size is a ShapeError on the receiver", "[mpi]") {
  Communicator& w = *test_world();
  if (w.rank() == 0) {
    w.send(inputs(0, 5), 1, 7);
    w.send(inputs(0, 9), 1, 8);
  } else if (w.rank() == 1) {
    Tensor t = Tensor::zeros({7});
    auto msg = message_of<ShapeError>([&] { w.recv(t, 0, 7); });
    REQUIRE(msg == "recv on group 'world' (rank 1 of " + std::to_string(w.size()) +
                       "): the message from rank 0 (tag 7) has 5 elements, the receiving tensor has 7");
    msg = message_of<ShapeError>([&] { w.recv(t, 0, 8); });
    REQUIRE_THAT(msg, Catch::Contains("has more than the 7 elements of the receiving tensor"));
  }
  auto msg = message_of<CommError>([&] { w.send(inputs(0, 1), w.rank()); });
  REQUIRE_THAT(msg, Catch::Contains("a rank cannot send to itself"));
  w.barrier();
}

TEST_CASE("mpi: non-blocking all_reduce overlaps local work", "[mpi]") {
  Communicator& w = *test_world();
  const int p = w.size();
  const std::int64_t n = 1 << 22;  // 16 MB, a gradient bucket's size
  Tensor grads = Tensor::full({n}, static_cast<float>(w.rank() + 1));

  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  CommRequest request = w.start_all_reduce(grads, ReduceOp::sum);
  // Local work standing in for the backward pass of earlier layers; test() between chunks gives MPI
  // the calls it needs to progress the collective.
  double acc = 0;
  int polls = 0;
  bool finished_during_work = false;
  for (int chunk = 0; chunk < 200; ++chunk) {
    for (int i = 0; i < 20000; ++i) acc += std::sin(i * 1e-3 + chunk);
    ++polls;
    if (!finished_during_work && request.test()) finished_during_work = true;
  }
  auto t1 = Clock::now();
  request.wait();
  auto t2 = Clock::now();
  REQUIRE(request.done());
  REQUIRE(std::isfinite(acc));
  const float expected = static_cast<float>(p * (p + 1) / 2);
  for (std::int64_t i = 0; i < n; i += 4099) REQUIRE(grads.data<float>()[i] == expected);
  REQUIRE(grads.data<float>()[n - 1] == expected);
  if (w.rank() == 0)
    std::printf("overlap: %d polls, collective %s during %.1f ms of local work, %.1f ms left to wait\n", polls,
                finished_during_work ? "finished" : "still running",
                std::chrono::duration<double, std::milli>(t1 - t0).count(),
                std::chrono::duration<double, std::milli>(t2 - t1).count());
}

TEST_CASE("mpi: several buckets in flight, waited in any order; dropping a request waits", "[mpi]") {
  Communicator& w = *test_world();
  const int p = w.size();
  std::vector<Tensor> buckets;
  std::vector<CommRequest> requests;
  for (int b = 0; b < 4; ++b) {
    buckets.push_back(Tensor::full({1001 + 1000 * b}, static_cast<float>(b * 10 + w.rank())));
    requests.push_back(w.start_all_reduce(buckets.back(), ReduceOp::sum));
  }
  for (int b = 3; b >= 0; --b) requests[static_cast<std::size_t>(b)].wait();
  for (int b = 0; b < 4; ++b)
    REQUIRE(buckets[static_cast<std::size_t>(b)].item(1000) == b * 10 * p + p * (p - 1) / 2);

  Tensor t = Tensor::full({4096}, 1.0f);
  { CommRequest dropped = w.start_all_reduce(t, ReduceOp::sum); }
  REQUIRE(t.item(4095) == p);
  // The request keeps its tensor's storage alive even if the caller lets go of it.
  CommRequest r;
  {
    Tensor temp = Tensor::full({1 << 16}, 2.0f);
    r = w.start_all_reduce(temp, ReduceOp::max);
  }
  r.wait();
}

// tessera serve's followers wait on such a communicator for hours: past the first second their
// polls back off (to every 10 ms), and a message still arrives promptly and intact.
TEST_CASE("mpi: an idle communicator's long wait backs off and still delivers", "[mpi]") {
  Communicator& w = *test_world();
  std::unique_ptr<Communicator> control = w.split(0, w.rank(), "control");
  auto& mpi = dynamic_cast<MpiCommunicator&>(*control);
  CHECK(!mpi.idle_waits());
  set_idle_waits(*control);
  CHECK(mpi.idle_waits());
  CHECK(!dynamic_cast<MpiCommunicator&>(*control->split(0, w.rank(), "again")).idle_waits());  // not inherited
  using Clock = std::chrono::steady_clock;
  Tensor t = inputs(w.rank(), 1001);
  w.barrier();
  const Clock::time_point start = Clock::now();
  if (w.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1300));  // the others back off
  control->broadcast(t, 0);
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  CHECK(matches(t, 0));
  // Every rank's wait ends soon after rank 0 sends: within 0.5 s (a backoff without its cap would be
  // past that).
  Tensor longest = Tensor::from<float>({1}, {static_cast<float>(waited)});
  control->all_reduce(longest, ReduceOp::max);
  CHECK(waited >= 1.2);
  CHECK(longest.data<float>()[0] < 1.3 + 0.5);
}
