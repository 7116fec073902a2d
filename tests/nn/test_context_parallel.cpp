// Context parallelism's token bookkeeping (nn/context_parallel.hpp): which positions a rank holds,
// its chunks of a batch field, and where its token rows sit in the one-process activation for the
// dropout masks. The collectives are checked end to end by the layout tests (test_layouts_context_parallel).
#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/nn/context_parallel.hpp"

using namespace tessera;
using Positions = std::vector<std::int32_t>;

TEST_CASE("context parallelism: rank r holds chunks r and 2·cp − 1 − r of every sequence", "[unit]") {
  REQUIRE(cp_token_positions(12, 3, 0) == Positions{0, 1, 10, 11});
  REQUIRE(cp_token_positions(12, 3, 1) == Positions{2, 3, 8, 9});
  REQUIRE(cp_token_positions(12, 3, 2) == Positions{4, 5, 6, 7});
  REQUIRE(cp_token_positions(8, 1, 0) == Positions{0, 1, 2, 3, 4, 5, 6, 7});
  // Together the ranks hold every position once.
  std::vector<int> seen(32, 0);
  for (int r = 0; r < 4; ++r)
    for (std::int32_t p : cp_token_positions(32, 4, r)) ++seen[static_cast<std::size_t>(p)];
  REQUIRE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
  REQUIRE_THROWS_AS(cp_token_positions(10, 3, 0), ShapeError);
}

TEST_CASE("context parallelism: a rank's chunks of a [B, T, ...] field", "[unit]") {
  const std::int64_t B = 2, T = 8, W = 3;
  std::vector<std::int32_t> values(B * T * W);
  std::iota(values.begin(), values.end(), 0);
  const Tensor x = Tensor::from<std::int32_t>({B, T, W}, values);
  const Tensor mine = cp_take_chunks(x, 2, 1);  // chunks 1 and 2 of 4: positions 2, 3, 4, 5
  REQUIRE(mine.shape() == Shape{B, 4, W});
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < 4; ++t)
      for (std::int64_t w = 0; w < W; ++w)
        REQUIRE(mine.data<std::int32_t>()[(b * 4 + t) * W + w] == (b * T + 2 + t) * W + w);
  const Tensor first = cp_take_chunks(Tensor::from<std::int32_t>({1, T}, {0, 1, 2, 3, 4, 5, 6, 7}), 2, 0);
  REQUIRE(first.to_vector<std::int32_t>() == Positions{0, 1, 6, 7});
  REQUIRE_THROWS_AS(cp_take_chunks(Tensor::zeros({2, 6}), 2, 0), ShapeError);
}

TEST_CASE("context parallelism: a rank's token rows are runs of the one-process rows", "[unit]") {
  // cp 2, rank 0, T = 8: the rank's 4 tokens per sequence are positions 0, 1, 6, 7.
  const TokenRows rows{0, 4, 2, 0};
  const auto runs = rows.runs(8);  // B = 2
  REQUIRE(runs.size() == 4);
  const std::vector<std::vector<std::int64_t>> expected{{0, 2, 0}, {2, 2, 6}, {4, 2, 8}, {6, 2, 14}};
  for (std::size_t i = 0; i < runs.size(); ++i) {
    CAPTURE(i);
    REQUIRE(std::vector<std::int64_t>{runs[i].row, runs[i].count, runs[i].global} == expected[i]);
  }
  // A sequence-parallel shard starting inside a chunk: rows 3 … 5 of the rank's rows.
  const TokenRows shard{3, 4, 2, 1};  // rank 1: positions 2, 3, 4, 5
  const auto pieces = shard.runs(3);
  REQUIRE(pieces.size() == 2);
  REQUIRE((pieces[0].row == 0 && pieces[0].count == 1 && pieces[0].global == 5));   // b 0, position 5
  REQUIRE((pieces[1].row == 1 && pieces[1].count == 2 && pieces[1].global == 10));  // b 1, positions 2, 3
  // Without context parallelism: one run at the shard's first row.
  const auto whole = TokenRows{5, 0, 1, 0}.runs(7);
  REQUIRE((whole.size() == 1 && whole[0].row == 0 && whole[0].count == 7 && whole[0].global == 5));
}
