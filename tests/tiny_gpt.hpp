// A tiny GPT (2 layers, hidden 32, 4 heads, sequence 16, init std 0.2 so that logits differ clearly)
// built straight from the gpt plugin in one process, for the generation tests. `extra`: more [model]
// keys (GQA, Llama-style blocks, …), every one of which must be read.
#pragma once
#include <cstdint>
#include <string>

#include "tessera/config.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"

namespace tessera::test {

inline PluginPtr<Model> make_tiny_gpt(std::int64_t vocab, const std::string& extra = "") {
  Config config = Config::from_string(R"(
[model]
plugin = "gpt"
num_layers = 2
hidden_size = 32
num_attention_heads = 4
seq_length = 16
make_vocab_size_divisible_by = 8
init_method_std = 0.2
)" + extra);
  auto model = create_plugin<Model>("model", config.section("model").get_string("plugin"), config.section("model"),
                                    ModelContext{vocab, 5, nullptr});
  config.check_no_unknown_keys();
  return model;
}

}  // namespace tessera::test
