// Megatron-LM's --use-checkpoint-args: [checkpoint] use_checkpoint_args = true takes the model's
// architecture and its tokenizer from the checkpoint at checkpoint.load — the [model] and
// [tokenizer] sections of the config it was saved with — so that a run that resumes, fine-tunes
// (checkpoint.finetune) or evaluates a checkpoint needs no copy of its model keys. The run's own
// training-time [model] keys stay (dropout, initialisation, activation recompute: not what Megatron-LM
// takes from the checkpoint either); every [model] or [tokenizer] value that changes is logged.
#pragma once
#include "tessera/config.hpp"

namespace tessera {

// `config` with the checkpoint's [model] and [tokenizer] when checkpoint.use_checkpoint_args is true
// (values from the checkpoint are named as coming from its folder in messages); `config` itself
// otherwise. ConfigError when the key is set without checkpoint.load; the checkpoint's own errors
// (not found, corrupt) name its files.
Config with_checkpoint_args(const Config& config);

}  // namespace tessera
