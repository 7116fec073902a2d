// The one-rank group: identities and copies, and the same argument errors as the MPI communicator.
#include <cstdint>
#include <cstdlib>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/parallel/local_communicator.hpp"
#include "tessera/parallel/process_groups.hpp"

using namespace tessera;

namespace {
Tensor iota(const Shape& shape, float start = 1.0f) {
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + static_cast<float>(i);
  return t;
}
}  // namespace

TEST_CASE("local communicator: one rank, reductions are identities, gathers copy", "[unit]") {
  LocalCommunicator c("tp");
  REQUIRE(c.rank() == 0);
  REQUIRE(c.size() == 1);
  REQUIRE(c.describe() == "group 'tp' (rank 0 of 1)");

  for (std::int64_t n : {0, 1, 7, 1001}) {
    CAPTURE(n);
    Tensor t = iota({n});
    c.all_reduce(t);
    c.all_reduce(t, ReduceOp::max);
    REQUIRE(t.to_vector<float>() == iota({n}).to_vector<float>());
    c.broadcast(t, 0);
    REQUIRE(t.to_vector<float>() == iota({n}).to_vector<float>());

    Tensor out = Tensor::zeros({n});
    c.reduce_scatter(t, out);
    REQUIRE(out.to_vector<float>() == t.to_vector<float>());
    Tensor gathered = Tensor::zeros({n});
    c.all_gather(t, gathered);
    REQUIRE(gathered.to_vector<float>() == t.to_vector<float>());
  }
  Tensor ints = Tensor::from<std::int64_t>({3}, {1, -2, 1LL << 40});
  c.all_reduce(ints);
  REQUIRE(ints.to_vector<std::int64_t>() == std::vector<std::int64_t>{1, -2, 1LL << 40});
  c.barrier();

  // In place (same buffer in and out) is fine with one rank.
  Tensor same = iota({5});
  c.reduce_scatter(same, same);
  REQUIRE(same.to_vector<float>() == iota({5}).to_vector<float>());
}

TEST_CASE("local communicator: requests complete immediately", "[unit]") {
  LocalCommunicator c;
  Tensor t = iota({4});
  CommRequest r = c.start_all_reduce(t, ReduceOp::sum);
  REQUIRE(r.done());
  REQUIRE(r.test());
  r.wait();
  CommRequest none;
  REQUIRE(none.done());
  none = c.start_barrier();
  REQUIRE(none.test());
}

TEST_CASE("local communicator: argument errors name the op and the group", "[unit]") {
  LocalCommunicator c("dp");
  Tensor a = iota({6});
  Tensor b = Tensor::zeros({5});
  auto msg = message_of<ShapeError>([&] { c.reduce_scatter(a, b); });
  REQUIRE_THAT(msg, Catch::StartsWith("reduce_scatter on group 'dp' (rank 0 of 1): input f32[6] must hold group "
                                      "size 1 × output f32[5] = 5 elements, has 6"));
  msg = message_of<ShapeError>([&] { c.all_gather(a, b); });
  REQUIRE_THAT(msg, Catch::StartsWith("all_gather on group 'dp' (rank 0 of 1): output f32[5] must hold"));
  Tensor ints = Tensor::zeros({6}, DType::i32);
  msg = message_of<ShapeError>([&] { c.all_gather(a, ints); });
  REQUIRE_THAT(msg, Catch::Contains("differ in dtype"));
  Tensor undefined;
  msg = message_of<ShapeError>([&] { c.all_reduce(undefined); });
  REQUIRE(msg == "all_reduce on group 'dp' (rank 0 of 1): the tensor is undefined");

  msg = message_of<CommError>([&] { c.broadcast(a, 1); });
  REQUIRE(msg == "broadcast on group 'dp' (rank 0 of 1): root 1 is not a rank of the group (0..0)");
  msg = message_of<CommError>([&] { c.send(a, 0); });
  REQUIRE(msg == "send on group 'dp' (rank 0 of 1): peer 0 is this rank; a rank cannot send to itself");
  msg = message_of<CommError>([&] { c.recv(a, 0); });
  REQUIRE_THAT(msg, Catch::Contains("a rank cannot recv to itself"));
  msg = message_of<CommError>([&] { c.send(a, 1); });
  REQUIRE_THAT(msg, Catch::Contains("peer 1 is not a rank of the group (0..0)"));
}

TEST_CASE("local communicator: split and process groups of a one-rank world", "[unit]") {
  LocalCommunicator c;
  c.set_timeout(std::chrono::milliseconds(1234));
  auto sub = c.split(0, 0, "tp");
  REQUIRE(sub != nullptr);
  REQUIRE(sub->name() == "tp");
  REQUIRE(sub->timeout() == std::chrono::milliseconds(1234));
  REQUIRE(c.split(-1, 0, "embedding") == nullptr);

  auto layout = ParallelLayout::make(0, 1, {});
  ProcessGroups g = build_process_groups(layout, std::make_shared<LocalCommunicator>());
  for (GroupKind k : {GroupKind::tp, GroupKind::dp, GroupKind::pp, GroupKind::embedding}) {
    REQUIRE(g.group(k).size() == 1);
    REQUIRE(g.group(k).name() == group_kind_name(k));
  }
  REQUIRE(g.world->name() == "world");

  auto two = ParallelLayout::make(1, 2, {.tp = 2});
  auto msg = message_of<ConfigError>([&] { build_process_groups(two, std::make_shared<LocalCommunicator>()); });
  REQUIRE_THAT(msg, Catch::Contains("was computed for another world"));
}

TEST_CASE("communicator timeout comes from TESSERA_COMM_TIMEOUT_S", "[unit]") {
  const char* saved = std::getenv("TESSERA_COMM_TIMEOUT_S");
  std::string saved_value = saved ? saved : "";
  unsetenv("TESSERA_COMM_TIMEOUT_S");
  REQUIRE(default_comm_timeout() == std::chrono::milliseconds(300'000));
  setenv("TESSERA_COMM_TIMEOUT_S", "2.5", 1);
  REQUIRE(default_comm_timeout() == std::chrono::milliseconds(2500));
  REQUIRE(LocalCommunicator().timeout() == std::chrono::milliseconds(2500));
  for (const char* bad : {"abc", "0", "-1", "5s", "inf"}) {
    setenv("TESSERA_COMM_TIMEOUT_S", bad, 1);
    auto msg = message_of<ConfigError>([] { default_comm_timeout(); });
    REQUIRE_THAT(msg, Catch::StartsWith(std::string("TESSERA_COMM_TIMEOUT_S='") + bad + "'"));
  }
  if (saved) setenv("TESSERA_COMM_TIMEOUT_S", saved_value.c_str(), 1);
  else unsetenv("TESSERA_COMM_TIMEOUT_S");
}
