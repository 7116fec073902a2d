// How a mixture-of-experts layer's routed (token, expert) pairs reach the experts (nn/moe.hpp): the
// routing table of each pair's expert and weight (one rank's, or gathered over the expert-parallel
// group), the dispatch of this rank's experts' pairs as device index and weight vectors, and, for
// the all-to-all token dispatcher, the plan of which rows each rank sends where and the
// point-to-point exchanges themselves. Host bookkeeping apart from the row exchanges, so it is unit
// tested on the CPU (tests/model/test_moe_dispatch.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "tessera/nn/moe_routing.hpp"
#include "tessera/nn/tensor_parallel_region.hpp"
#include "tessera/tensor.hpp"

namespace tessera {

// Each routed (row, slot) pair's expert (−1: dropped by its expert's capacity) and weight, for the
// rows of one rank or, under expert parallelism, of the whole group (rank q's rows after rank q−1's).
struct RoutedTable {
  std::int64_t rows = 0, topk = 0;
  std::vector<float> expert, weight;  // [rows·k]; the expert index as a float (exact below 2^24)
};

// This rank's table from its routing (pairs its expert dropped: −1).
RoutedTable routed_table(const MoeRouting& r);

// Every rank's table, in rank order (one all-gather of [expert | weight] per rank).
RoutedTable gather_table(RoutedTable own, const TpGroup& ep, Device device);

// The routed pairs of experts [first_expert, first_expert + count) in expert order — expert i's
// are [first[i], first[i + 1]), rows ascending — with their rows and weights on the device: one copy
// each per layer, each expert a slice.
struct Dispatch {
  std::int64_t table_rows = 0;      // the table's rows (this rank's, or the group's)
  std::vector<std::int64_t> first;  // count + 1 offsets
  std::vector<std::int64_t> pairs;  // [pairs] row · k + slot, into the table
  Tensor ids, weights;              // [pairs] i32 rows, f32 weights on the device
  std::int64_t count(std::int64_t i) const { return first[i + 1] - first[i]; }
  Tensor ids_of(std::int64_t i) const { return ids.rows(first[i], first[i + 1]); }
  Tensor weights_of(std::int64_t i) const { return weights.rows(first[i], first[i + 1]); }
};

// Share `index` of `of` of a table's rows: [index·rows/of, (index+1)·rows/of). Expert tensor
// parallel size 1 with ep 1: every tp rank holds every expert and runs them on its share of the
// rows, which every tp rank routed alike.
struct RowShare {
  int index = 0, of = 1;
  std::int64_t begin(std::int64_t rows) const { return rows * index / of; }
  std::int64_t end(std::int64_t rows) const { return rows * (index + 1) / of; }
};

// This rank's experts' dispatch, of the pairs in its share of the rows. `buffer_row`: where each
// table row sits in the rows the experts read (the all-to-all dispatcher's received buffer); null:
// the table's own order.
Dispatch dispatch(const RoutedTable& t, std::int64_t first_expert, std::int64_t count, Device device,
                  const std::vector<std::int64_t>* buffer_row = nullptr, RowShare share = {});

// The all-to-all dispatcher's plan, from the group's routing table (rank q's rows q·N … q·N + N − 1):
// which of this rank's rows each rank's experts take, and where the rows this rank receives go.
struct Exchange {
  int rank = 0;
  std::vector<Tensor> send_rows;      // per rank r: this rank's rows (i32, ascending) r's experts take
  std::vector<std::int64_t> first;    // per rank q: where q's rows start in the received buffer (P + 1)
  std::vector<std::int64_t> buffer_row;  // per table row: its row in the received buffer, or −1
  std::int64_t sent(int r) const { return send_rows[static_cast<std::size_t>(r)].numel(); }
  std::int64_t received(int q) const { return first[q + 1] - first[q]; }
};

// Rank `rank` of `ranks` (each holding `experts_per_rank` consecutive experts): a row goes to each
// rank holding one of its kept pairs' experts once, so at most min(k, ranks) copies. With `slices`
// > 1 (expert tensor parallel size 1) the blocks of experts_per_rank experts alternate between the
// slices (tp ranks), rank q of slice s holding block s + slices · q; this exchange moves only slice
// `slice`'s pairs, the other tp ranks exchanging theirs.
Exchange plan_exchange(const RoutedTable& t, int ranks, int rank, std::int64_t experts_per_rank, Device device,
                       int slices = 1, int slice = 0);

// rows [N, C] → the received buffer [Σ_q received(q), C]: each rank's rows that this rank's experts
// take, in rank order (this rank's own copied, the others' by point-to-point transfers).
Tensor exchange_rows(const Tensor& rows, const Exchange& x, Communicator& ep);

// The way back: `partial` [buffer rows, C] (f32 sums over this rank's experts) → [N, C] f32, each row
// the sum over the ranks that took it, added in rank order.
Tensor combine_rows(const Tensor& partial, const Exchange& x, Communicator& ep, std::int64_t tokens);

}  // namespace tessera
