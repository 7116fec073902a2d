#include "tessera/tools/hf_weights.hpp"

#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "hf_common.hpp"
#include "tessera/error.hpp"
#include "tessera/quote.hpp"

namespace tessera {

namespace {

using Order = std::vector<std::int64_t>;

std::int64_t row_numel(const Tensor& t) { return t.size(0) == 0 ? 0 : t.numel() / t.size(0); }

Tensor transpose2(const Tensor& t) {
  const std::int64_t a = t.size(0), b = t.size(1);
  Tensor out = Tensor::empty({b, a});
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  for (std::int64_t i = 0; i < a; ++i)
    for (std::int64_t j = 0; j < b; ++j) dst[j * a + i] = src[i * b + j];
  return out;
}

using hf::cat_rows;
using hf::slice_rows;

// 1 + γ: a LayerNorm1P weight (apply_layernorm_1p) as a plain LayerNorm's.
Tensor plus_one(const Tensor& t) {
  Tensor out = t.clone();
  for (std::int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] += 1.0f;
  return out;
}

// out row i = t row order[i]
Tensor permute_rows(const Tensor& t, const Order& order) {
  Tensor out = Tensor::empty(t.shape());
  const std::size_t row = static_cast<std::size_t>(row_numel(t)) * sizeof(float);
  for (std::size_t i = 0; i < order.size(); ++i)
    std::memcpy(static_cast<char*>(out.raw()) + i * row, static_cast<const char*>(t.raw()) + order[i] * row, row);
  return out;
}

Order inverse(const Order& order) {
  Order inv(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) inv[static_cast<std::size_t>(order[i])] = static_cast<std::int64_t>(i);
  return inv;
}

// Tessera's interleaved rotary pairs (2j, 2j+1) of each head → HF's rotate_half pairs (j, j + D/2).
Order rotary_to_hf(std::int64_t heads, std::int64_t D) {
  Order order;
  for (std::int64_t h = 0; h < heads; ++h) {
    for (std::int64_t j = 0; j < D / 2; ++j) order.push_back(h * D + 2 * j);
    for (std::int64_t j = 0; j < D / 2; ++j) order.push_back(h * D + 2 * j + 1);
  }
  return order;
}

// [q (H·D rows); k (H·D); v (H·D)] → per head [q_h; k_h; v_h] (GPTBigCode without multi_query).
Order bigcode_heads(std::int64_t heads, std::int64_t D) {
  Order order;
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t part = 0; part < 3; ++part)
      for (std::int64_t i = 0; i < D; ++i) order.push_back(part * heads * D + h * D + i);
  return order;
}

std::string layer(std::int64_t i, const char* rest) { return fmt::format("layers.{}.{}", i, rest); }

// The shared expert's name in a layer: qwen2_moe's shared_expert, glm4_moe's shared_experts.
std::string shared_expert_prefix(const HfGptShape& s) {
  return s.glm4_moe() ? "mlp.shared_experts." : "mlp.shared_expert.";
}

// A SwiGLU MLP's fc1 [gate; up] (each F rows) and fc2 as HF's gate_proj, up_proj and down_proj under
// `theirs` (llama's MLPs, the Qwen MoEs' experts and shared expert).
void swiglu_to_hf(NamedTensors& out, const std::string& theirs, const Tensor& fc1, const Tensor& fc2, std::int64_t F) {
  out.emplace_back(theirs + "gate_proj.weight", slice_rows(fc1, 0, F));
  out.emplace_back(theirs + "up_proj.weight", slice_rows(fc1, F, 2 * F));
  out.emplace_back(theirs + "down_proj.weight", fc2);
}

// gpt_oss's packed experts against Tessera's per-expert MLPs (E experts of ffn F on width C). HF:
// gate_up_proj [E, C, 2F], x @ it giving gate (even columns) and up (odd columns) interleaved, with
// gate_up_proj_bias [E, 2F] alike; down_proj [E, F, C] (x @ it) and down_proj_bias [E, C]. Tessera:
// fc1.weight [2F, C] rows [gate; up] and fc1.bias [2F], fc2.weight [C, F] and fc2.bias [C].
struct GptOssExperts {
  Tensor gate_up, gate_up_bias, down, down_bias;
};

GptOssExperts pack_gpt_oss_experts(std::int64_t E, std::int64_t F, std::int64_t C,
                                   const std::function<const Tensor&(std::int64_t e, const char* part)>& expert) {
  GptOssExperts h{Tensor::empty({E, C, 2 * F}), Tensor::empty({E, 2 * F}), Tensor::empty({E, F, C}),
                  Tensor::empty({E, C})};
  for (std::int64_t e = 0; e < E; ++e) {
    const float *w1 = expert(e, "fc1.weight").data<float>(), *b1 = expert(e, "fc1.bias").data<float>();
    const float *w2 = expert(e, "fc2.weight").data<float>(), *b2 = expert(e, "fc2.bias").data<float>();
    float* gu = h.gate_up.data<float>() + e * C * 2 * F;
    float* gub = h.gate_up_bias.data<float>() + e * 2 * F;
    for (std::int64_t j = 0; j < 2 * F; ++j) {  // HF column j: gate j/2 (even j) or up j/2 (odd j)
      const std::int64_t row = (j % 2 == 0 ? 0 : F) + j / 2;
      for (std::int64_t c = 0; c < C; ++c) gu[c * 2 * F + j] = w1[row * C + c];
      gub[j] = b1[row];
    }
    float* d = h.down.data<float>() + e * F * C;
    for (std::int64_t f = 0; f < F; ++f)
      for (std::int64_t c = 0; c < C; ++c) d[f * C + c] = w2[c * F + f];
    std::memcpy(h.down_bias.data<float>() + e * C, b2, static_cast<std::size_t>(C) * sizeof(float));
  }
  return h;
}

// OpenAI's MXFP4 experts (the OCP microscaling format; transformers' convert_moe_packed_tensors): a
// weight [E, A, B] stored transposed as `<name>_blocks` u8 [E, B, A/32, 16], two E2M1 values a byte
// (low nibble first) along A, and `<name>_scales` u8 [E, B, A/32], each group of 32 values scaled
// by 2^(scale − 127). Dequantized exactly into f32.
Tensor dequantize_mxfp4(std::map<std::string, Tensor>& hf, const std::string& name, std::int64_t E, std::int64_t A,
                        std::int64_t B, const std::string& where, const std::string& architecture) {
  static constexpr float kE2M1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                      -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  if (A % 32 != 0)
    throw FormatError(fmt::format("{}: tensor '{}_blocks' quantizes rows of {} values, not a multiple of MXFP4's "
                                  "groups of 32",
                                  where, name, A));
  const std::int64_t G = A / 32;
  const Tensor blocks = hf::take_tensor(hf, name + "_blocks", {E, B, G, 16}, where, architecture);
  const Tensor scales = hf::take_tensor(hf, name + "_scales", {E, B, G}, where, architecture);
  for (const auto& [t, part] : {std::pair<const Tensor*, const char*>{&blocks, "_blocks"}, {&scales, "_scales"}})
    if (t->dtype() != DType::u8)
      throw FormatError(fmt::format("{}: tensor '{}{}' is {}, expected MXFP4's bytes (U8)", where, name, part,
                                    dtype_name(t->dtype())));
  Tensor out = Tensor::empty({E, A, B});
  const std::uint8_t *q = blocks.data<std::uint8_t>(), *s = scales.data<std::uint8_t>();
  float* o = out.data<float>();
  for (std::int64_t e = 0; e < E; ++e)
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t g = 0; g < G; ++g) {
        const int exponent = static_cast<int>(s[(e * B + b) * G + g]) - 127;
        const std::uint8_t* bytes = q + ((e * B + b) * G + g) * 16;
        for (std::int64_t i = 0; i < 16; ++i) {
          const std::int64_t a = g * 32 + 2 * i;
          o[(e * A + a) * B + b] = std::ldexp(kE2M1[bytes[i] & 0x0F], exponent);
          o[(e * A + a + 1) * B + b] = std::ldexp(kE2M1[bytes[i] >> 4], exponent);
        }
      }
  return out;
}

// The inverse: expert e's fc1/fc2 weights and biases, named by `name(e, part)`.
void unpack_gpt_oss_experts(const GptOssExperts& h, std::int64_t E, std::int64_t F, std::int64_t C,
                            std::map<std::string, Tensor>& out,
                            const std::function<std::string(std::int64_t e, const char* part)>& name) {
  for (std::int64_t e = 0; e < E; ++e) {
    Tensor w1 = Tensor::empty({2 * F, C}), b1 = Tensor::empty({2 * F}), w2 = Tensor::empty({C, F}),
           b2 = Tensor::empty({C});
    const float* gu = h.gate_up.data<float>() + e * C * 2 * F;
    const float* gub = h.gate_up_bias.data<float>() + e * 2 * F;
    for (std::int64_t j = 0; j < 2 * F; ++j) {
      const std::int64_t row = (j % 2 == 0 ? 0 : F) + j / 2;
      for (std::int64_t c = 0; c < C; ++c) w1.data<float>()[row * C + c] = gu[c * 2 * F + j];
      b1.data<float>()[row] = gub[j];
    }
    const float* d = h.down.data<float>() + e * F * C;
    for (std::int64_t f = 0; f < F; ++f)
      for (std::int64_t c = 0; c < C; ++c) w2.data<float>()[c * F + f] = d[f * C + c];
    std::memcpy(b2.data<float>(), h.down_bias.data<float>() + e * C, static_cast<std::size_t>(C) * sizeof(float));
    out[name(e, "fc1.weight")] = w1;
    out[name(e, "fc1.bias")] = b1;
    out[name(e, "fc2.weight")] = w2;
    out[name(e, "fc2.bias")] = b2;
  }
}

}  // namespace

NamedTensors hf_tensors_from_tessera(const HfGptShape& s, const std::map<std::string, Tensor>& tessera) {
  const auto get = [&](const std::string& name) -> const Tensor& {
    auto it = tessera.find(name);
    if (it == tessera.end()) throw Error(fmt::format("the model has no parameter '{}' for {}", name, s.architecture));
    return it->second;
  };
  const std::int64_t D = s.head_dim(), C = s.hidden;
  NamedTensors out;
  if (s.llama()) {
    out.emplace_back("model.embed_tokens.weight", get("embedding.word_embeddings.weight"));
    for (std::int64_t i = 0; i < s.layers; ++i) {
      const std::string p = fmt::format("model.layers.{}.", i);
      const Tensor& kv = get(layer(i, "attention.key_value.weight"));
      Tensor q = get(layer(i, "attention.query.weight")), k = slice_rows(kv, 0, s.groups * D),
             v = slice_rows(kv, s.groups * D, 2 * s.groups * D);
      // qwen2's biases on q, k and v (Tessera's add_qkv_bias), rotated with their rows.
      Tensor qb, kb, vb;
      if (s.qkv_bias) {
        const Tensor& kvb = get(layer(i, "attention.key_value.bias"));
        qb = get(layer(i, "attention.query.bias"));
        kb = slice_rows(kvb, 0, s.groups * D);
        vb = slice_rows(kvb, s.groups * D, 2 * s.groups * D);
      }
      if (s.rotary_interleaved) {
        q = permute_rows(q, rotary_to_hf(s.heads, D));
        k = permute_rows(k, rotary_to_hf(s.groups, D));
        if (s.qkv_bias) {
          qb = permute_rows(qb, rotary_to_hf(s.heads, D));
          kb = permute_rows(kb, rotary_to_hf(s.groups, D));
        }
      }
      out.emplace_back(p + "input_layernorm.weight", get(layer(i, "ln1.weight")));
      if (s.starcoder2()) out.emplace_back(p + "input_layernorm.bias", get(layer(i, "ln1.bias")));
      if (s.phi3()) {  // one qkv_proj [q; k; v] and one gate_up_proj: Tessera's SwiGLU fc1 as it is
        out.emplace_back(p + "self_attn.qkv_proj.weight", cat_rows({q, k, v}));
        out.emplace_back(p + "self_attn.o_proj.weight", get(layer(i, "attention.output.weight")));
        out.emplace_back(p + "post_attention_layernorm.weight", get(layer(i, "ln2.weight")));
        out.emplace_back(p + "mlp.gate_up_proj.weight", get(layer(i, "mlp.fc1.weight")));
        out.emplace_back(p + "mlp.down_proj.weight", get(layer(i, "mlp.fc2.weight")));
        continue;
      }
      out.emplace_back(p + "self_attn.q_proj.weight", q);
      if (s.qkv_bias) out.emplace_back(p + "self_attn.q_proj.bias", qb);
      out.emplace_back(p + "self_attn.k_proj.weight", k);
      if (s.qkv_bias) out.emplace_back(p + "self_attn.k_proj.bias", kb);
      out.emplace_back(p + "self_attn.v_proj.weight", v);
      if (s.qkv_bias) out.emplace_back(p + "self_attn.v_proj.bias", vb);
      out.emplace_back(p + "self_attn.o_proj.weight", get(layer(i, "attention.output.weight")));
      if (s.linear_bias) out.emplace_back(p + "self_attn.o_proj.bias", get(layer(i, "attention.output.bias")));
      if (s.has_qk_norm()) {  // qwen3's norms over each head's channels, permuted with the rows they scale
        Tensor qn = get(layer(i, "attention.q_layernorm.weight")), kn = get(layer(i, "attention.k_layernorm.weight"));
        if (s.rotary_interleaved) {
          qn = permute_rows(qn, rotary_to_hf(1, D));
          kn = permute_rows(kn, rotary_to_hf(1, D));
        }
        out.emplace_back(p + "self_attn.q_norm.weight", qn);
        out.emplace_back(p + "self_attn.k_norm.weight", kn);
      }
      if (s.gpt_oss()) out.emplace_back(p + "self_attn.sinks", get(layer(i, "attention.softmax_offset")));
      out.emplace_back(p + "post_attention_layernorm.weight", get(layer(i, "ln2.weight")));
      if (s.starcoder2()) {  // LayerNorm's bias; the GELU MLP as c_fc, c_proj
        out.emplace_back(p + "post_attention_layernorm.bias", get(layer(i, "ln2.bias")));
        out.emplace_back(p + "mlp.c_fc.weight", get(layer(i, "mlp.fc1.weight")));
        if (s.linear_bias) out.emplace_back(p + "mlp.c_fc.bias", get(layer(i, "mlp.fc1.bias")));
        out.emplace_back(p + "mlp.c_proj.weight", get(layer(i, "mlp.fc2.weight")));
        if (s.linear_bias) out.emplace_back(p + "mlp.c_proj.bias", get(layer(i, "mlp.fc2.bias")));
        continue;
      }
      if (s.gpt_oss()) {  // the router with its bias; the experts packed
        out.emplace_back(p + "mlp.router.weight", get(layer(i, "mlp.router.weight")));
        out.emplace_back(p + "mlp.router.bias", get(layer(i, "mlp.router.bias")));
        const GptOssExperts h = pack_gpt_oss_experts(s.experts, s.expert_ffn, C, [&](std::int64_t e, const char* part) -> const Tensor& {
          return get(fmt::format("layers.{}.mlp.experts.{}.{}", i, e, part));
        });
        out.emplace_back(p + "mlp.experts.gate_up_proj", h.gate_up);
        out.emplace_back(p + "mlp.experts.gate_up_proj_bias", h.gate_up_bias);
        out.emplace_back(p + "mlp.experts.down_proj", h.down);
        out.emplace_back(p + "mlp.experts.down_proj_bias", h.down_bias);
        continue;
      }
      // SwiGLU's fc1 is [gate; up]: llama's gate_proj and up_proj, each mixtral expert's w1 and w3.
      if (s.mixtral()) {
        out.emplace_back(p + "block_sparse_moe.gate.weight", get(layer(i, "mlp.router.weight")));
        for (std::int64_t e = 0; e < s.experts; ++e) {
          const std::string ours = fmt::format("layers.{}.mlp.experts.{}.", i, e);
          const std::string theirs = fmt::format("{}block_sparse_moe.experts.{}.", p, e);
          const Tensor& fc1 = get(ours + "fc1.weight");
          out.emplace_back(theirs + "w1.weight", slice_rows(fc1, 0, s.expert_ffn));
          out.emplace_back(theirs + "w2.weight", get(ours + "fc2.weight"));
          out.emplace_back(theirs + "w3.weight", slice_rows(fc1, s.expert_ffn, 2 * s.expert_ffn));
        }
        continue;
      }
      if (s.moe_layer(i)) {  // the Qwen MoEs and glm4_moe: gate, experts.E, the shared expert
        out.emplace_back(p + "mlp.gate.weight", get(layer(i, "mlp.router.weight")));
        if (s.glm4_moe()) {  // the expert bias (zeros for a router without one)
          const auto bias = tessera.find(layer(i, "mlp.router.expert_bias"));
          out.emplace_back(p + "mlp.gate.e_score_correction_bias",
                           bias != tessera.end() ? bias->second : Tensor::zeros({s.experts}));
        }
        for (std::int64_t e = 0; e < s.experts; ++e) {
          const std::string ours = fmt::format("layers.{}.mlp.experts.{}.", i, e);
          swiglu_to_hf(out, fmt::format("{}mlp.experts.{}.", p, e), get(ours + "fc1.weight"), get(ours + "fc2.weight"),
                       s.expert_ffn);
        }
        if (s.shared_ffn > 0) {  // qwen2_moe's shared_expert with its gate, glm4_moe's shared_experts
          swiglu_to_hf(out, p + shared_expert_prefix(s), get(layer(i, "mlp.shared_expert.fc1.weight")),
                       get(layer(i, "mlp.shared_expert.fc2.weight")), s.shared_ffn);
          if (!s.glm4_moe())
            out.emplace_back(p + "mlp.shared_expert_gate.weight", get(layer(i, "mlp.shared_expert.gate_weight")));
        }
        continue;
      }
      swiglu_to_hf(out, p + "mlp.", get(layer(i, "mlp.fc1.weight")), get(layer(i, "mlp.fc2.weight")), s.ffn);
    }
    out.emplace_back("model.norm.weight", get("final_layernorm.weight"));
    if (s.starcoder2()) out.emplace_back("model.norm.bias", get("final_layernorm.bias"));
    if (!s.tied) out.emplace_back("lm_head.weight", get("output_layer.weight"));
    return out;
  }
  const bool conv1d = s.architecture == "gpt2";  // Conv1D: [in, out]
  const auto lin = [&](const Tensor& w) { return conv1d ? transpose2(w) : w; };
  const auto norm_weight = [&](const std::string& name) { return s.layernorm_1p ? plus_one(get(name)) : get(name); };
  out.emplace_back("transformer.wte.weight", get("embedding.word_embeddings.weight"));
  out.emplace_back("transformer.wpe.weight", get("embedding.position_embeddings.weight"));
  for (std::int64_t i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("transformer.h.{}.", i);
    Tensor qkv_w = cat_rows({get(layer(i, "attention.query.weight")), get(layer(i, "attention.key_value.weight"))});
    Tensor qkv_b = cat_rows({get(layer(i, "attention.query.bias")), get(layer(i, "attention.key_value.bias"))});
    if (!conv1d && s.groups != 1) {
      qkv_w = permute_rows(qkv_w, bigcode_heads(s.heads, D));
      qkv_b = permute_rows(qkv_b, bigcode_heads(s.heads, D));
    }
    out.emplace_back(p + "ln_1.weight", norm_weight(layer(i, "ln1.weight")));
    out.emplace_back(p + "ln_1.bias", get(layer(i, "ln1.bias")));
    out.emplace_back(p + "attn.c_attn.weight", lin(qkv_w));
    out.emplace_back(p + "attn.c_attn.bias", qkv_b);
    out.emplace_back(p + "attn.c_proj.weight", lin(get(layer(i, "attention.output.weight"))));
    out.emplace_back(p + "attn.c_proj.bias", get(layer(i, "attention.output.bias")));
    out.emplace_back(p + "ln_2.weight", norm_weight(layer(i, "ln2.weight")));
    out.emplace_back(p + "ln_2.bias", get(layer(i, "ln2.bias")));
    out.emplace_back(p + "mlp.c_fc.weight", lin(get(layer(i, "mlp.fc1.weight"))));
    out.emplace_back(p + "mlp.c_fc.bias", get(layer(i, "mlp.fc1.bias")));
    out.emplace_back(p + "mlp.c_proj.weight", lin(get(layer(i, "mlp.fc2.weight"))));
    out.emplace_back(p + "mlp.c_proj.bias", get(layer(i, "mlp.fc2.bias")));
  }
  out.emplace_back("transformer.ln_f.weight", norm_weight("final_layernorm.weight"));
  out.emplace_back("transformer.ln_f.bias", get("final_layernorm.bias"));
  if (!s.tied) out.emplace_back("lm_head.weight", get("output_layer.weight"));
  (void)C;
  return out;
}

std::map<std::string, Tensor> tessera_tensors_from_hf(const HfGptShape& s, std::map<std::string, Tensor> hf,
                                                      const std::string& where) {
  const bool llama = s.llama();
  // gpt2 files from the Hub name the base model's tensors without "transformer."; save_pretrained adds it.
  if (!llama) {
    std::map<std::string, Tensor> renamed;
    for (auto& [name, t] : hf) {
      const bool base = name.rfind("transformer.", 0) != 0 && name != "lm_head.weight";
      renamed[base ? "transformer." + name : name] = std::move(t);
    }
    hf = std::move(renamed);
  }
  const auto take = [&](const std::string& name, const Shape& shape) {
    return hf::take_tensor(hf, name, shape, where, s.architecture);
  };
  const std::int64_t D = s.head_dim(), C = s.hidden, V = s.vocab, F = s.ffn, EF = s.expert_ffn, H = s.heads,
                     G = s.groups;
  std::map<std::string, Tensor> out;
  if (llama) {
    out["embedding.word_embeddings.weight"] = take("model.embed_tokens.weight", {V, C});
    for (std::int64_t i = 0; i < s.layers; ++i) {
      const std::string p = fmt::format("model.layers.{}.", i);
      out[layer(i, "ln1.weight")] = take(p + "input_layernorm.weight", {C});
      if (s.starcoder2()) out[layer(i, "ln1.bias")] = take(p + "input_layernorm.bias", {C});
      hf.erase(p + "self_attn.rotary_emb.inv_freq");  // a buffer older transformers saved
      if (s.phi3()) {
        const Tensor qkv = take(p + "self_attn.qkv_proj.weight", {(H + 2 * G) * D, C});
        out[layer(i, "attention.query.weight")] = slice_rows(qkv, 0, H * D);
        out[layer(i, "attention.key_value.weight")] = slice_rows(qkv, H * D, (H + 2 * G) * D);
        out[layer(i, "attention.output.weight")] = take(p + "self_attn.o_proj.weight", {C, H * D});
        out[layer(i, "ln2.weight")] = take(p + "post_attention_layernorm.weight", {C});
        out[layer(i, "mlp.fc1.weight")] = take(p + "mlp.gate_up_proj.weight", {2 * F, C});
        out[layer(i, "mlp.fc2.weight")] = take(p + "mlp.down_proj.weight", {C, F});
        continue;
      }
      out[layer(i, "attention.query.weight")] = take(p + "self_attn.q_proj.weight", {H * D, C});
      Tensor k = take(p + "self_attn.k_proj.weight", {G * D, C}), v = take(p + "self_attn.v_proj.weight", {G * D, C});
      out[layer(i, "attention.key_value.weight")] = cat_rows({k, v});
      if (s.qkv_bias) {
        out[layer(i, "attention.query.bias")] = take(p + "self_attn.q_proj.bias", {H * D});
        Tensor kb = take(p + "self_attn.k_proj.bias", {G * D}), vb = take(p + "self_attn.v_proj.bias", {G * D});
        out[layer(i, "attention.key_value.bias")] = cat_rows({kb, vb});
      }
      out[layer(i, "attention.output.weight")] = take(p + "self_attn.o_proj.weight", {C, H * D});
      if (s.linear_bias) out[layer(i, "attention.output.bias")] = take(p + "self_attn.o_proj.bias", {C});
      if (s.has_qk_norm()) {
        out[layer(i, "attention.q_layernorm.weight")] = take(p + "self_attn.q_norm.weight", {D});
        out[layer(i, "attention.k_layernorm.weight")] = take(p + "self_attn.k_norm.weight", {D});
      }
      if (s.gpt_oss()) out[layer(i, "attention.softmax_offset")] = take(p + "self_attn.sinks", {H});
      out[layer(i, "ln2.weight")] = take(p + "post_attention_layernorm.weight", {C});
      if (s.starcoder2()) {
        out[layer(i, "ln2.bias")] = take(p + "post_attention_layernorm.bias", {C});
        out[layer(i, "mlp.fc1.weight")] = take(p + "mlp.c_fc.weight", {F, C});
        out[layer(i, "mlp.fc2.weight")] = take(p + "mlp.c_proj.weight", {C, F});
        if (s.linear_bias) {
          out[layer(i, "mlp.fc1.bias")] = take(p + "mlp.c_fc.bias", {F});
          out[layer(i, "mlp.fc2.bias")] = take(p + "mlp.c_proj.bias", {C});
        }
        continue;
      }
      // HF's gate_proj, up_proj, down_proj under `theirs` (F rows each) as Tessera's fc1, fc2 under `ours`.
      const auto swiglu = [&](const std::string& ours, const std::string& theirs, std::int64_t rows) {
        Tensor gate = take(theirs + "gate_proj.weight", {rows, C}), up = take(theirs + "up_proj.weight", {rows, C});
        out[ours + "fc1.weight"] = cat_rows({gate, up});
        out[ours + "fc2.weight"] = take(theirs + "down_proj.weight", {C, rows});
      };
      if (s.gpt_oss()) {
        out[layer(i, "mlp.router.weight")] = take(p + "mlp.router.weight", {s.experts, C});
        out[layer(i, "mlp.router.bias")] = take(p + "mlp.router.bias", {s.experts});
        // [E, A, B], or OpenAI's MXFP4 form of it.
        const auto experts_weight = [&](const std::string& name, std::int64_t A, std::int64_t B) {
          if (hf.count(name + "_blocks") || hf.count(name + "_scales"))
            return dequantize_mxfp4(hf, name, s.experts, A, B, where, s.architecture);
          return take(name, {s.experts, A, B});
        };
        const GptOssExperts h{experts_weight(p + "mlp.experts.gate_up_proj", C, 2 * EF),
                              take(p + "mlp.experts.gate_up_proj_bias", {s.experts, 2 * EF}),
                              experts_weight(p + "mlp.experts.down_proj", EF, C),
                              take(p + "mlp.experts.down_proj_bias", {s.experts, C})};
        unpack_gpt_oss_experts(h, s.experts, EF, C, out, [&](std::int64_t e, const char* part) {
          return fmt::format("layers.{}.mlp.experts.{}.{}", i, e, part);
        });
        continue;
      }
      // transformers 5's packed experts (files saved with save_original_format = false, and newer
      // releases): mlp.experts.gate_up_proj [E, 2F, C], each expert's [gate; up] (Tessera's fc1), and
      // mlp.experts.down_proj [E, C, F]; Mixtral's block_sparse_moe is mlp there too.
      // The router of the Qwen MoEs and glm4_moe, with glm4_moe's expert bias.
      const auto router = [&] {
        out[layer(i, "mlp.router.weight")] = take(p + "mlp.gate.weight", {s.experts, C});
        if (s.glm4_moe())
          out[layer(i, "mlp.router.expert_bias")] = take(p + "mlp.gate.e_score_correction_bias", {s.experts});
      };
      // The shared expert: qwen2_moe's with its gate, glm4_moe's.
      const auto shared = [&] {
        if (s.shared_ffn == 0) return;
        swiglu(layer(i, "mlp.shared_expert."), p + shared_expert_prefix(s), s.shared_ffn);
        if (!s.glm4_moe())
          out[layer(i, "mlp.shared_expert.gate_weight")] = take(p + "mlp.shared_expert_gate.weight", {1, C});
      };
      if (s.moe_layer(i) && hf.count(p + "mlp.experts.gate_up_proj")) {
        router();
        const Tensor gate_up = take(p + "mlp.experts.gate_up_proj", {s.experts, 2 * EF, C});
        const Tensor down = take(p + "mlp.experts.down_proj", {s.experts, C, EF});
        for (std::int64_t e = 0; e < s.experts; ++e) {
          const std::string ours = fmt::format("layers.{}.mlp.experts.{}.", i, e);
          out[ours + "fc1.weight"] = gate_up.rows(e, e + 1).reshape({2 * EF, C}).clone();
          out[ours + "fc2.weight"] = down.rows(e, e + 1).reshape({C, EF}).clone();
        }
        shared();
        continue;
      }
      if (s.mixtral()) {
        out[layer(i, "mlp.router.weight")] = take(p + "block_sparse_moe.gate.weight", {s.experts, C});
        for (std::int64_t e = 0; e < s.experts; ++e) {
          const std::string ours = fmt::format("layers.{}.mlp.experts.{}.", i, e);
          const std::string theirs = fmt::format("{}block_sparse_moe.experts.{}.", p, e);
          Tensor gate = take(theirs + "w1.weight", {EF, C}), up = take(theirs + "w3.weight", {EF, C});
          out[ours + "fc1.weight"] = cat_rows({gate, up});
          out[ours + "fc2.weight"] = take(theirs + "w2.weight", {C, EF});
        }
        continue;
      }
      if (s.moe_layer(i)) {
        router();
        for (std::int64_t e = 0; e < s.experts; ++e)
          swiglu(fmt::format("layers.{}.mlp.experts.{}.", i, e), fmt::format("{}mlp.experts.{}.", p, e), EF);
        shared();
        continue;
      }
      swiglu(layer(i, "mlp."), p + "mlp.", F);
    }
    out["final_layernorm.weight"] = take("model.norm.weight", {C});
    if (s.starcoder2()) out["final_layernorm.bias"] = take("model.norm.bias", {C});
  } else {
    const bool conv1d = s.architecture == "gpt2";
    const auto lin = [&](const std::string& name, std::int64_t out_features, std::int64_t in_features) {
      return conv1d ? transpose2(take(name, {in_features, out_features})) : take(name, {out_features, in_features});
    };
    out["embedding.word_embeddings.weight"] = take("transformer.wte.weight", {V, C});
    out["embedding.position_embeddings.weight"] = take("transformer.wpe.weight", {s.positions, C});
    const std::int64_t qkv = C + 2 * G * D;
    for (std::int64_t i = 0; i < s.layers; ++i) {
      const std::string p = fmt::format("transformer.h.{}.", i);
      out[layer(i, "ln1.weight")] = take(p + "ln_1.weight", {C});
      out[layer(i, "ln1.bias")] = take(p + "ln_1.bias", {C});
      Tensor w = lin(p + "attn.c_attn.weight", qkv, C), b = take(p + "attn.c_attn.bias", {qkv});
      if (!conv1d && G != 1) {
        w = permute_rows(w, inverse(bigcode_heads(H, D)));
        b = permute_rows(b, inverse(bigcode_heads(H, D)));
      }
      out[layer(i, "attention.query.weight")] = slice_rows(w, 0, C);
      out[layer(i, "attention.query.bias")] = slice_rows(b, 0, C);
      out[layer(i, "attention.key_value.weight")] = slice_rows(w, C, qkv);
      out[layer(i, "attention.key_value.bias")] = slice_rows(b, C, qkv);
      out[layer(i, "attention.output.weight")] = lin(p + "attn.c_proj.weight", C, C);
      out[layer(i, "attention.output.bias")] = take(p + "attn.c_proj.bias", {C});
      out[layer(i, "ln2.weight")] = take(p + "ln_2.weight", {C});
      out[layer(i, "ln2.bias")] = take(p + "ln_2.bias", {C});
      out[layer(i, "mlp.fc1.weight")] = lin(p + "mlp.c_fc.weight", F, C);
      out[layer(i, "mlp.fc1.bias")] = take(p + "mlp.c_fc.bias", {F});
      out[layer(i, "mlp.fc2.weight")] = lin(p + "mlp.c_proj.weight", C, F);
      out[layer(i, "mlp.fc2.bias")] = take(p + "mlp.c_proj.bias", {C});
      hf.erase(p + "attn.bias");         // the causal-mask buffers of older GPT-2 files
      hf.erase(p + "attn.masked_bias");
    }
    out["final_layernorm.weight"] = take("transformer.ln_f.weight", {C});
    out["final_layernorm.bias"] = take("transformer.ln_f.bias", {C});
  }
  if (!s.tied) {
    out["output_layer.weight"] = take("lm_head.weight", {V, C});
  } else if (auto it = hf.find("lm_head.weight"); it != hf.end()) {
    // A tied head saved anyway must be the embedding.
    const Tensor& wte = out.at("embedding.word_embeddings.weight");
    if (it->second.shape() != wte.shape() || std::memcmp(it->second.raw(), wte.raw(), wte.nbytes()) != 0)
      throw FormatError(fmt::format("{}: tensor 'lm_head.weight' differs from the token embedding, but config.json "
                                    "has tie_word_embeddings = true",
                                    where));
    hf.erase(it);
  }
  if (!hf.empty())
    throw FormatError(fmt::format("{}: tensor {} is not a parameter of a {} model ({} such tensor(s))", where,
                                  quote_untrusted(hf.begin()->first), s.architecture, hf.size()));
  return out;
}

}  // namespace tessera
