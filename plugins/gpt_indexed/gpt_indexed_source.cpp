// The "gpt_indexed" data plugin: GPT samples (tokens, labels, loss_mask; gpt_dataset.hpp) from a
// Megatron-LM indexed dataset (.bin + .idx), split into train/valid/test by document ranges
// ("969,30,1") and indexed as Megatron's GPTDataset does.
#include <fmt/format.h>

#include "gpt_dataset.hpp"
#include "tessera/config.hpp"
#include "tessera/data/document_split.hpp"
#include "tessera/dataset.hpp"
#include "tessera/plugin.hpp"

namespace tessera::gpt_indexed {

namespace {

class GptIndexedSource : public DataSource {
 public:
  // Keeps the settings only: the files are opened by open().
  GptIndexedSource(std::string prefix, std::string split, bool eod_mask_loss, const DataRequest& r)
      : prefix_(std::move(prefix)), split_(std::move(split)), request_(r) {
    options_.seq_length = r.seq_length;
    options_.seed = static_cast<std::uint32_t>(r.seed);
    options_.eod_token = r.eod_token;
    options_.eod_mask_loss = eod_mask_loss;
    options_.vocab_size = r.vocab_size;
    parse_document_split(split_, 0);  // a malformed split is a config error, found before any file is read
  }

  FieldSpecs fields() const override { return gpt_fields(options_.seq_length); }

  void open() override {
    data_ = std::make_shared<const IndexedDataset>(prefix_);
    const DataRequest& r = request_;
    splits_ = build_gpt_splits(data_, split_, {r.num_samples[0], r.num_samples[1], r.num_samples[2]}, options_);
  }

  const Dataset& split(Split s) const override {
    if (!data_) throw Error("data plugin 'gpt_indexed': split() before open()");
    return *splits_[static_cast<int>(s)];
  }

  std::string describe() const override {
    if (!data_) return fmt::format("{} (not opened)", prefix_);
    auto docs = [&](int s) { return splits_[s]->doc_end() - splits_[s]->doc_begin(); };
    return fmt::format("{} ({} documents, {} tokens); split \"{}\": train {} docs / {} samples, valid {} / {}, test {} / {}",
                       prefix_, data_->num_sequences(), data_->total_tokens(), split_, docs(0), splits_[0]->size(),
                       docs(1), splits_[1]->size(), docs(2), splits_[2]->size());
  }

 private:
  std::string prefix_, split_;
  DataRequest request_;
  GptDatasetOptions options_;
  std::shared_ptr<const IndexedDataset> data_;  // set by open()
  std::array<std::unique_ptr<GptDataset>, 3> splits_;
};

std::unique_ptr<DataSource> make_gpt_indexed(const ConfigSection& s, const DataRequest& request) {
  return std::make_unique<GptIndexedSource>(s.get_string("data_path"), s.get_string("split", "969,30,1"),
                                            s.get_bool("eod_mask_loss", false), request);
}

}  // namespace
}  // namespace tessera::gpt_indexed

TESSERA_PLUGIN(data, gpt_indexed, tessera::gpt_indexed::make_gpt_indexed)
