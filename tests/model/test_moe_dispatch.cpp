// The mixture-of-experts dispatch bookkeeping (nn/moe_dispatch.hpp) on hand-made routings: the
// routing table (dropped pairs −1), the dispatch of a range of experts in expert order with rows
// ascending, and the all-to-all dispatcher's plan — which rows each rank sends where (each row once
// per rank holding one of its experts, so at most min(k, ranks) copies) and where received rows land;
// the expert-tensor names that checkpoints rely on (nn/moe.hpp), and one rank restoring its own
// experts from a model file that holds every expert (train/checkpoint.hpp's restore_model_file).
// (The exchanges themselves run under mpirun: tests/parallel's test_layouts_moe_ep_alltoall.)
#include <catch2/catch.hpp>

#include <vector>

#include "expect_error.hpp"
#include "tessera/error.hpp"
#include "tessera/nn/moe.hpp"
#include "tessera/nn/moe_dispatch.hpp"
#include "tessera/train/checkpoint.hpp"

using namespace tessera;

namespace {

// 3 tokens, 4 experts, top 2: token 0 → experts 1, 2; token 1 → 0 and (dropped) 3; token 2 → 3, 2.
MoeRouting hand_routing() {
  MoeRouting r;
  r.tokens = 3;
  r.experts = 4;
  r.topk = 2;
  r.probs = {0.6f, 0.4f, 0.7f, 0.3f, 0.9f, 0.1f};
  r.expert_tokens = {{1}, {0}, {0, 2}, {2}};
  r.expert_slots = {{0}, {0}, {1, 1}, {0}};
  return r;
}

std::vector<std::int32_t> ints(const Tensor& t) { return t.to_vector<std::int32_t>(); }

}  // namespace

TEST_CASE("moe dispatch: the routing table and one rank's experts' pairs", "[unit]") {
  const RoutedTable t = routed_table(hand_routing());
  CHECK(t.rows == 3);
  CHECK(t.expert == std::vector<float>{1, 2, 0, -1, 3, 2});
  CHECK(t.weight == std::vector<float>{0.6f, 0.4f, 0.7f, 0.3f, 0.9f, 0.1f});

  // The second of two shares of the 3 rows (rows 1 and 2; expert tensor parallel size 1 with ep 1:
  // tp rank 1 of 2): their pairs only.
  const Dispatch shared = dispatch(t, 0, 4, Device::cpu(), nullptr, RowShare{1, 2});
  CHECK(shared.first == std::vector<std::int64_t>{0, 1, 1, 2, 3});
  CHECK(shared.pairs == std::vector<std::int64_t>{2, 5, 4});
  CHECK(dispatch(t, 0, 4, Device::cpu(), nullptr, RowShare{0, 2}).pairs == std::vector<std::int64_t>{0, 1});

  const Dispatch all = dispatch(t, 0, 4, Device::cpu());  // every expert, in expert order
  CHECK(all.first == std::vector<std::int64_t>{0, 1, 2, 4, 5});
  CHECK(all.pairs == std::vector<std::int64_t>{2, 0, 1, 5, 4});  // row·k + slot; the dropped pair 3 nowhere
  CHECK(ints(all.ids) == std::vector<std::int32_t>{1, 0, 0, 2, 2});
  CHECK(all.weights.to_vector<float>() == std::vector<float>{0.7f, 0.6f, 0.4f, 0.1f, 0.9f});
  CHECK(all.table_rows == 3);

  const Dispatch upper = dispatch(t, 2, 2, Device::cpu());  // experts 2 and 3 only
  CHECK(upper.first == std::vector<std::int64_t>{0, 2, 3});
  CHECK(ints(upper.ids) == std::vector<std::int32_t>{0, 2, 2});
  // Through a buffer: rows 0 and 2 sit at 1 and 0.
  const std::vector<std::int64_t> buffer_row{1, -1, 0};
  CHECK(ints(dispatch(t, 2, 2, Device::cpu(), &buffer_row).ids) == std::vector<std::int32_t>{1, 0, 0});
}

TEST_CASE("moe dispatch: the all-to-all plan sends each row once to each rank whose experts take it", "[unit]") {
  // Two ranks of 2 experts each (rank 0: experts 0, 1; rank 1: 2, 3), each with the hand routing's
  // 3 tokens: the group table has rank 0's rows 0-2, then rank 1's rows 3-5 routed alike.
  RoutedTable own = routed_table(hand_routing());
  RoutedTable group{6, 2, own.expert, own.weight};
  group.expert.insert(group.expert.end(), own.expert.begin(), own.expert.end());
  group.weight.insert(group.weight.end(), own.weight.begin(), own.weight.end());

  const Exchange r0 = plan_exchange(group, 2, 0, 2, Device::cpu());
  // Rank 0's rows for rank 0's experts: token 0 (expert 1), token 1 (expert 0); for rank 1's: token 0
  // (expert 2) and token 2 (experts 3 and 2: once). Token 1's dropped pair sends nothing.
  CHECK(ints(r0.send_rows[0]) == std::vector<std::int32_t>{0, 1});
  CHECK(ints(r0.send_rows[1]) == std::vector<std::int32_t>{0, 2});
  // Received: its own two rows, then rank 1's tokens 0 and 1.
  CHECK(r0.first == std::vector<std::int64_t>{0, 2, 4});
  CHECK(r0.buffer_row == std::vector<std::int64_t>{0, 1, -1, 2, 3, -1});

  const Exchange r1 = plan_exchange(group, 2, 1, 2, Device::cpu());
  CHECK(ints(r1.send_rows[0]) == std::vector<std::int32_t>{0, 1});
  CHECK(ints(r1.send_rows[1]) == std::vector<std::int32_t>{0, 2});
  CHECK(r1.first == std::vector<std::int64_t>{0, 2, 4});
  CHECK(r1.buffer_row == std::vector<std::int64_t>{0, -1, 1, 2, -1, 3});
  // What rank q sends to rank r is what r expects from q, row for row.
  CHECK(r0.sent(1) == r1.received(0));
  CHECK(r1.sent(0) == r0.received(1));

  // The dispatch through the buffer reads the received rows: rank 1's experts 2 and 3.
  const Dispatch d = dispatch(group, 2, 2, Device::cpu(), &r1.buffer_row);
  CHECK(d.first == std::vector<std::int64_t>{0, 4, 6});
  CHECK(ints(d.ids) == std::vector<std::int32_t>{0, 1, 2, 3, 1, 3});

  // Expert tensor parallel size 1: two tp ranks (slices) over the same two dp ranks, one expert
  // each, blocks alternating — slice 0 holds experts 0 (rank 0) and 2 (rank 1), slice 1 experts 1
  // and 3 — and each slice exchanges only the rows of its own experts.
  const Exchange s0 = plan_exchange(group, 2, 0, 1, Device::cpu(), 2, 0);
  CHECK(ints(s0.send_rows[0]) == std::vector<std::int32_t>{1});     // token 1: expert 0
  CHECK(ints(s0.send_rows[1]) == std::vector<std::int32_t>{0, 2});  // tokens 0 and 2: expert 2
  CHECK(s0.first == std::vector<std::int64_t>{0, 1, 2});
  CHECK(s0.buffer_row == std::vector<std::int64_t>{-1, 0, -1, -1, 1, -1});
  const Exchange s1 = plan_exchange(group, 2, 1, 1, Device::cpu(), 2, 1);
  CHECK(ints(s1.send_rows[0]) == std::vector<std::int32_t>{0});  // token 0: expert 1
  CHECK(ints(s1.send_rows[1]) == std::vector<std::int32_t>{2});  // token 2: expert 3
  CHECK(s1.buffer_row == std::vector<std::int64_t>{-1, -1, 0, -1, -1, 1});

  // One rank holding everything: every row with a kept pair, once.
  const Exchange alone = plan_exchange(own, 1, 0, 4, Device::cpu());
  CHECK(ints(alone.send_rows[0]) == std::vector<std::int32_t>{0, 1, 2});
  CHECK(alone.buffer_row == std::vector<std::int64_t>{0, 1, 2});
}

TEST_CASE("moe dispatch: experts' tensors are recognised by name, and named by role", "[unit]") {
  CHECK(is_expert_tensor("layers.3.mlp.experts.12.fc1.weight"));
  CHECK_FALSE(is_expert_tensor("layers.3.mlp.router.weight"));
  CHECK_FALSE(is_expert_tensor("layers.3.mlp.shared_expert.fc1.weight"));
  CHECK(expert_role("layers.3.mlp.experts.12.fc1.weight") == "layers.3.mlp.experts.*.fc1.weight");
  CHECK(expert_role("layers.3.mlp.experts.0.fc2.bias") == expert_role("layers.3.mlp.experts.7.fc2.bias"));
  CHECK(expert_role("layers.13.mlp.experts.1.fc2.bias") != expert_role("layers.3.mlp.experts.1.fc2.bias"));
  CHECK(expert_role("layers.3.mlp.router.weight") == "layers.3.mlp.router.weight");
}

TEST_CASE("moe dispatch: a model file with every expert restores one expert-parallel rank's own", "[unit]") {
  // Rank 1 of 2 holds expert 1 of a layer's two; the file (as rank 0 of the group wrote it) both.
  Parameter router("layers.0.mlp.router.weight", {2, 3}), mine("layers.0.mlp.experts.1.fc1.weight", {4, 3});
  mine.expert_parallel = true;
  const std::vector<Parameter*> params{&router, &mine};
  const std::map<std::string, Tensor> file{{router.name, Tensor::full({2, 3}, 1.0f)},
                                           {mine.name, Tensor::full({4, 3}, 2.0f)},
                                           {"layers.0.mlp.experts.0.fc1.weight", Tensor::full({4, 3}, 3.0f)}};
  restore_model_file(file, params, 2, "model_tp0_pp0.safetensors");
  CHECK(router.value.item(0) == 1.0);
  CHECK(mine.value.item(0) == 2.0);
  // Without expert parallelism every tensor must be this rank's.
  CHECK_THAT(message_of<FormatError>([&] { restore_model_file(file, params, 1, "model_tp0_pp0.safetensors"); }),
             Catch::Contains("experts.0.fc1.weight") && Catch::Contains("this run does not"));
  // The other rank's expert missing, or one too many: the file is not what the layout wrote.
  std::map<std::string, Tensor> short_file = file;
  short_file.erase("layers.0.mlp.experts.0.fc1.weight");
  CHECK_THAT(message_of<FormatError>([&] { restore_model_file(short_file, params, 2, "model_tp0_pp0.safetensors"); }),
             Catch::Contains("model_tp0_pp0.safetensors: holds 0 tensors of experts this rank does not hold, expected 1"));
  std::map<std::string, Tensor> long_file = file;
  long_file.emplace("layers.0.mlp.experts.2.fc1.weight", Tensor::full({4, 3}, 4.0f));
  CHECK_THAT(message_of<FormatError>([&] { restore_model_file(long_file, params, 2, "model_tp0_pp0.safetensors"); }),
             Catch::Contains("holds 2 tensors of experts this rank does not hold, expected 1"));
}
