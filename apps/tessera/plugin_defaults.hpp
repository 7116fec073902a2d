// The plugins a config section gets when it names none. Core has no defaults of its own (no core
// file names a concrete plugin): these are the `tessera` command's, listed in docs/configs.md.
#pragma once
#include "tessera/config.hpp"

namespace tessera::app {

// Also the default of `tessera preprocess --tokenizer`.
inline constexpr const char* kDefaultTokenizer = "gpt2_bpe";

// `config` with each missing `plugin` key filled in: [model] gpt, [tokenizer] gpt2_bpe, [data]
// gpt_indexed, [optimizer] adam and, when pipeline_model_parallel_size > 1, [schedule] 1f1b
// (interleaved with a virtual pipeline, as Megatron-LM). The keys then appear in the dumped config.
Config with_plugin_defaults(const Config& config);

}  // namespace tessera::app
