// A data plugin for tests, "synthetic": GPT-style samples computed from the index (no files), with
// keys that change the fields it declares, so tests can drive the trainer's batch-field check:
//   labels = false          no "labels" field
//   loss_mask_dtype = "i32" "loss_mask" declared as i32 instead of f32
//   token_types = true      an extra i32[T] field the model does not read (as BERT's data has)
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/dataset.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"

namespace {

using namespace tessera;

class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(std::int64_t size, const DataRequest& r, const FieldSpecs& fields)
      : size_(size), request_(r), fields_(fields) {}
  std::int64_t size() const override { return size_; }
  void sample(std::int64_t index, const SampleView& out) const override {
    const std::int64_t T = request_.seq_length, V = std::min<std::int64_t>(request_.vocab_size, 250);
    auto token = [&](std::int64_t k) { return static_cast<std::int32_t>((index * 31 + k * 7 + (k * k) % 5) % V); };
    for (const FieldSpec& f : fields_) {
      if (f.name == "loss_mask") {
        for (float& m : out.get<float>("loss_mask")) m = 1.0f;
        continue;
      }
      std::span<std::int32_t> v = out.get<std::int32_t>(f.name);
      for (std::int64_t k = 0; k < T; ++k)
        v[static_cast<std::size_t>(k)] = f.name == "tokens" ? token(k) : f.name == "labels" ? token(k + 1) : 0;
    }
  }

 private:
  std::int64_t size_;
  DataRequest request_;
  FieldSpecs fields_;
};

class SyntheticSource : public DataSource {
 public:
  SyntheticSource(const ConfigSection& s, const DataRequest& r) : request_(r) {
    const std::int64_t T = r.seq_length;
    fields_.push_back({"tokens", DType::i32, {T}});
    if (s.get_bool("labels", true)) fields_.push_back({"labels", DType::i32, {T}});
    const std::string mask = s.get_choice("loss_mask_dtype", "f32", {"f32", "i32"});
    fields_.push_back({"loss_mask", mask == "f32" ? DType::f32 : DType::i32, {T}});
    if (s.get_bool("token_types", false)) fields_.push_back({"token_types", DType::i32, {T}});
  }
  FieldSpecs fields() const override { return fields_; }
  void open() override {
    for (int s = 0; s < 3; ++s)
      splits_.push_back(std::make_unique<SyntheticDataset>(request_.num_samples[s], request_, fields_));
  }
  const Dataset& split(Split s) const override {
    if (splits_.empty()) throw Error("synthetic: split() before open()");
    return *splits_[static_cast<std::size_t>(s)];
  }
  std::string describe() const override { return fmt::format("synthetic ({} fields)", fields_.size()); }

 private:
  DataRequest request_;
  FieldSpecs fields_;
  std::vector<std::unique_ptr<SyntheticDataset>> splits_;
};

std::unique_ptr<DataSource> make_synthetic(const ConfigSection& s, const DataRequest& r) {
  return std::make_unique<SyntheticSource>(s, r);
}

}  // namespace

TESSERA_PLUGIN(data, synthetic, make_synthetic)
