"""The same BERT as plugins/bert, written plainly in PyTorch, for tests/model/test_bert_reference.cpp.

Reads <dir>/tessera.safetensors (weights under Tessera's names, the batch, the model shape) and
writes <dir>/torch.safetensors with the loss, its two terms and every parameter's gradient, in
float64 (stored as float32). Attention ignores padded keys; labels −1 are not predicted. The shape's
sixth and seventh values: residuals from the norms' outputs (Megatron-LM's
--apply-residual-connection-post-layernorm), and the MLP's exact erf GELU (--no-bias-gelu-fusion).
"""
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import reference_io  # noqa: E402

BATCH = ("shape", "tokens", "types", "labels", "loss_mask", "padding_mask", "is_random")


def main(directory):
    t = reference_io.load(f"{directory}/tessera.safetensors")
    L, C, H, binary = (int(x) for x in t["shape"][:4])
    eps = 1e-5
    p = {k: v.double().requires_grad_(True) for k, v in t.items() if k not in BATCH}
    tokens, labels, mask = t["tokens"].long(), t["labels"].long(), t["loss_mask"].double()
    keep = t["padding_mask"].bool()  # [B,T]
    B, T = tokens.shape
    D = int(t["shape"][4])  # channels per head (kv_channels): the attention projections are H·D wide
    post = len(t["shape"]) > 5 and bool(t["shape"][5])
    gelu = "none" if len(t["shape"]) > 6 and bool(t["shape"][6]) else "tanh"
    # BertLMHead: F.gelu (erf), or openai_gelu (tanh) with --openai-gelu
    head_gelu = "tanh" if len(t["shape"]) > 7 and bool(t["shape"][7]) else "none"

    x = p["embedding.word_embeddings.weight"][tokens] + p["embedding.position_embeddings.weight"][torch.arange(T)]
    if binary:
        x = x + p["embedding.tokentype_embeddings.weight"][t["types"].long()]
    for i in range(L):
        n = f"layers.{i}"
        a = F.layer_norm(x, (C,), p[f"{n}.ln1.weight"], p[f"{n}.ln1.bias"], eps)
        q = F.linear(a, p[f"{n}.attention.query.weight"], p[f"{n}.attention.query.bias"]).view(B, T, H, D)
        kv = F.linear(a, p[f"{n}.attention.key_value.weight"], p[f"{n}.attention.key_value.bias"])
        k = kv[..., : H * D].reshape(B, T, H, D)
        v = kv[..., H * D:].reshape(B, T, H, D)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # [B,H,T,D]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
        ctx = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D)
        x = (a if post else x) + F.linear(ctx, p[f"{n}.attention.output.weight"], p[f"{n}.attention.output.bias"])
        a2 = F.layer_norm(x, (C,), p[f"{n}.ln2.weight"], p[f"{n}.ln2.bias"], eps)
        m = F.gelu(F.linear(a2, p[f"{n}.mlp.fc1.weight"], p[f"{n}.mlp.fc1.bias"]), approximate=gelu)
        x = (a2 if post else x) + F.linear(m, p[f"{n}.mlp.fc2.weight"], p[f"{n}.mlp.fc2.bias"])
    x = F.layer_norm(x, (C,), p["final_layernorm.weight"], p["final_layernorm.bias"], eps)

    h = F.gelu(F.linear(x, p["lm_head.dense.weight"], p["lm_head.dense.bias"]), approximate=head_gelu)
    h = F.layer_norm(h, (C,), p["lm_head.layernorm.weight"], p["lm_head.layernorm.bias"], eps)
    logits = h @ p["embedding.word_embeddings.weight"].t() + p["lm_head.bias"]  # padded vocabulary
    flat = mask.reshape(-1)
    losses = F.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1).clamp(min=0), reduction="none")
    lm = (losses * flat).sum() / flat.sum()
    sop = torch.zeros((), dtype=torch.float64)
    if binary:
        pooled = torch.tanh(F.linear(x[:, 0], p["pooler.dense.weight"], p["pooler.dense.bias"]))
        order = F.linear(pooled, p["binary_head.weight"], p["binary_head.bias"])
        sop = F.cross_entropy(order, t["is_random"].long().reshape(-1))
    loss = lm + sop
    loss.backward()
    out = {"loss": loss.detach().reshape(1), "lm": lm.detach().reshape(1), "sop": sop.detach().reshape(1)}
    out.update({f"grad:{k}": v.grad for k, v in p.items()})
    reference_io.save(f"{directory}/torch.safetensors", {k: v.float() for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
