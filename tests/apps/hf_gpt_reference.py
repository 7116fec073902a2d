#!/usr/bin/env python3
"""A Hugging Face model folder read the way transformers reads it, without transformers.

Plain PyTorch GPT-2 (GPT2LMHeadModel), GPTBigCode (GPTBigCodeForCausalLM, multi-query or multi-head)
and Llama (LlamaForCausalLM; MistralForCausalLM with its sliding window, Qwen2ForCausalLM, whose
q/k/v projections have biases, and Qwen3ForCausalLM, whose q and k heads pass RMSNorms before the
rotation, are the same layers; MixtralForCausalLM's MLPs are sparse mixtures of experts, and so are
Qwen2MoeForCausalLM's — with a gated shared expert — and Qwen3MoeForCausalLM's, except the layers
mlp_only_layers and decoder_sparse_step leave dense; GptOssForCausalLM's attention has biases and a
learned sink per head, its experts a clamped gated unit, packed; SmolLM3ForCausalLM skips rotary
positions in the layers no_rope_layers marks 0; Glm4MoeForCausalLM routes by sigmoid scores with a
correction bias in expert groups, adds a shared expert, and rotates part of each head) forward passes written from transformers'
modelling code: its parameter
names, Conv1D's [in, out] weights in gpt2, c_attn's q/k/v split (GPTBigCode's per-head layout
without multi_query), gelu_new (tanh), rotate_half rotary embeddings, repeat_kv for grouped
queries, RMSNorm, SwiGLU, tied or untied heads. Computed in float64.

    hf_gpt_reference.py HF_FOLDER TOKENS LOGITS

TOKENS: comma-separated token ids of one sequence; LOGITS: raw little-endian f32 [T, vocab] from
Tessera, row t the logits after tokens[0..t]. Prints the largest difference relative to the
largest logit and exits 1 when it exceeds 1e-5.

    hf_gpt_reference.py bert HF_FOLDER BATCH LM_LOSS SOP_LOSS

A megatron-bert folder (MegatronBertForPreTraining or MegatronBertForMaskedLM, written from
transformers' modeling_megatron_bert: pre-LayerNorm layers, no embedding LayerNorm, the encoder's
final LayerNorm, the LM head's dense → hidden_act → LayerNorm → tied decoder + bias, the pooler's
tanh and seq_relationship) on BATCH (a safetensors file with tokens, types, labels, loss_mask,
padding_mask and is_random as Tessera's BERT reads them): its masked-LM loss (mean over loss_mask)
and sentence-order loss against Tessera's, each within 1e-5 relative, and the token distributions at
the positions BATCH's "probs:<b·T + t>" give (Tessera's softmax) within 1e-5; exits 1 otherwise.
"""
import json
import math
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def bf16_to_f64(raw, shape):
    """bfloat16 is float32's upper half: widened by shifting the 16 bits up."""
    return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape).astype(np.float64)


def load_safetensors(path, file_format="pt"):
    """The safetensors format: u64 header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    if file_format == "pt":
        assert header.get("__metadata__", {}).get("format") == "pt", "transformers needs metadata format 'pt'"
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        if e["dtype"] == "BF16":
            arr = bf16_to_f64(data[begin:end], e["shape"])
        else:
            arr = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).astype(np.float64)
        out[name] = torch.from_numpy(arr)
    return out


def causal_attention(q, k, v, window=None, sinks=None):
    """q [H,T,D], k/v [H,T,D] → [T, H·D] (softmax(q kᵀ/√D + causal mask) v); with a sliding window W
    (Mistral's sliding_window) query i sees keys i − W < j ≤ i only; with sinks [H] (gpt_oss's
    eager_attention_forward) head h's logit sinks[h] joins each row's softmax and is dropped after."""
    H, T, D = q.shape
    s = q @ k.transpose(-1, -2) / math.sqrt(D)
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    if window:
        s = s.masked_fill(torch.tril(torch.ones(T, T, dtype=torch.bool), -window), float("-inf"))
    if sinks is not None:
        s = torch.cat([s, sinks.reshape(H, 1, 1).expand(H, T, 1)], dim=-1)
        return (torch.softmax(s, dim=-1)[..., :-1] @ v).transpose(0, 1).reshape(T, -1)
    return (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(T, -1)


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_like(cfg, w, ids):
    bigcode = cfg["model_type"] == "gpt_bigcode"
    assert cfg["activation_function"] in ("gelu_new", "gelu_pytorch_tanh", "gelu")
    # HF's "gelu" is torch's exact erf form (Tessera's bias_gelu_fusion = false).
    act = torch.nn.functional.gelu if cfg["activation_function"] == "gelu" else gelu_new
    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    D, T, eps = C // H, len(ids), cfg["layer_norm_epsilon"]
    mq = bigcode and cfg.get("multi_query", True)

    def linear(x, name):  # gpt2's Conv1D: x @ W + b with W [in, out]; GPTBigCode's nn.Linear: x @ Wᵀ + b
        W, b = w[name + ".weight"], w[name + ".bias"]
        return x @ (W.t() if bigcode else W) + b

    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:T]
    for i in range(L):
        p = f"transformer.h.{i}."
        a = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = linear(a, p + "attn.c_attn")
        if not bigcode:  # GPT2Attention: split(embed_dim) into q, k, v; heads from each
            q, k, v = (t.view(T, H, D).transpose(0, 1) for t in qkv.split(C, dim=-1))
        elif mq:  # GPTBigCodeAttention, multi_query: q (C), then one head's k and v
            q, kv = qkv.split((C, 2 * D), dim=-1)
            q = q.view(T, H, D).transpose(0, 1)
            k, v = (t.unsqueeze(0).expand(H, T, D) for t in kv.split(D, dim=-1))
        else:  # GPTBigCodeAttention: view(T, H, 3·D), then split (D, 2·D) and the key_value into k, v
            q, kv = qkv.view(T, H, 3 * D).transpose(0, 1).split((D, 2 * D), dim=-1)
            k, v = kv.split(D, dim=-1)
        x = x + linear(causal_attention(q, k, v), p + "attn.c_proj")
        m = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        x = x + linear(act(linear(m, p + "mlp.c_fc")), p + "mlp.c_proj")
    x = layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    head = w["transformer.wte.weight"] if cfg.get("tie_word_embeddings", True) else w["lm_head.weight"]
    return x @ head.t()


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def yarn_inv_freq(inv_freq, rs, cfg, dim, base):
    """Hugging Face's rope_type "yarn" (_compute_yarn_parameters): each frequency blended between
    itself and itself / factor by a ramp over the pairs between the correction dims of beta_fast and
    beta_slow turns in the original context; cos and sin times attention_factor. The factor as
    config.json says: with original_max_position_embeddings, max_position_embeddings must be factor ×
    it, where transformers versions that take the factor from that ratio agree."""
    factor = rs["factor"]
    original = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
    assert "original_max_position_embeddings" not in rs or cfg["max_position_embeddings"] == factor * original

    def get_mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
    attention_factor = rs.get("attention_factor")
    if attention_factor is None:
        m, m_all = rs.get("mscale"), rs.get("mscale_all_dim")
        attention_factor = get_mscale(factor, m) / get_mscale(factor, m_all) if m and m_all else get_mscale(factor)

    def correction_dim(rotations):
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))
    low, high = correction_dim(rs.get("beta_fast") or 32), correction_dim(rs.get("beta_slow") or 1)
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    extrapolation = 1 - ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    return inv_freq / factor * (1 - extrapolation) + inv_freq * extrapolation, attention_factor


def llama3_inv_freq(inv_freq, rs):
    """Hugging Face's rope_type "llama3" (Llama 3.1, 3.2): long wavelengths divided by the factor,
    short ones kept, the band between blended."""
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_len = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    out = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
    return torch.where(medium, smoothed, out)


def sparse_moe(cfg, w, p, m):
    """MixtralSparseMoeBlock: softmax over the router's logits, the top num_experts_per_tok, their
    weights renormalised to sum to 1, each expert w2(silu(w1 x) · w3 x)."""
    assert not cfg.get("router_jitter_noise")
    probs = (m @ w[p + "gate.weight"].t()).softmax(-1)
    weights, chosen = torch.topk(probs, cfg["num_experts_per_tok"], dim=-1)
    weights = weights / weights.sum(-1, keepdim=True)
    out = torch.zeros_like(m)
    for e in range(cfg["num_local_experts"]):
        e_p = f"{p}experts.{e}."
        expert = torch.nn.functional.silu(m @ w[e_p + "w1.weight"].t()) * (m @ w[e_p + "w3.weight"].t())
        expert = expert @ w[e_p + "w2.weight"].t()
        out = out + ((chosen == e) * weights).sum(-1, keepdim=True) * expert
    return out


def qwen_sparse_moe(cfg, w, p, m):
    """Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock: the softmax over all experts' logits, its top
    num_experts_per_tok entries (renormalised only with norm_topk_prob), each expert
    down_proj(silu(gate_proj x) · up_proj x); qwen2_moe adds sigmoid(shared_expert_gate x) times the
    shared expert."""
    probs = (m @ w[p + "gate.weight"].t()).softmax(-1)
    weights, chosen = torch.topk(probs, cfg["num_experts_per_tok"], dim=-1)
    if cfg.get("norm_topk_prob", False):
        weights = weights / weights.sum(-1, keepdim=True)
    out = torch.zeros_like(m)
    for e in range(cfg["num_experts"]):
        out = out + ((chosen == e) * weights).sum(-1, keepdim=True) * swiglu(w, f"{p}experts.{e}.", m)
    if cfg["model_type"] == "qwen2_moe":
        gate = torch.sigmoid(m @ w[p + "shared_expert_gate.weight"].t())
        out = out + gate * swiglu(w, p + "shared_expert.", m)
    return out


FP4_VALUES = [+0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def gpt_oss_expert_weight(w, name):
    """name, or its MXFP4 form as transformers' convert_moe_packed_tensors reads it: the E2M1 values
    of each byte's low then high nibble, times 2^(scale − 127) per row of 32, the result transposed."""
    if name in w:
        return w[name]
    blocks, scales = w[name + "_blocks"].long(), w[name + "_scales"].long() - 127
    *prefix, G, B = blocks.shape
    lut = torch.tensor(FP4_VALUES, dtype=torch.float64)
    out = torch.empty(*prefix, G, 2 * B, dtype=torch.float64)
    out[..., 0::2] = lut[blocks & 0x0F]
    out[..., 1::2] = lut[blocks >> 4]
    out = torch.ldexp(out, scales.unsqueeze(-1).double())
    return out.reshape(*prefix, G * 2 * B).transpose(1, 2)


def gpt_oss_moe(cfg, w, p, m):
    """GptOssMLP: the router's logits (with its bias), their top num_experts_per_tok softmaxed; each
    expert's packed gate_up_proj [C, 2F] (gate and up columns interleaved) with its bias, the gate
    clamped above at 7 and up at ±7, (up + 1) · gate · σ(1.702 · gate), then down_proj [F, C] and its
    bias (GptOssExperts)."""
    logits = m @ w[p + "router.weight"].t() + w[p + "router.bias"]
    top, chosen = torch.topk(logits, cfg["num_experts_per_tok"], dim=-1)
    weights = top.softmax(-1)
    out = torch.zeros_like(m)
    gate_up_proj, down_proj = (gpt_oss_expert_weight(w, p + n) for n in ("experts.gate_up_proj", "experts.down_proj"))
    for e in range(cfg["num_local_experts"]):
        gate_up = m @ gate_up_proj[e] + w[p + "experts.gate_up_proj_bias"][e]
        gate, up = gate_up[..., ::2].clamp(max=7.0), gate_up[..., 1::2].clamp(min=-7.0, max=7.0)
        y = ((up + 1) * gate * torch.sigmoid(gate * 1.702)) @ down_proj[e]
        out = out + ((chosen == e) * weights).sum(-1, keepdim=True) * (y + w[p + "experts.down_proj_bias"][e])
    return out


def glm4_moe_sparse(cfg, w, p, m):
    """Glm4MoeMoE: sigmoid scores of the gate; the choice by scores + e_score_correction_bias among the
    topk_group best of n_group groups (each scored by its two best, the others masked to 0.0); the
    chosen unbiased scores renormalised (norm_topk_prob) times routed_scaling_factor; each expert
    SwiGLU; plus the shared_experts MLP on every token."""
    scores = torch.sigmoid(m @ w[p + "gate.weight"].t())
    choice = scores + w[p + "gate.e_score_correction_bias"]
    E, k, G = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg.get("n_group", 1)
    group_scores = choice.view(-1, G, E // G).topk(2, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, k=cfg.get("topk_group", 1), dim=-1)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
    chosen = torch.topk(choice.masked_fill(score_mask == 0, 0.0), k=k, dim=-1)[1]
    weights = scores.gather(1, chosen)
    if cfg.get("norm_topk_prob", True):
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    weights = weights * cfg.get("routed_scaling_factor", 1.0)
    out = torch.zeros_like(m)
    for e in range(E):
        out = out + ((chosen == e) * weights).sum(-1, keepdim=True) * swiglu(w, f"{p}experts.{e}.", m)
    return out + swiglu(w, p + "shared_experts.", m)


def swiglu(w, p, m):
    return (torch.nn.functional.silu(m @ w[p + "gate_proj.weight"].t()) * (m @ w[p + "up_proj.weight"].t())) @ w[
        p + "down_proj.weight"
    ].t()


def qwen_sparse_layer(cfg, i):
    """Qwen2MoeDecoderLayer's choice: sparse unless listed in mlp_only_layers, every decoder_sparse_step-th."""
    return i not in cfg.get("mlp_only_layers", []) and (i + 1) % cfg.get("decoder_sparse_step", 1) == 0


def llama(cfg, w, ids):
    rs = cfg.get("rope_scaling")
    assert (cfg["hidden_act"] == "silu" or cfg["model_type"] == "starcoder2") and (
        rs is None or rs["rope_type"] in ("llama3", "linear", "yarn"))
    C, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    G = cfg.get("num_key_value_heads", H)
    kind = cfg["model_type"]
    starcoder2 = kind == "starcoder2"  # Starcoder2: LayerNorms with biases, a GELU MLP, use_bias
    D, T = cfg.get("head_dim", 128 if kind == "qwen3" else C // H), len(ids)
    eps = cfg["norm_epsilon"] if starcoder2 else cfg["rms_norm_eps"]

    def norm(x, name):
        if starcoder2:
            return layer_norm(x, w[name + ".weight"], w[name + ".bias"], eps)
        return rms_norm(x, w[name + ".weight"], eps)
    # Phi-3's and GLM-4.5's rotary_ndims: rope on the first R channels (Glm4MoeConfig's default 0.5)
    R = int(D * cfg.get("partial_rotary_factor", 0.5 if kind == "glm4_moe" else 1.0))
    inv_freq = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, R, 2, dtype=torch.float64) / R))
    positions = torch.arange(T, dtype=torch.float64)
    if rs is not None and rs["rope_type"] == "llama3":
        inv_freq = llama3_inv_freq(inv_freq, rs)
    if rs is not None and rs["rope_type"] == "linear":  # LlamaLinearScalingRotaryEmbedding: t / factor
        positions = positions / rs["factor"]
    magnitude = 1.0
    if rs is not None and rs["rope_type"] == "yarn":
        inv_freq, magnitude = yarn_inv_freq(inv_freq, rs, cfg, R, cfg.get("rope_theta", 10000.0))
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * magnitude, emb.sin() * magnitude

    def rope(t):  # [heads, T, D]: the first R channels rotated, the rest passed
        rot, rest = t[..., :R], t[..., R:]
        return torch.cat((rot * cos + rotate_half(rot) * sin, rest), dim=-1)

    window = cfg.get("sliding_window") if kind in ("mistral", "mixtral", "phi3", "starcoder2") else None
    assert kind != "llama" or not cfg.get("sliding_window")
    # The Qwens (Qwen2Config and its kin): sliding_window only with use_sliding_window, and then in the
    # layers layer_types marks "sliding_attention" — by default those from max_window_layers (28) on.
    layer_types = [None] * L
    if kind.startswith("qwen") and cfg.get("use_sliding_window", False) and cfg.get("sliding_window") is not None:
        window = cfg["sliding_window"]
        layer_types = cfg.get("layer_types") or [
            "sliding_attention" if i >= cfg.get("max_window_layers", 28) else "full_attention" for i in range(L)]
    gpt_oss = kind == "gpt_oss"  # GptOssConfig: layer_types (alternating from a window) with sliding_window
    if gpt_oss:
        window = cfg.get("sliding_window", 128)
        layer_types = cfg.get("layer_types") or [
            "sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(L)]
    assert not cfg.get("attention_bias", False) or gpt_oss or kind == "glm4_moe"  # glm4_moe's: q, k, v only
    # Qwen3Attention (Glm4MoeAttention with use_qk_norm): q_norm / k_norm over each head, before rope
    qk_norm = kind in ("qwen3", "qwen3_moe") or (kind == "glm4_moe" and cfg.get("use_qk_norm", False))

    def heads(a, name, n):  # the projection as [n, T, D], normalised per head in qwen3
        if kind == "phi3":  # Phi3Attention: one qkv_proj, split [q (H·D) | k (G·D) | v (G·D)]
            qkv = a @ w[p + "self_attn.qkv_proj.weight"].t()
            start = {"q": 0, "k": H * D, "v": (H + G) * D}[name]
            return qkv[..., start:start + n * D].view(T, n, D).transpose(0, 1)
        y = proj(a, p + f"self_attn.{name}_proj").view(T, n, D)
        if qk_norm and name in "qk":
            y = rms_norm(y, w[p + f"self_attn.{name}_norm.weight"], eps)
        return y.transpose(0, 1)

    def proj(a, name):  # qwen2's q_proj, k_proj and v_proj have biases
        y = a @ w[name + ".weight"].t()
        return y + w[name + ".bias"] if name + ".bias" in w else y

    # SmolLM3Attention's use_rope = no_rope_layers[i] (else a NoPE layer every no_rope_layer_interval-th).
    use_rope = [1] * L
    if kind == "smollm3":
        assert not cfg.get("use_sliding_window", False)
        interval = cfg.get("no_rope_layer_interval", 4)
        use_rope = cfg.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(L)]

    x = w["model.embed_tokens.weight"][ids]
    for i in range(L):
        p = f"model.layers.{i}."
        a = norm(x, p + "input_layernorm")
        q, k, v = heads(a, "q", H), heads(a, "k", G), heads(a, "v", G)
        if use_rope[i]:
            q, k = rope(q), rope(k)
        k, v = (t.repeat_interleave(H // G, dim=0) for t in (k, v))  # repeat_kv: head h reads group h // (H/G)
        layer_window = None if layer_types[i] == "full_attention" else window
        sinks = w[p + "self_attn.sinks"] if gpt_oss else None
        x = x + proj(causal_attention(q, k, v, layer_window, sinks), p + "self_attn.o_proj")
        m = norm(x, p + "post_attention_layernorm")
        if starcoder2:  # Starcoder2MLP: c_proj(act(c_fc(x)))
            x = x + proj(hf_gelu(cfg)(proj(m, p + "mlp.c_fc")), p + "mlp.c_proj")
        elif kind == "mixtral":
            x = x + sparse_moe(cfg, w, p + "block_sparse_moe.", m)
        elif gpt_oss:
            x = x + gpt_oss_moe(cfg, w, p + "mlp.", m)
        elif kind == "glm4_moe" and i >= cfg.get("first_k_dense_replace", 1):
            x = x + glm4_moe_sparse(cfg, w, p + "mlp.", m)
        elif kind in ("qwen2_moe", "qwen3_moe") and qwen_sparse_layer(cfg, i):
            x = x + qwen_sparse_moe(cfg, w, p + "mlp.", m)
        elif kind == "phi3":  # Phi3MLP: gate_up_proj's output chunked into gate, up
            gate, up = (m @ w[p + "mlp.gate_up_proj.weight"].t()).chunk(2, dim=-1)
            x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].t()
        else:
            x = x + swiglu(w, p + "mlp.", m)
    x = norm(x, "model.norm")
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.t()


def hf_gelu(cfg):
    return gelu_new if cfg["hidden_act"] in ("gelu_new", "gelu_pytorch_tanh") else torch.nn.functional.gelu


def megatron_bert(cfg, w, batch):
    """MegatronBertForPreTraining's (or ForMaskedLM's) losses: masked LM over loss_mask, sentence order."""
    assert cfg.get("position_embedding_type", "absolute") == "absolute"
    act = hf_gelu(cfg)
    C, H, L, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
    D = C // H
    tokens, types = batch["tokens"].long(), batch["types"].long()
    B, T = tokens.shape
    keep = batch["padding_mask"] > 0
    e = "bert.embeddings."
    x = w[e + "word_embeddings.weight"][tokens] + w[e + "position_embeddings.weight"][:T]
    # MegatronBertForMaskedLM is given no token types (zeros); the pretraining model reads them.
    pretraining = "cls.seq_relationship.weight" in w
    x = x + w[e + "token_type_embeddings.weight"][types if pretraining else torch.zeros_like(types)]
    # get_extended_attention_mask: (1 − mask) · finfo.min added to every query's scores of a padded key.
    additive = (~keep).double()[:, None, None, :] * torch.finfo(torch.float64).min

    def linear(a, name):
        return a @ w[name + ".weight"].t() + w[name + ".bias"]

    def ln(a, name):
        return layer_norm(a, w[name + ".weight"], w[name + ".bias"], eps)

    for i in range(L):
        p = f"bert.encoder.layer.{i}."
        a = ln(x, p + "attention.ln")
        q, k, v = (linear(a, p + f"attention.self.{n}").view(B, T, H, D).transpose(1, 2) for n in ("query", "key", "value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(D) + additive
        ctx = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(ctx, p + "attention.output.dense")
        m = ln(x, p + "ln")
        x = x + linear(act(linear(m, p + "intermediate.dense")), p + "output.dense")
    x = ln(x, "bert.encoder.ln")
    h = ln(act(linear(x, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
    logits = h @ w[e + "word_embeddings.weight"].t() + w["cls.predictions.bias"]
    mask = batch["loss_mask"].reshape(-1)
    losses = torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), batch["labels"].long().reshape(-1).clamp(min=0),
                                               reduction="none")
    lm = ((losses * mask).sum() / mask.sum()).item()
    # Tessera's whole distribution at some positions ("probs:<b·T + t>"): the largest difference.
    probs = logits.reshape(B * T, -1).softmax(-1)
    worst = max(((probs[int(k.split(":")[1])] - v).abs().max().item() for k, v in batch.items() if k.startswith("probs:")),
                default=0.0)
    sop = 0.0
    if pretraining:
        pooled = torch.tanh(linear(x[:, 0], "bert.pooler.dense"))
        order = linear(pooled, "cls.seq_relationship")
        sop = torch.nn.functional.cross_entropy(order, batch["is_random"].long().reshape(-1)).item()
    return lm, sop, worst


def bert_main(folder, batch_path, lm_tessera, sop_tessera):
    cfg = json.load(open(f"{folder}/config.json"))
    assert cfg["model_type"] == "megatron-bert"
    lm, sop, worst = megatron_bert(cfg, load_safetensors(f"{folder}/model.safetensors"),
                                   load_safetensors(batch_path, "tessera"))
    rel = max(abs(lm - lm_tessera) / abs(lm), abs(sop - sop_tessera) / abs(sop) if sop else abs(sop_tessera))
    print(f"megatron-bert: lm loss {lm:.8f} (Tessera {lm_tessera:.8f}), sop loss {sop:.8f} (Tessera {sop_tessera:.8f}), "
          f"largest relative difference {rel:.3g}; token probabilities at most {worst:.3g} apart")
    sys.exit(0 if rel <= 1e-5 and worst <= 1e-5 else 1)


def main():
    if sys.argv[1] == "bert":
        bert_main(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    folder, tokens, logits_path = sys.argv[1:4]
    cfg = json.load(open(f"{folder}/config.json"))
    w = load_safetensors(f"{folder}/model.safetensors")
    ids = torch.tensor([int(t) for t in tokens.split(",")])
    llama_family = ("llama", "mistral", "qwen2", "qwen3", "phi3", "starcoder2", "mixtral", "qwen2_moe", "qwen3_moe",
                    "gpt_oss", "smollm3", "glm4_moe")
    ref = (llama if cfg["model_type"] in llama_family else gpt2_like)(cfg, w, ids)
    ours = torch.from_numpy(np.fromfile(logits_path, dtype="<f4").astype(np.float64)).view(len(ids), -1)
    assert ours.shape == ref.shape, f"Tessera's logits {tuple(ours.shape)}, the HF model's {tuple(ref.shape)}"
    rel = ((ours - ref).abs().max() / ref.abs().max()).item()
    print(f"{cfg['model_type']}: {ref.shape[0]} positions × {ref.shape[1]} logits, max |Tessera − HF| / max |HF| = {rel:.3g}")
    sys.exit(0 if rel <= 1e-5 else 1)


if __name__ == "__main__":
    main()
