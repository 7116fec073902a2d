// What a module's forward and backward need to know about the step they run in.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/nn/activation_store.hpp"

namespace tessera {

struct Parameter;
class KvCache;
class Communicator;

// Told when a parameter's gradient is final for the iteration (its module's backward ran on the
// last microbatch), so the data-parallel reduction of that gradient can start while backward
// still runs on earlier layers.
class GradReadyListener {
 public:
  virtual ~GradReadyListener() = default;
  virtual void grad_ready(Parameter& p) = 0;
};

// Training statistics modules report, by name (Model::metric_names lists a model's): each report
// adds a value and a count of one, and the trainer logs Σ values / Σ counts over the iteration's
// microbatches, pipeline stages and data-parallel ranks (mixture-of-experts layers' router losses:
// the mean over layers and microbatches, as Megatron-LM's track_moe_metrics).
struct StepMetrics {
  std::map<std::string, std::pair<double, double>> sums;  // name → (Σ value, count)
  void add(const std::string& name, double value) {
    auto& [total, count] = sums[name];
    total += value;
    count += 1;
  }
};

// Statistics modules gather over an iteration for their buffers (Parameter::trainable = false): each
// report adds to the buffer's sums; after the last microbatch the trainer sums them over the
// data-parallel ranks and calls `apply` once, whether or not the optimizer steps (Megatron-Core's
// finalize_model_grads hook; the MoE router's expert bias from its token counts).
struct BufferStatistics {
  struct Entry {
    std::vector<double> sums;
    std::function<void(const std::vector<double>&)> apply;
  };
  std::map<std::string, Entry> entries;  // by buffer name: the same order on every data-parallel rank
  void add(const std::string& buffer, const std::vector<double>& values,
           std::function<void(const std::vector<double>&)> apply) {
    Entry& e = entries[buffer];
    if (e.sums.empty()) e.sums.assign(values.size(), 0.0);
    for (std::size_t i = 0; i < values.size() && i < e.sums.size(); ++i) e.sums[i] += values[i];
    e.apply = std::move(apply);
  }
};

struct StepContext {
  explicit StepContext(ActivationStore& s) : store_(&s) {}
  // Where this microbatch's forward saves for its backward.
  ActivationStore& store() const { return *store_; }
  bool training = true;           // false: no activations saved, no dropout
  std::uint64_t seed = 0;         // run seed; dropout masks derive from it, the step and microbatch
  std::int64_t iteration = 0;
  std::int64_t microbatch = 0;
  // d(objective)/d(this microbatch's loss): 1/num_microbatches for gradient accumulation. Losses
  // that fuse their backward into forward (the LM head) need it at forward time.
  float loss_grad_scale = 1.0f;
  // T of this microbatch's [B,T] tokens, set by the model in forward; the pipeline executor hands
  // it to the microbatch's backward step. Under sequence parallelism the activations between
  // tensor-parallel regions are flattened token rows [B·T/tp, C], and blocks that need whole
  // sequences (attention, also when a backward recomputes it) gather them and need T to see [B,T,C].
  std::int64_t seq_length = 0;
  // false: blocks built with sequence parallelism keep replicated activations in this step, as
  // without it. Generation turns it off: its B·T need not divide tp, and it saves no activations
  // that sharding could shrink. Training and evaluation steps leave it on.
  bool allow_sequence_parallel = true;
  // Context parallelism (nn/context_parallel.hpp): the cp group whose ranks split this step's
  // sequences, set by the model for training and evaluation steps (null, or one rank: whole
  // sequences). seq_length is then the rank's share, T/cp.
  std::shared_ptr<Communicator> context_parallel;
  // Generation with a key/value cache (nn/kv_cache.hpp; inference only, training = false): causal
  // self-attention layers write their keys and values there and attend to the cached ones.
  KvCache* kv_cache = nullptr;

  // Set on the last microbatch of an iteration when gradients are reduced across ranks.
  GradReadyListener* grad_listener = nullptr;
  // Where training steps report statistics (null: nobody listens). Modules report from backward,
  // which runs once per microbatch even when recompute runs forward twice.
  StepMetrics* metrics = nullptr;
  // Where training steps report their buffers' statistics (null: nobody listens); from backward too.
  BufferStatistics* buffer_statistics = nullptr;

  // The same step (seed, iteration, microbatch, …: the same dropout masks) saving into `other`:
  // activation recompute runs a layer's forward again into a scratch store. A copy, so that no
  // field can be forgotten.
  StepContext with_store(ActivationStore& other) const {
    StepContext c = *this;
    c.store_ = &other;
    return c;
  }
  // A dropout seed unique to (run seed, iteration, microbatch, site).
  std::uint64_t dropout_seed(std::uint64_t site) const;
  // Modules call this after the last += into p's gradient in backward. A parameter shared by two
  // modules (a tied weight) must not report: the second += would land after its reduction began.
  void grad_ready(Parameter& p) const {
    if (grad_listener) grad_listener->grad_ready(p);
  }

 private:
  ActivationStore* store_;
};

}  // namespace tessera
