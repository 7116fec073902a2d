"""A TransformerBlock written plainly in PyTorch, for tests/nn/test_transformer_block.cpp.

Reads <dir>/tessera.safetensors: the block's parameters under Tessera's names, its inputs (x, dy and,
as the spec asks, key_mask, memory, memory_mask) and its shape [layers, first_layer, C, H, G, kind,
cross, final_norm] (kind 0 causal, 1 padding-masked self-attention). Writes <dir>/torch.safetensors
with y and the gradients of (y · dy).sum() with respect to x, the memory and every parameter,
computed in float64 (stored as float32) so that the comparison measures Tessera's error.
"""
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import reference_io  # noqa: E402

INPUTS = ("shape", "x", "dy", "key_mask", "memory", "memory_mask")


def attention(p, n, x, source, C, H, G, causal, key_mask):
    """x [B,T,C] attends to source [B,Tk,C]; key_mask [B,Tk] bool or None."""
    B, T, _ = x.shape
    Tk = source.shape[1]
    D = C // H
    q = F.linear(x, p[f"{n}.query.weight"], p[f"{n}.query.bias"]).view(B, T, H, D)
    kv = F.linear(source, p[f"{n}.key_value.weight"], p[f"{n}.key_value.bias"])
    k = kv[..., : G * D].reshape(B, Tk, G, D).repeat_interleave(H // G, dim=2)
    v = kv[..., G * D:].reshape(B, Tk, G, D).repeat_interleave(H // G, dim=2)
    q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # [B,H,·,D]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    if causal:
        s = s.masked_fill(~torch.ones(T, Tk, dtype=torch.bool).tril(), float("-inf"))
    if key_mask is not None:
        s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    ctx = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D)
    return F.linear(ctx, p[f"{n}.output.weight"], p[f"{n}.output.bias"])


def main(directory):
    t = reference_io.load(f"{directory}/tessera.safetensors")
    L, first, C, H, G, kind, cross, final_norm = (int(v) for v in t["shape"])
    eps = 1e-5
    p = {k: v.double().requires_grad_(True) for k, v in t.items() if k not in INPUTS}
    x = t["x"].double().requires_grad_(True)
    memory = t["memory"].double().requires_grad_(True) if cross else None
    key_mask = t["key_mask"].bool() if kind == 1 else None
    memory_mask = t["memory_mask"].bool() if cross and "memory_mask" in t else None

    def norm(name, h):
        return F.layer_norm(h, (C,), p[f"{name}.weight"], p[f"{name}.bias"], eps)

    h = x
    for i in range(first, first + L):
        n = f"layers.{i}"
        h = h + attention(p, f"{n}.attention", norm(f"{n}.ln1", h), norm(f"{n}.ln1", h), C, H, G, kind == 0, key_mask)
        if cross:
            h = h + attention(p, f"{n}.cross_attention", norm(f"{n}.cross_ln", h), memory, C, H, G, False, memory_mask)
        m = F.gelu(F.linear(norm(f"{n}.ln2", h), p[f"{n}.mlp.fc1.weight"], p[f"{n}.mlp.fc1.bias"]), approximate="tanh")
        h = h + F.linear(m, p[f"{n}.mlp.fc2.weight"], p[f"{n}.mlp.fc2.bias"])
    if final_norm:
        h = norm("final_layernorm", h)
    (h * t["dy"].double()).sum().backward()
    out = {"y": h.detach(), "grad:x": x.grad}
    if cross:
        out["grad:memory"] = memory.grad
    out.update({f"grad:{k}": v.grad for k, v in p.items()})
    reference_io.save(f"{directory}/torch.safetensors", {k: v.float().contiguous() for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
