// Megatron-LM's --use-checkpoint-args: [checkpoint] use_checkpoint_args = true takes the model's
// architecture and its tokenizer from the checkpoint at checkpoint.load — the [model] and
// [tokenizer] sections of the config it was saved with — so that a run that resumes, fine-tunes
// (checkpoint.finetune) or evaluates a checkpoint needs no copy of its model keys. The run's own
// training-time [model] keys stay (dropout, initialisation, activation recompute: not what Megatron-LM
// takes from the checkpoint either); every [model] or [tokenizer] value that changes is logged.
//
// Megatron-LM's --use-mp-args-from-checkpoint-args: [checkpoint] use_mp_args_from_checkpoint_args =
// true takes the checkpoint's model-parallel layout — its tensor and pipeline sizes, virtual
// pipeline, split rank and stage split, the [parallel] keys its files follow — so that it resumes
// without restating them; the data-parallel size is what the world size leaves. It works alone or
// with use_checkpoint_args (Megatron-LM reads it only with --use-checkpoint-args).
#pragma once
#include "tessera/config.hpp"

namespace tessera {

// `config` with the checkpoint's [model] and [tokenizer] when checkpoint.use_checkpoint_args is true,
// and its layout keys when checkpoint.use_mp_args_from_checkpoint_args is (values from the
// checkpoint are named as coming from its folder in messages); `config` itself otherwise.
// ConfigError when a key is set without checkpoint.load; the checkpoint's own errors (not found,
// corrupt) name its files.
Config with_checkpoint_args(const Config& config);

}  // namespace tessera
