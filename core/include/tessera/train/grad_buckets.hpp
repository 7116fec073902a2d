// Gradient buckets for the data-parallel all-reduce (Megatron-LM's param-and-grad buffer,
// --ddp-bucket-size).
//
// The gradients of all parameters live in one flat f32 buffer, in backward order (the reverse of
// collect_parameters), split into buckets of about `bucket_size` elements; every Parameter::grad
// is re-pointed at its slice of that buffer (a view: same storage, its own shape), so a bucket's
// gradients are one contiguous range that one all-reduce sums, with no copy in or out. Modules,
// the optimizer and the grad norm keep using p->grad as before.
//
// Grouping, per parameter in backward order:
//   - a parameter that would take a non-empty bucket past bucket_size closes that bucket first;
//   - a parameter of bucket_size elements or more therefore gets a bucket of its own;
//   - every parameter (and every bucket) starts on a 16-element (64-byte) boundary; the padding is
//     zero, stays zero and is all-reduced with the bucket (zero summed is zero).
// (Megatron closes a bucket once it reaches bucket_size, so its buckets can exceed it by one
// parameter; here a bucket exceeds it only when it holds a single larger parameter.)
//
// With `shards` = dp > 1 every bucket's length is padded to a multiple of 16·shards, so that it
// splits into dp equal shards: a distributed optimizer reduce-scatters a bucket and rank r owns
// shard r (shard_pieces says which parameter elements that is).
//
// With separate_tp_reduced (tensor parallelism: tp > 1), parameters with reduce_grad_over_tp are
// bucketed apart, after all others, in buckets marked after_tp_reduce: their gradient is complete
// only once the trainer has summed it over tp after the last microbatch, so those buckets can start
// only then, and keeping them apart lets every other bucket start during backward.
//
// Expert-parallel parameters (Parameter::expert_parallel) always get buckets of their own, last,
// marked expert_parallel: the ranks that sum them are the expert-data-parallel group, not dp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "tessera/nn/parameter.hpp"

namespace tessera {

// Megatron-LM's smallest default --ddp-bucket-size is 40,000,000 elements; see docs/parallelism.md
// for the value chosen on CPU and why.
inline constexpr std::int64_t kDefaultGradBucketSize = 40'000'000;

struct GradBucketPlan {
  std::vector<std::size_t> params;    // indices into the parameter list, in backward order
  std::vector<std::int64_t> offsets;  // element offset of each one's gradient in the bucket
  std::int64_t numel = 0;             // elements the bucket's all-reduce covers (padding included)
  bool after_tp_reduce = false;       // holds reduce_grad_over_tp parameters only
  bool expert_parallel = false;       // holds Parameter::expert_parallel ones only (summed over expert dp)
};

// Pure planning (no allocation), for GradBuckets and for tests. bucket_size >= 1, shards >= 1.
std::vector<GradBucketPlan> plan_grad_buckets(const std::vector<Parameter*>& params, std::int64_t bucket_size,
                                              bool separate_tp_reduced, int shards = 1);

// The part of one parameter inside one bucket shard: elements [param_offset, param_offset + count)
// of the flattened parameter sit at [shard_offset, shard_offset + count) of the shard.
struct ShardPiece {
  Parameter* param = nullptr;
  std::int64_t param_offset = 0, shard_offset = 0, count = 0;
};

// The pieces of shard `shard` (of `shards` equal ones) of a planned bucket, whose parameters are
// params[plan.params[j]]: what GradBuckets::shard_pieces gives for the bucket it allocates, without
// allocating (a checkpoint reshard maps saved shards onto parameters with it).
std::vector<ShardPiece> plan_shard_pieces(const GradBucketPlan& plan, const std::vector<Parameter*>& params,
                                          int shards, int shard);

class GradBuckets {
 public:
  struct Bucket {
    std::vector<Parameter*> params;     // backward order
    std::vector<std::int64_t> offsets;  // each one's gradient's offset in `data`
    Tensor data;                        // f32 [numel]: a view of the flat buffer; the params' grads are views of it
    bool after_tp_reduce = false;
    bool expert_parallel = false;  // summed over the expert-data-parallel group, not dp
  };

  // Allocates the buffer and re-points every parameter's grad into it (current values kept).
  GradBuckets(const std::vector<Parameter*>& params, std::int64_t bucket_size, bool separate_tp_reduced,
              int shards = 1);

  int shards() const { return shards_; }
  // The parameter pieces in shard `shard` of bucket b (elements [shard·n, (shard+1)·n) of its
  // data, n = numel / shards), in bucket order; padding belongs to no piece.
  std::vector<ShardPiece> shard_pieces(std::size_t b, int shard) const { return shard_pieces(b, shard, shards_); }
  // The same for `shards` equal shards (which must divide numel / 16): an expert-parallel bucket
  // splits over its expert-data-parallel group, dp / ep ranks.
  std::vector<ShardPiece> shard_pieces(std::size_t b, int shard, int shards) const;

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Bucket b's flat gradients, for the all-reduce that sums them in place.
  Tensor& data(std::size_t b) { return buckets_.at(b).data; }
  std::size_t size() const { return buckets_.size(); }
  std::int64_t bucket_size() const { return bucket_size_; }
  std::size_t num_params() const { return bucket_of_.size(); }
  bool separates_tp_reduced() const { return separate_tp_reduced_; }
  // The bucket holding p's gradient and p's position among all bucketed parameters (dense, from
  // 0); throws Error for a parameter that is not in any bucket.
  std::size_t bucket_of(const Parameter& p) const { return bucket_of_[index_of(p)]; }
  std::size_t index_of(const Parameter& p) const;
  // Zeroes every gradient (and the padding) in one pass.
  void zero_grads() { buffer_.zero_(); }

 private:
  std::int64_t bucket_size_;
  bool separate_tp_reduced_;
  int shards_;
  Tensor buffer_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const Parameter*, std::size_t> index_;
  std::vector<std::size_t> bucket_of_;
};

}  // namespace tessera
