// Sub-communicators built from every layout the world size allows: each group reduces exactly over
// the members the layout lists, in the layout's order; pipeline neighbours exchange over pp.
#include <catch2/catch.hpp>

#include "mpi_test_world.hpp"
#include "tessera/parallel/mpi_runtime.hpp"
#include "tessera/parallel/process_groups.hpp"

using namespace tessera;

TEST_CASE("mpi: runtime reports the launcher's world", "[mpi]") {
  MpiRuntime& rt = MpiRuntime::init();
  LaunchInfo launch = detect_launch();
  REQUIRE(launch.under_launcher);
  REQUIRE(rt.world_size() == launch.world_size);
  REQUIRE(rt.world_size() == test_world()->size());
  REQUIRE(rt.world_rank() == test_world()->rank());
  REQUIRE(MpiRuntime::active());
  auto world = make_world_communicator();
  REQUIRE(world->size() == rt.world_size());
  if (rt.world_rank() == 0)
    std::printf("MPI world of %d ranks, thread level %s (%s)\n", rt.world_size(),
                thread_level_name(rt.thread_level()), launch.evidence.c_str());
}

TEST_CASE("mpi: process groups reduce exactly over their members", "[mpi]") {
  auto world = test_world();
  const int n = world->size();
  for (int tp = 1; tp <= n; ++tp)
    for (int pp = 1; tp * pp <= n; ++pp) {
      if (n % (tp * pp) != 0) continue;
      CAPTURE(n, tp, pp, world->rank());
      auto layout = ParallelLayout::make(world->rank(), n, {.tp = tp, .pp = pp});
      ProcessGroups groups = build_process_groups(layout, world);
      for (GroupKind kind : {GroupKind::tp, GroupKind::dp, GroupKind::pp, GroupKind::embedding}) {
        CAPTURE(group_kind_name(kind));
        std::vector<int> members = layout.group_ranks(kind);
        if (members.empty()) {
          REQUIRE(kind == GroupKind::embedding);
          REQUIRE(groups.embedding == nullptr);
          REQUIRE_THROWS_AS(groups.group(kind), CommError);
          continue;
        }
        Communicator& c = groups.group(kind);
        REQUIRE(c.name() == group_kind_name(kind));
        REQUIRE(c.size() == static_cast<int>(members.size()));
        REQUIRE(members[static_cast<std::size_t>(c.rank())] == world->rank());
        // A bit per world rank: the sum is exactly the set of members.
        Tensor mask = Tensor::from<std::int64_t>({1}, {std::int64_t{1} << world->rank()});
        c.all_reduce(mask);
        std::int64_t expected = 0;
        for (int m : members) expected |= std::int64_t{1} << m;
        REQUIRE(mask.data<std::int64_t>()[0] == expected);
        // Gathered world ranks come back in the layout's order.
        Tensor me = Tensor::from<std::int32_t>({1}, {world->rank()});
        Tensor all = Tensor::zeros({c.size()}, DType::i32);
        c.all_gather(me, all);
        REQUIRE(all.to_vector<std::int32_t>() == members);
      }
      if (pp > 1) {
        // Activations flow to the next stage: send my world rank forward, receive the previous one.
        Communicator& c = *groups.pp;
        Tensor out = Tensor::from<std::int32_t>({1}, {world->rank()});
        Tensor in = Tensor::zeros({1}, DType::i32);
        CommRequest r = c.start_recv(in, (c.rank() + pp - 1) % pp, 3);
        c.send(out, (c.rank() + 1) % pp, 3);
        r.wait();
        REQUIRE(in.data<std::int32_t>()[0] == layout.prev_pipeline_rank());
      }
    }
}
