// ParallelLayout rank math against hand-written tables (Megatron-LM's documented 16-rank example and
// an 8-rank tp2·pp2·dp2 grid), invariants over many layouts, and the errors for bad sizes.
#include <algorithm>
#include <set>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/error.hpp"
#include "tessera/parallel/parallel_layout.hpp"

using namespace tessera;
using Groups = std::vector<std::vector<int>>;

TEST_CASE("layout: 8 ranks as tp2 · pp2 · dp2", "[unit]") {
  // rank → (tp_rank, dp_rank, pp_rank), written out by hand from rank = tp + 2·(dp + 2·pp).
  const int expected[8][3] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {1, 1, 0},
                              {0, 0, 1}, {1, 0, 1}, {0, 1, 1}, {1, 1, 1}};
  for (int r = 0; r < 8; ++r) {
    CAPTURE(r);
    auto l = ParallelLayout::make(r, 8, {.tp = 2, .pp = 2});
    REQUIRE(l.dp() == 2);
    REQUIRE(l.tp_rank() == expected[r][0]);
    REQUIRE(l.dp_rank() == expected[r][1]);
    REQUIRE(l.pp_rank() == expected[r][2]);
    REQUIRE(l.is_first_stage() == (r < 4));
    REQUIRE(l.is_last_stage() == (r >= 4));
    REQUIRE(l.next_pipeline_rank() == (r + 4) % 8);
    REQUIRE(l.prev_pipeline_rank() == (r + 4) % 8);
    REQUIRE(l.world_rank_of(l.tp_rank(), l.dp_rank(), l.pp_rank()) == r);
  }
  auto l = ParallelLayout::make(5, 8, {.tp = 2, .pp = 2});
  REQUIRE(l.all_groups(GroupKind::tp) == Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  REQUIRE(l.all_groups(GroupKind::dp) == Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}});
  REQUIRE(l.all_groups(GroupKind::pp) == Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  REQUIRE(l.all_groups(GroupKind::embedding) == Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  REQUIRE(l.group_ranks(GroupKind::tp) == std::vector<int>{4, 5});
  REQUIRE(l.group_ranks(GroupKind::dp) == std::vector<int>{5, 7});
  REQUIRE(l.group_ranks(GroupKind::pp) == std::vector<int>{1, 5});
  REQUIRE(l.group_ranks(GroupKind::embedding) == std::vector<int>{1, 5});
  REQUIRE(l.str() == "world 8 = tp 2 × dp 2 × pp 2 (vpp 1, sequence parallel off); rank 5 = (tp 1, dp 0, pp 1)");
}

TEST_CASE("layout: Megatron-LM's example, 16 ranks as tp2 · pp4", "[unit]") {
  // From megatron/core/parallel_state.py, initialize_model_parallel's docstring.
  auto l = ParallelLayout::make(9, 16, {.tp = 2, .pp = 4});
  REQUIRE(l.dp() == 2);
  REQUIRE(l.all_groups(GroupKind::dp) ==
          Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}});
  REQUIRE(l.all_groups(GroupKind::tp) ==
          Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}});
  REQUIRE(l.all_groups(GroupKind::pp) == Groups{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}});
  REQUIRE(l.all_groups(GroupKind::embedding) == Groups{{0, 12}, {1, 13}, {2, 14}, {3, 15}});
  // Rank 9 is a middle stage: in no embedding group.
  REQUIRE(l.tp_rank() == 1);
  REQUIRE(l.dp_rank() == 0);
  REQUIRE(l.pp_rank() == 2);
  REQUIRE_FALSE(l.is_first_stage());
  REQUIRE_FALSE(l.is_last_stage());
  REQUIRE(l.next_pipeline_rank() == 13);
  REQUIRE(l.prev_pipeline_rank() == 5);
  REQUIRE(l.group_ranks(GroupKind::embedding).empty());
  auto last = ParallelLayout::make(15, 16, {.tp = 2, .pp = 4});
  REQUIRE(last.is_last_stage());
  REQUIRE(last.next_pipeline_rank() == 3);  // wraps around, as in Megatron-LM
  REQUIRE(last.group_ranks(GroupKind::embedding) == std::vector<int>{3, 15});
}

TEST_CASE("layout: tensor-only, pipeline-only and data-only worlds", "[unit]") {
  auto tp3 = ParallelLayout::make(4, 6, {.tp = 3});
  REQUIRE(tp3.dp() == 2);
  REQUIRE(tp3.all_groups(GroupKind::tp) == Groups{{0, 1, 2}, {3, 4, 5}});
  REQUIRE(tp3.all_groups(GroupKind::dp) == Groups{{0, 3}, {1, 4}, {2, 5}});
  REQUIRE(tp3.all_groups(GroupKind::pp) == Groups{{0}, {1}, {2}, {3}, {4}, {5}});
  REQUIRE(tp3.group_ranks(GroupKind::embedding) == std::vector<int>{4});  // pp 1: first = last stage
  REQUIRE(tp3.is_first_stage());
  REQUIRE(tp3.is_last_stage());
  REQUIRE(tp3.next_pipeline_rank() == 4);

  auto pp3 = ParallelLayout::make(7, 12, {.pp = 3});
  REQUIRE(pp3.dp() == 4);
  REQUIRE(pp3.all_groups(GroupKind::pp) == Groups{{0, 4, 8}, {1, 5, 9}, {2, 6, 10}, {3, 7, 11}});
  REQUIRE(pp3.all_groups(GroupKind::dp) == Groups{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}});
  REQUIRE(pp3.all_groups(GroupKind::embedding) == Groups{{0, 8}, {1, 9}, {2, 10}, {3, 11}});
  REQUIRE(pp3.pp_rank() == 1);
  REQUIRE(pp3.dp_rank() == 3);

  auto dp = ParallelLayout::make(2, 3, {});
  REQUIRE(dp.dp() == 3);
  REQUIRE(dp.group_ranks(GroupKind::dp) == std::vector<int>{0, 1, 2});
  REQUIRE(dp.group_ranks(GroupKind::tp) == std::vector<int>{2});

  auto single = ParallelLayout::make(0, 1, {});
  REQUIRE(single.dp() == 1);
  for (GroupKind k : {GroupKind::tp, GroupKind::dp, GroupKind::pp, GroupKind::embedding})
    REQUIRE(single.group_ranks(k) == std::vector<int>{0});
}

TEST_CASE("layout: invariants for every divisible (world, tp, pp) up to 24 ranks", "[unit]") {
  for (int world = 1; world <= 24; ++world)
    for (int tp = 1; tp <= world; ++tp)
      for (int pp = 1; tp * pp <= world; ++pp) {
        if (world % (tp * pp) != 0) continue;
        CAPTURE(world, tp, pp);
        for (GroupKind kind : {GroupKind::tp, GroupKind::dp, GroupKind::pp, GroupKind::embedding}) {
          CAPTURE(group_kind_name(kind));
          auto groups = ParallelLayout::make(0, world, {.tp = tp, .pp = pp}).all_groups(kind);
          // Groups of one kind are disjoint, and (but for embedding) cover the world.
          std::multiset<int> seen;
          for (const auto& g : groups) seen.insert(g.begin(), g.end());
          REQUIRE(std::set<int>(seen.begin(), seen.end()).size() == seen.size());
          if (kind != GroupKind::embedding) REQUIRE(static_cast<int>(seen.size()) == world);
        }
        for (int r = 0; r < world; ++r) {
          auto l = ParallelLayout::make(r, world, {.tp = tp, .pp = pp});
          REQUIRE(l.tp() * l.dp() * l.pp() == world);
          REQUIRE(l.world_rank_of(l.tp_rank(), l.dp_rank(), l.pp_rank()) == r);
          REQUIRE(ParallelLayout::make(l.next_pipeline_rank(), world, {.tp = tp, .pp = pp}).prev_pipeline_rank() == r);
          auto sizes = std::vector<std::size_t>{size_t(tp), size_t(l.dp()), size_t(pp)};
          const GroupKind kinds[] = {GroupKind::tp, GroupKind::dp, GroupKind::pp};
          for (int k = 0; k < 3; ++k) {
            auto g = l.group_ranks(kinds[k]);
            REQUIRE(g.size() == sizes[k]);
            REQUIRE(std::find(g.begin(), g.end(), r) != g.end());
            auto all = l.all_groups(kinds[k]);
            REQUIRE(std::find(all.begin(), all.end(), g) != all.end());
          }
          // This rank's index in each group is its coordinate along that dimension.
          REQUIRE(l.group_ranks(GroupKind::tp)[l.tp_rank()] == r);
          REQUIRE(l.group_ranks(GroupKind::dp)[l.dp_rank()] == r);
          REQUIRE(l.group_ranks(GroupKind::pp)[l.pp_rank()] == r);
          auto emb = l.group_ranks(GroupKind::embedding);
          REQUIRE(emb.empty() == (!l.is_first_stage() && !l.is_last_stage()));
        }
      }
}

TEST_CASE("layout: expert parallelism splits the data-parallel dimension", "[unit]") {
  // 16 ranks as tp 2 · dp 4 · pp 2 with ep 2, by hand from rank = tp + 2·(dp + 4·pp): ep groups pair
  // consecutive dp ranks, expert-dp groups the dp ranks of one parity.
  auto l = ParallelLayout::make(11, 16, {.tp = 2, .pp = 2, .ep = 2});  // (tp 1, dp 1, pp 1)
  REQUIRE(l.dp() == 4);
  CHECK(l.ep() == 2);
  CHECK(l.ep_rank() == 1);
  CHECK(l.expert_dp_rank() == 0);
  CHECK(l.group_ranks(GroupKind::ep) == std::vector<int>{9, 11});
  CHECK(l.group_ranks(GroupKind::expert_dp) == std::vector<int>{11, 15});
  CHECK(l.all_groups(GroupKind::ep) ==
        Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}});
  CHECK(l.all_groups(GroupKind::expert_dp) ==
        Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}});
  CHECK(l.str() == "world 16 = tp 2 × dp 4 × pp 2 (vpp 1, sequence parallel off, expert parallel 2 (rank 1 of it)); "
                   "rank 11 = (tp 1, dp 1, pp 1)");
  // ep = dp: one expert-dp rank each; ep = 1: the ep group is the rank alone, expert dp is dp.
  auto all = ParallelLayout::make(5, 8, {.ep = 8});
  CHECK(all.group_ranks(GroupKind::ep) == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(all.group_ranks(GroupKind::expert_dp) == std::vector<int>{5});
  auto none = ParallelLayout::make(5, 8, {});
  CHECK(none.group_ranks(GroupKind::ep) == std::vector<int>{5});
  CHECK(none.group_ranks(GroupKind::expert_dp) == none.group_ranks(GroupKind::dp));
  // Invariants: the groups partition the world; a rank's index in each is its ep / expert-dp rank.
  for (int world : {4, 8, 12, 16})
    for (int ep : {1, 2, 4})
      for (int tp : {1, 2}) {
        if (world % tp != 0 || (world / tp) % ep != 0) continue;
        CAPTURE(world, ep, tp);
        for (GroupKind kind : {GroupKind::ep, GroupKind::expert_dp}) {
          std::multiset<int> seen;
          for (const auto& g : ParallelLayout::make(0, world, {.tp = tp, .ep = ep}).all_groups(kind))
            seen.insert(g.begin(), g.end());
          REQUIRE(static_cast<int>(seen.size()) == world);
          REQUIRE(std::set<int>(seen.begin(), seen.end()).size() == seen.size());
        }
        for (int r = 0; r < world; ++r) {
          auto x = ParallelLayout::make(r, world, {.tp = tp, .ep = ep});
          REQUIRE(x.group_ranks(GroupKind::ep)[x.ep_rank()] == r);
          REQUIRE(x.group_ranks(GroupKind::expert_dp)[x.expert_dp_rank()] == r);
        }
      }
  auto msg = message_of<ConfigError>([] { ParallelLayout::make(0, 6, {.ep = 4}); });
  CHECK_THAT(msg, Catch::Contains("expert_model_parallel_size 4 must divide the data-parallel size 6"));
  CHECK_THAT(message_of<ConfigError>([] { ParallelLayout::make(0, 2, {.ep = 0}); }),
             Catch::Contains("expert_model_parallel_size must be at least 1"));
}

TEST_CASE("layout: expert tensor parallel size 1 spreads the experts over the tp ranks too", "[unit]") {
  // tp 2 · dp 2, ep 4, etp 1, by hand: rank = tp + 2·dp; Megatron-Core's ep rank = rank (every rank
  // a quarter of the experts); the token exchange runs between the dp ranks of one tp rank.
  auto l = ParallelLayout::make(3, 4, {.tp = 2, .ep = 4, .etp = 1});  // (tp 1, dp 1)
  CHECK(l.etp() == 1);
  CHECK(l.expert_tp_slices() == 2);
  CHECK(l.ep_dp() == 2);
  CHECK(l.ep_rank() == 3);
  CHECK(l.expert_dp_rank() == 0);
  CHECK(l.group_ranks(GroupKind::ep) == std::vector<int>{1, 3});
  CHECK(l.group_ranks(GroupKind::expert_dp) == std::vector<int>{3});
  CHECK(l.str() == "world 4 = tp 2 × dp 2 × pp 1 (vpp 1, sequence parallel off, expert parallel 4 (rank 3 of it), "
                   "expert tensor parallel 1); rank 3 = (tp 1, dp 1, pp 0)");
  // ep = tp: the tp group is the expert-parallel group; the same experts on every dp rank.
  auto tp_only = ParallelLayout::make(2, 4, {.tp = 2, .ep = 2, .etp = 1});  // (tp 0, dp 1)
  CHECK(tp_only.ep_rank() == 0);
  CHECK(tp_only.group_ranks(GroupKind::ep) == std::vector<int>{2});
  CHECK(tp_only.group_ranks(GroupKind::expert_dp) == std::vector<int>{0, 2});
  // ep 1: every tp rank holds every expert whole (replicated over tp, no expert grid).
  auto none = ParallelLayout::make(1, 4, {.tp = 2, .ep = 1, .etp = 1});
  CHECK(none.experts_whole_over_tp());
  CHECK(none.expert_tp_slices() == 1);
  CHECK(none.ep_rank() == 0);
  CHECK(none.group_ranks(GroupKind::ep) == std::vector<int>{1});
  CHECK(none.group_ranks(GroupKind::expert_dp) == none.group_ranks(GroupKind::dp));
  // Megatron-Core's expert grid ("tp-ep-dp-pp" with etp 1): within a stage, the rank's index i =
  // tp_rank + tp · dp_rank gives ep rank i mod ep and expert-dp rank i / ep; the ep group here is
  // its ranks of this tp rank, the expert-dp group its ranks of this ep rank, in that order.
  for (int world : {4, 8, 16})
    for (int tp : {2, 4})
      for (int ep : {2, 4, 8})
        for (int pp : {1, 2}) {
          if (world % (tp * pp) != 0 || ep % tp != 0 || (world / tp / pp) % (ep / tp) != 0) continue;
          CAPTURE(world, tp, ep, pp);
          for (GroupKind kind : {GroupKind::ep, GroupKind::expert_dp}) {  // each partitions the world
            std::multiset<int> seen;
            for (const auto& g : ParallelLayout::make(0, world, {.tp = tp, .pp = pp, .ep = ep, .etp = 1}).all_groups(kind))
              seen.insert(g.begin(), g.end());
            REQUIRE(static_cast<int>(seen.size()) == world);
            REQUIRE(std::set<int>(seen.begin(), seen.end()).size() == seen.size());
          }
          for (int r = 0; r < world; ++r) {
            auto x = ParallelLayout::make(r, world, {.tp = tp, .pp = pp, .ep = ep, .etp = 1});
            const int stage = tp * x.dp(), i = r % stage;
            REQUIRE(x.ep_rank() == i % ep);
            REQUIRE(x.expert_dp_rank() == i / ep);
            for (int other : x.group_ranks(GroupKind::ep)) {
              auto y = ParallelLayout::make(other, world, {.tp = tp, .pp = pp, .ep = ep, .etp = 1});
              REQUIRE((y.expert_dp_rank() == x.expert_dp_rank() && y.tp_rank() == x.tp_rank() && y.pp_rank() == x.pp_rank()));
            }
            REQUIRE(x.group_ranks(GroupKind::ep).size() == static_cast<std::size_t>(ep / tp));
            REQUIRE(x.group_ranks(GroupKind::ep)[x.dp_rank() % x.ep_dp()] == r);
            for (int other : x.group_ranks(GroupKind::expert_dp))
              REQUIRE(ParallelLayout::make(other, world, {.tp = tp, .pp = pp, .ep = ep, .etp = 1}).ep_rank() == x.ep_rank());
            REQUIRE(x.group_ranks(GroupKind::expert_dp).size() == static_cast<std::size_t>(stage / ep));
            REQUIRE(x.group_ranks(GroupKind::expert_dp)[x.expert_dp_rank()] == r);
          }
        }
  CHECK_THAT(message_of<ConfigError>([] { ParallelLayout::make(0, 8, {.tp = 4, .ep = 4, .etp = 2}); }),
             Catch::Contains("expert_tensor_parallel_size 2 must be 1"));
  CHECK_THAT(message_of<ConfigError>([] { ParallelLayout::make(0, 8, {.tp = 2, .ep = 3, .etp = 1}); }),
             Catch::Contains("expert_model_parallel_size 3 must be 1 (every tp rank holding every expert) or a multiple of 2"));
  CHECK_THAT(message_of<ConfigError>([] { ParallelLayout::make(0, 4, {.tp = 4, .ep = 2, .etp = 1}); }),
             Catch::Contains("an ep between 1 and tp is not built"));
  CHECK_THAT(message_of<ConfigError>([] { ParallelLayout::make(0, 2, {.tp = 2, .ep = 4, .etp = 1}); }),
             Catch::Contains("divides 2 × the data-parallel size 1"));
}

TEST_CASE("layout: bad sizes are ConfigErrors naming the sizes", "[unit]") {
  auto msg = message_of<ConfigError>([] { ParallelLayout::make(0, 6, {.tp = 2, .pp = 2}); });
  REQUIRE_THAT(msg, Catch::Contains("world size 6 is not divisible by tensor_model_parallel_size (2) × "
                                    "pipeline_model_parallel_size (2) = 4"));
  msg = message_of<ConfigError>([] { ParallelLayout::make(0, 4, {.tp = 0}); });
  REQUIRE(msg == "tensor_model_parallel_size must be at least 1, got 0");
  msg = message_of<ConfigError>([] { ParallelLayout::make(0, 4, {.pp = -2}); });
  REQUIRE(msg == "pipeline_model_parallel_size must be at least 1, got -2");
  msg = message_of<ConfigError>([] { ParallelLayout::make(0, 4, {.vpp = 0}); });
  REQUIRE(msg == "virtual_pipeline_model_parallel_size must be at least 1, got 0");
  msg = message_of<ConfigError>([] { ParallelLayout::make(0, 0, {}); });
  REQUIRE(msg == "world size must be at least 1, got 0");
  msg = message_of<ConfigError>([] { ParallelLayout::make(0, 4, {.tp = 2, .vpp = 2}); });
  REQUIRE_THAT(msg, Catch::Contains("virtual_pipeline_model_parallel_size 2 needs pipeline_model_parallel_size > 1"));
  msg = message_of<ConfigError>([] { ParallelLayout::make(8, 8, {.tp = 2}); });
  REQUIRE(msg == "rank 8 is outside the world of 8 ranks");
  // vpp and sequence parallel are carried as given.
  auto l = ParallelLayout::make(3, 8, {.tp = 2, .pp = 4, .vpp = 3, .sequence_parallel = true});
  REQUIRE(l.vpp() == 3);
  REQUIRE(l.sequence_parallel());
}

TEST_CASE("layout: a pipeline split rank adds the decoder's first stage to the embedding group", "[unit]") {
  // pp 4, split at stage 2 (T5: encoder on stages 0-1, decoder on 2-3), tp 1, dp 1.
  auto l = ParallelLayout::make(2, 4, {.tp = 1, .pp = 4, .pipeline_split_rank = 2});
  CHECK(l.pipeline_split_rank() == 2);
  CHECK(l.group_ranks(GroupKind::embedding) == std::vector<int>{0, 2, 3});
  CHECK(l.all_groups(GroupKind::embedding) == Groups{{0, 2, 3}});
  CHECK(ParallelLayout::make(1, 4, {.tp = 1, .pp = 4, .pipeline_split_rank = 2}).group_ranks(GroupKind::embedding).empty());
  CHECK(l.str() == "world 4 = tp 1 × dp 1 × pp 4 (vpp 1, sequence parallel off, split rank 2); rank 2 = (tp 0, dp 0, pp 2)");
  // Split at the last stage: {first, last}, each once.
  CHECK(ParallelLayout::make(0, 2, {.tp = 1, .pp = 2, .pipeline_split_rank = 1}).group_ranks(GroupKind::embedding) ==
        std::vector<int>{0, 1});
  CHECK_THROWS_WITH(ParallelLayout::make(0, 4, {.tp = 1, .pp = 4, .pipeline_split_rank = 4}),
                    Catch::Contains("pipeline_model_parallel_split_rank 4 must be a stage in [1, 4)"));
  CHECK_THROWS_WITH(ParallelLayout::make(0, 4, {.tp = 1, .pp = 2, .vpp = 2, .pipeline_split_rank = 1}),
                    Catch::Contains("cannot be combined with virtual_pipeline_model_parallel_size 2"));
}

TEST_CASE("layout: context parallelism sits between tp and dp (Megatron-Core's tp-cp-dp-pp)", "[unit]") {
  // rank → (tp_rank, cp_rank, dp_rank, pp_rank), by hand from rank = tp + 2·(cp + 2·(dp + 2·pp)).
  for (int r = 0; r < 16; ++r) {
    CAPTURE(r);
    auto l = ParallelLayout::make(r, 16, {.tp = 2, .pp = 2, .cp = 2});
    REQUIRE(l.dp() == 2);
    REQUIRE(l.cp() == 2);
    REQUIRE(l.tp_rank() == r % 2);
    REQUIRE(l.cp_rank() == (r / 2) % 2);
    REQUIRE(l.dp_rank() == (r / 4) % 2);
    REQUIRE(l.pp_rank() == r / 8);
    REQUIRE(l.world_rank_of(l.tp_rank(), l.dp_rank(), l.pp_rank(), l.cp_rank()) == r);
    REQUIRE(l.next_pipeline_rank() == (r + 8) % 16);
  }
  auto l = ParallelLayout::make(6, 16, {.tp = 2, .pp = 2, .cp = 2});
  REQUIRE(l.all_groups(GroupKind::cp) ==
          Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}});
  REQUIRE(l.all_groups(GroupKind::dp) ==
          Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}});
  REQUIRE(l.all_groups(GroupKind::tp) ==
          Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}});
  REQUIRE(l.group_ranks(GroupKind::cp) == std::vector<int>{4, 6});
  REQUIRE(l.group_ranks(GroupKind::dp) == std::vector<int>{2, 6});
  REQUIRE(l.group_ranks(GroupKind::pp) == std::vector<int>{6, 14});
  REQUIRE(l.group_ranks(GroupKind::embedding) == std::vector<int>{6, 14});
  REQUIRE(l.str() == "world 16 = tp 2 × cp 2 × dp 2 × pp 2 (vpp 1, sequence parallel off); rank 6 = (tp 0, cp 1, dp 1, pp 0)");
  // Without it: one-rank cp groups, and the tp-dp-pp grid as before.
  auto plain = ParallelLayout::make(6, 16, {.tp = 2, .pp = 2});
  REQUIRE(plain.group_ranks(GroupKind::cp) == std::vector<int>{6});
  REQUIRE(plain.dp_rank() == 3);
  // Every group kind partitions the world.
  for (GroupKind kind : {GroupKind::tp, GroupKind::cp, GroupKind::dp, GroupKind::pp}) {
    std::set<int> seen;
    for (const auto& g : l.all_groups(kind)) seen.insert(g.begin(), g.end());
    REQUIRE(seen.size() == 16);
  }
  auto msg = message_of<ConfigError>([] { ParallelLayout::make(0, 6, {.tp = 2, .cp = 2}); });
  REQUIRE_THAT(msg, Catch::Contains("world size 6 is not divisible by tensor_model_parallel_size (2) × "
                                    "pipeline_model_parallel_size (1) × context_parallel_size (2) = 4"));
  msg = message_of<ConfigError>([] { ParallelLayout::make(0, 8, {.ep = 2, .cp = 2}); });
  REQUIRE_THAT(msg, Catch::Contains("expert_model_parallel_size 2 with context_parallel_size 2"));
  msg = message_of<ConfigError>([] { ParallelLayout::make(0, 4, {.cp = 0}); });
  REQUIRE(msg == "context_parallel_size must be at least 1, got 0");
}
