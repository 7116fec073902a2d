// A small real corpus for trainer tests — byte tokens (ids 0..255, EOD 256) of the C++ sources in
// core/src/nn, one document per file, written once per test program as "training_corpus" — and the
// small byte-level GPT those tests train on it.
#pragma once
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/data/indexed_dataset.hpp"

inline std::string training_corpus() {
  static const std::string prefix = [] {
    const std::string p = "training_corpus";
    tessera::IndexedDatasetWriter w(p, tessera::IndexDtype::u16);
    int docs = 0;
    // Sorted: directory order is up to the file system, and the samples should not be.
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(TESSERA_SOURCE_DIR) / "core/src/nn"))
      files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f);
      std::stringstream ss;
      ss << in.rdbuf();
      std::vector<std::int32_t> ids;
      for (unsigned char c : ss.str()) ids.push_back(c);
      ids.push_back(256);
      w.add_document(ids);
      ++docs;
    }
    w.finalize();
    REQUIRE(docs >= 5);
    return p;
  }();
  return prefix;
}

// [model], [tokenizer] and [data] of a small byte-level GPT on training_corpus(); `model_extra` is
// appended to [model]. The caller adds [training], [optimizer], ….
inline std::string small_gpt_sections(int num_layers, const std::string& model_extra = "") {
  return fmt::format(R"(
[model]
plugin = "gpt"
num_layers = {}
hidden_size = 32
num_attention_heads = 4
num_query_groups = 2
seq_length = 24
hidden_dropout = 0.1
{}
[tokenizer]
plugin = "byte"
[data]
plugin = "gpt_indexed"
data_path = "{}"
split = "90,10,0"
)", num_layers, model_extra, training_corpus());
}

// The whole config of a short run of that GPT on `device` (2 microbatches of 2, Adam, seed 7);
// `training_extra` is appended to [training] (e.g. a precision).
inline std::string small_gpt_run(int num_layers, const std::string& device, std::int64_t train_iters,
                                 const std::string& training_extra = "", const std::string& model_extra = "") {
  return small_gpt_sections(num_layers, model_extra) + fmt::format(R"(
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = {}
eval_interval = 0
seed = 7
num_threads = 2
device = "{}"
{}
[optimizer]
plugin = "adam"
lr = 3e-3
[logging]
log_interval = 100
)", train_iters, device, training_extra);
}
