// The tensors of a GPT under Hugging Face's names and layouts and under Tessera's (docs/checkpoints.md
// "Hugging Face export and import" has the table):
//   gpt2         Conv1D weights [in, out] (Tessera's linears are [out, in]: transposed); c_attn = [q; k; v]
//                on the output dim, Tessera's query and key_value ([K of all heads | V of all heads]).
//   gpt_bigcode  Linear [out, in]; multi-query c_attn = [q; k; v] rows, multi-head c_attn = per head
//                [q_h; k_h; v_h] rows (GPTBigCodeAttention's view(…, heads, 3·head_dim)).
//   llama        q/k/v/o_proj, gate_proj/up_proj = the two halves of Tessera's SwiGLU fc1 [x0 | x1]
//                (silu(x0)·x1), down_proj = fc2; RMSNorm weights; untied lm_head. Tessera's
//                non-interleaved rotary layout (rotate_half) is HF's; an interleaved model's q/k rows
//                are permuted into it on export. qwen2 adds q/k/v_proj biases, qwen3 q_norm and k_norm
//                (Tessera's q_layernorm / k_layernorm, permuted with the rows they scale).
//   mixtral      block_sparse_moe.gate = the router, experts.E.w1/w3 = the halves of fc1, w2 = fc2.
//   qwen2_moe,   mlp.gate = the router, mlp.experts.E.gate_proj/up_proj/down_proj as llama's MLP;
//   qwen3_moe    qwen2_moe's mlp.shared_expert.* and mlp.shared_expert_gate [1, C] = Tessera's
//                shared_expert.fc1/fc2 and shared_expert.gate_weight; dense layers as llama's.
// Pure rearrangements: a round trip reproduces every tensor's bytes.
#pragma once
#include <map>
#include <string>

#include "tessera/io/safetensors.hpp"
#include "tessera/tools/hf_config.hpp"

namespace tessera {

// `tessera`: a one-process GPT's tensors by Parameter name, whole, vocabulary rows cut to the real
// vocabulary, f32 on the host. Returns HF's tensors in file order.
NamedTensors hf_tensors_from_tessera(const HfGptShape& shape, const std::map<std::string, Tensor>& tessera);

// The inverse, from a HF model's tensors (f32; names with or without gpt2's "transformer." prefix;
// the attention-mask buffers old GPT-2 files hold are skipped). FormatError naming `where` and the
// tensor for one that is missing, has the wrong shape or is not a parameter of the architecture.
std::map<std::string, Tensor> tessera_tensors_from_hf(const HfGptShape& shape, std::map<std::string, Tensor> hf,
                                                      const std::string& where);

}  // namespace tessera
