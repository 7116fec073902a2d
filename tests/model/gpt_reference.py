"""The same GPT as plugins/gpt, written plainly in PyTorch, for tests/model/test_gpt_reference.cpp.

Reads <dir>/tessera.safetensors (weights under Tessera's names, the batch, the model shape) and
writes <dir>/torch.safetensors with the loss and every parameter's gradient, computed in float64 (and
stored as float32) so that the comparison measures Tessera's error, not PyTorch's.
"""
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import reference_io  # noqa: E402


def main(directory):
    t = reference_io.load(f"{directory}/tessera.safetensors")
    L, C, H, G = (int(x) for x in t["shape"][:4])
    eps = 1e-5
    params = {k: v.double().requires_grad_(True) for k, v in t.items() if k not in ("shape", "tokens", "labels", "loss_mask")}
    tokens, labels, mask = t["tokens"].long(), t["labels"].long(), t["loss_mask"].double()
    B, T = tokens.shape
    D = C // H
    p = params

    x = p["embedding.word_embeddings.weight"][tokens] + p["embedding.position_embeddings.weight"][torch.arange(T)]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(L):
        n = f"layers.{i}"
        a = F.layer_norm(x, (C,), p[f"{n}.ln1.weight"], p[f"{n}.ln1.bias"], eps)
        q = F.linear(a, p[f"{n}.attention.query.weight"], p[f"{n}.attention.query.bias"]).view(B, T, H, D)
        kv = F.linear(a, p[f"{n}.attention.key_value.weight"], p[f"{n}.attention.key_value.bias"])
        k = kv[..., : G * D].reshape(B, T, G, D).repeat_interleave(H // G, dim=2)
        v = kv[..., G * D:].reshape(B, T, G, D).repeat_interleave(H // G, dim=2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # [B,H,T,D]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(~causal, float("-inf"))
        ctx = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + F.linear(ctx, p[f"{n}.attention.output.weight"], p[f"{n}.attention.output.bias"])
        m = F.layer_norm(x, (C,), p[f"{n}.ln2.weight"], p[f"{n}.ln2.bias"], eps)
        m = F.gelu(F.linear(m, p[f"{n}.mlp.fc1.weight"], p[f"{n}.mlp.fc1.bias"]), approximate="tanh")
        x = x + F.linear(m, p[f"{n}.mlp.fc2.weight"], p[f"{n}.mlp.fc2.bias"])
    x = F.layer_norm(x, (C,), p["final_layernorm.weight"], p["final_layernorm.bias"], eps)
    logits = x @ p["embedding.word_embeddings.weight"].t()  # tied head, padded vocabulary
    losses = F.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), reduction="none")
    loss = (losses * mask.reshape(-1)).sum() / mask.sum()
    loss.backward()
    out = {"loss": loss.detach().reshape(1)}
    out.update({f"grad:{k}": v.grad for k, v in params.items()})
    reference_io.save(f"{directory}/torch.safetensors", {k: v.float() for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
