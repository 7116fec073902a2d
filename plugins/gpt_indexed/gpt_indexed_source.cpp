// The "gpt_indexed" data plugin: GPT samples from a Megatron-LM indexed dataset (.bin + .idx),
// split into train/valid/test by document ranges ("969,30,1") and indexed as Megatron's GPTDataset
// does (core/include/tessera/data/gpt_dataset.hpp).
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/data/gpt_dataset.hpp"
#include "tessera/dataset.hpp"
#include "tessera/plugin.hpp"

namespace tessera::gpt_indexed {

namespace {

class GptIndexedSource : public DataSource {
 public:
  GptIndexedSource(const std::string& prefix, const std::string& split, bool eod_mask_loss, const DataRequest& r)
      : prefix_(prefix), split_(split) {
    data_ = std::make_shared<const IndexedDataset>(prefix);
    GptDatasetOptions o;
    o.seq_length = r.seq_length;
    o.seed = static_cast<std::uint32_t>(r.seed);
    o.eod_token = r.eod_token;
    o.eod_mask_loss = eod_mask_loss;
    o.vocab_size = r.vocab_size;
    splits_ = build_gpt_splits(data_, split, {r.num_samples[0], r.num_samples[1], r.num_samples[2]}, o);
  }

  const Dataset& split(Split s) const override { return *splits_[static_cast<int>(s)]; }

  std::string describe() const override {
    auto docs = [&](int s) { return splits_[s]->doc_end() - splits_[s]->doc_begin(); };
    return fmt::format("{} ({} documents, {} tokens); split \"{}\": train {} docs / {} samples, valid {} / {}, test {} / {}",
                       prefix_, data_->num_sequences(), data_->total_tokens(), split_, docs(0), splits_[0]->size(),
                       docs(1), splits_[1]->size(), docs(2), splits_[2]->size());
  }

 private:
  std::string prefix_, split_;
  std::shared_ptr<const IndexedDataset> data_;
  std::array<std::unique_ptr<GptDataset>, 3> splits_;
};

std::unique_ptr<DataSource> make_gpt_indexed(const ConfigSection& s, const DataRequest& request) {
  return std::make_unique<GptIndexedSource>(s.get_string("data_path"), s.get_string("split", "969,30,1"),
                                            s.get_bool("eod_mask_loss", false), request);
}

}  // namespace
}  // namespace tessera::gpt_indexed

TESSERA_PLUGIN(data, gpt_indexed, tessera::gpt_indexed::make_gpt_indexed)
