// ParallelLayout: where one rank sits in the tp × cp × dp × pp grid, computed from sizes alone.
//
// Rank order is Megatron-LM's "tp-cp-dp-pp": tensor-parallel rank varies fastest, then context-
// parallel, then data-parallel, then pipeline, i.e.
//   rank = tp_rank + tp · (cp_rank + cp · (dp_rank + dp · pp_rank)).
// With cp = 1 (the default) that is "tp-dp-pp". Ranks of one tensor-parallel
// group are therefore neighbours (on one node), and a pipeline group strides by tp·dp. Example, 16
// ranks with tp 2, pp 4 (dp 2): tp groups [0,1] [2,3] …, dp groups [0,2] [1,3] [4,6] …, pp groups
// [0,4,8,12] [1,5,9,13] …. docs/parallelism.md has a worked table.
//
// Expert parallelism (Megatron-Core's expert_model_parallel_size, ep) splits the data-parallel
// dimension further for the mixture-of-experts layers' experts: consecutive data-parallel ranks form
// an expert-parallel group (ep_rank = dp_rank mod ep), each holding E/ep of the experts, and the
// ranks holding the same experts (dp_rank / ep varying) form the expert-data-parallel group that
// sums their gradients. With tp 1, dp 4, ep 2: ep groups [0,1] [2,3], expert-dp groups [0,2] [1,3]
// (Megatron-Core's "tp-ep-dp-pp" order with expert tp equal to tp).
//
// Expert tensor parallel size 1 (Megatron-Core's expert_tensor_parallel_size, etp; Tessera takes 1 or
// tp): the experts are not split over tp, the ranks of a tp group hold different experts whole
// instead. Megatron-Core's expert-parallel group then spans the tp group and ep / tp consecutive
// data-parallel ranks (ep a multiple of tp): ep_rank = tp_rank + tp · (dp_rank mod ep/tp). The ep
// group here is its data-parallel part (the ep/tp ranks of the same tp rank that exchange token rows;
// the tp group already shares them), the expert_dp group the dp / (ep/tp) ranks holding the same
// experts. With tp 2, dp 2, ep 4, etp 1: ep groups [0,2] [1,3], each rank a quarter of the experts.
// With ep 1 instead every tp rank holds every expert whole (no expert grid: the experts are
// replicated over tp like a norm's weight, each tp rank running them on its share of the rows).
// Megatron-Core also takes 1 < ep < tp there; Tessera does not (yet).
//
// Context parallelism (Megatron-Core's context_parallel_size, cp; nn/context_parallel.hpp): the cp
// ranks of a group read the same micro batches and each holds 2 of the 2·cp chunks of every
// sequence; their gradients are summed over the cp group after the data-parallel reduction. With
// tp 2, cp 2, dp 2: cp groups [0,2] [1,3] [4,6] [5,7], dp groups [0,4] [1,5] [2,6] [3,7]. Expert
// parallelism with cp > 1 is not built.
//
// Everything here is a pure function of (world rank, world size, sizes), so it is tested
// without MPI; process_groups.hpp turns the rank lists into communicators.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

enum class GroupKind { tp, dp, pp, embedding, ep, expert_dp, cp };
const char* group_kind_name(GroupKind kind);

struct ParallelSizes {
  int tp = 1;   // tensor_model_parallel_size
  int pp = 1;   // pipeline_model_parallel_size
  int vpp = 1;  // virtual pipeline stages (model chunks) per pipeline rank
  bool sequence_parallel = false;
  // pipeline_model_parallel_split_rank (Megatron-LM, encoder-decoder models): stages [0, s) hold the
  // encoder, [s, pp) the decoder; 0: no split. The embedding group then holds stage s too.
  int pipeline_split_rank = 0;
  // Uneven pipeline stages (Megatron-LM's --decoder-first-pipeline-num-layers and
  // --decoder-last-pipeline-num-layers): the transformer layers of the first / last stage, the other
  // stages sharing the rest evenly; 0: an even share (pipeline_layers.hpp).
  std::int64_t first_stage_layers = 0, last_stage_layers = 0;
  // Megatron-LM's --account-for-embedding-in-pipeline-split / --account-for-loss-in-pipeline-split:
  // the embedding (the loss) counts as one layer of an even split, so the first (last) model chunk
  // holds one transformer layer fewer (pipeline_layers.hpp).
  bool embedding_in_split = false, loss_in_split = false;
  int ep = 1;  // expert_model_parallel_size: must divide the data-parallel size (last: positional
               // initialisers of the fields above keep their meaning)
  // expert_tensor_parallel_size: 0 (or tp) splits every expert over tp; 1 keeps experts whole, the
  // tp ranks holding different ones (ep then a multiple of tp, ep / tp dividing dp) or, with ep 1,
  // every tp rank all of them.
  int etp = 0;
  // context_parallel_size: each sequence split over cp ranks (nn/context_parallel.hpp).
  int cp = 1;
};

class ParallelLayout {
 public:
  // Throws ConfigError, naming the sizes, when a size is < 1, world_size is not a multiple of
  // tp·cp·pp, ep > 1 comes with cp > 1, ep does not divide the data-parallel size (with etp 1: ep neither 1 nor a multiple of tp,
  // or ep / tp not dividing it; etp neither 1 nor tp), world_rank is outside [0, world_size), vpp > 1
  // without pipeline parallelism, or the split rank is not a stage in [1, pp) (or comes with vpp > 1).
  static ParallelLayout make(int world_rank, int world_size, const ParallelSizes& sizes);

  int world_size() const { return world_; }
  int rank() const { return rank_; }
  int tp() const { return sizes_.tp; }
  int pp() const { return sizes_.pp; }
  int dp() const { return dp_; }
  int vpp() const { return sizes_.vpp; }
  int ep() const { return sizes_.ep; }
  int cp() const { return sizes_.cp; }
  bool sequence_parallel() const { return sizes_.sequence_parallel; }
  int pipeline_split_rank() const { return sizes_.pipeline_split_rank; }  // 0: none
  const ParallelSizes& sizes() const { return sizes_; }

  int tp_rank() const { return tp_rank_; }
  int dp_rank() const { return dp_rank_; }
  int pp_rank() const { return pp_rank_; }
  int cp_rank() const { return cp_rank_; }
  // Expert tensor parallel size: tp (experts split over tp) or 1 (whole, other experts on each tp rank).
  int etp() const { return sizes_.etp == 0 ? sizes_.tp : sizes_.etp; }
  bool experts_whole_over_tp() const { return etp() == 1 && sizes_.tp > 1; }
  // The tp ranks holding different experts: tp with etp 1 and ep > 1 (ep then a multiple of tp);
  // else 1 (experts split over tp, or with ep 1 every tp rank holding all of them whole).
  int expert_tp_slices() const { return experts_whole_over_tp() && sizes_.ep > 1 ? sizes_.tp : 1; }
  int ep_dp() const { return sizes_.ep / expert_tp_slices(); }  // the data-parallel part of ep
  // Which experts this rank holds (of ep shares), and its place among the ranks holding the same ones.
  int ep_rank() const { return tp_rank_ % expert_tp_slices() + expert_tp_slices() * (dp_rank_ % ep_dp()); }
  int expert_dp_rank() const { return dp_rank_ / ep_dp(); }
  bool is_first_stage() const { return pp_rank_ == 0; }
  bool is_last_stage() const { return pp_rank_ == sizes_.pp - 1; }
  // World ranks of the neighbouring stages; they wrap around as in Megatron-LM.
  int next_pipeline_rank() const;
  int prev_pipeline_rank() const;

  // The world rank at a grid position.
  int world_rank_of(int tp_rank, int dp_rank, int pp_rank, int cp_rank = 0) const;

  // World ranks of the group of `kind` that contains this rank, in group-rank order. The embedding
  // group is {first stage, last stage} of this rank's (tp, cp, dp) position (one rank when pp = 1; with
  // a pipeline split rank s, {first, s, last}: the decoder's first stage embeds too), used to reduce
  // tied embedding grads; it is empty for the other stages, which are in none. The ep group is the
  // ep consecutive data-parallel ranks around this one (ep / tp of them with etp 1), the expert_dp
  // group the other dp / ep (dp / (ep / tp)) ranks of the same tp and ep rank (each one rank when ep
  // = 1 and dp = ep respectively).
  std::vector<int> group_ranks(GroupKind kind) const;
  // Every group of `kind` in the world, ordered by their first rank.
  std::vector<std::vector<int>> all_groups(GroupKind kind) const;

  // "world 8 = tp 2 × dp 2 × pp 2 (vpp 1, sequence parallel off); rank 5 = (tp 1, dp 0, pp 1)"
  std::string str() const;

 private:
  ParallelLayout() = default;
  std::vector<int> group_at(GroupKind kind, int tp_rank, int cp_rank, int dp_rank, int pp_rank) const;
  ParallelSizes sizes_;
  int world_ = 1, rank_ = 0, dp_ = 1;
  int tp_rank_ = 0, cp_rank_ = 0, dp_rank_ = 0, pp_rank_ = 0;
};

}  // namespace tessera
