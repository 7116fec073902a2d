"""The same T5 as plugins/t5, written plainly in PyTorch, for tests/model/test_t5_reference.cpp.

Reads <dir>/tessera.safetensors (weights under Tessera's names, the batch, the model shape) and
writes <dir>/torch.safetensors with the loss and every parameter's gradient, in float64 (stored as
float32). One word embedding for encoder input, decoder input and output (+ a per-vocabulary bias),
one position table for both; the encoder's self-attention ignores padded keys, the decoder's is
causal (and, as Megatron-LM's, blind to padded decoder keys, which plugins/t5 need not be: the
same loss and gradients) and its cross-attention ignores the encoder's padded positions; labels −1 are not predicted.
"""
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import reference_io  # noqa: E402

BATCH = ("shape", "enc_tokens", "dec_tokens", "labels", "loss_mask", "enc_padding_mask", "dec_padding_mask")


def main(directory):
    t = reference_io.load(f"{directory}/tessera.safetensors")
    Le, Ld, C, H = (int(x) for x in t["shape"][:4])
    eps = 1e-5
    p = {k: v.double().requires_grad_(True) for k, v in t.items() if k not in BATCH}
    enc, dec = t["enc_tokens"].long(), t["dec_tokens"].long()
    labels, mask = t["labels"].long(), t["loss_mask"].double()
    keep = t["enc_padding_mask"].bool()  # [B,Te]
    dec_keep = t["dec_padding_mask"].bool()  # [B,Td]
    B, Te = enc.shape
    Td = dec.shape[1]
    D = int(t["shape"][4])  # channels per head (kv_channels): the attention projections are H·D wide
    # Megatron-LM's --apply-residual-connection-post-layernorm (every sublayer adds its norm's output,
    # the decoder's cross-attention too) and --no-bias-gelu-fusion (the MLP's erf GELU).
    post = len(t["shape"]) > 5 and bool(t["shape"][5])
    gelu = "none" if len(t["shape"]) > 6 and bool(t["shape"][6]) else "tanh"
    wte, wpe = p["embedding.word_embeddings.weight"], p["embedding.position_embeddings.weight"]

    def ln(x, name):
        return F.layer_norm(x, (C,), p[f"{name}.weight"], p[f"{name}.bias"], eps)

    def linear(x, name):
        return F.linear(x, p[f"{name}.weight"], p[f"{name}.bias"])

    def attention(x, memory, name, key_keep=None, causal=False):
        Tq, Tk = x.shape[1], memory.shape[1]
        q = linear(x, f"{name}.query").view(B, Tq, H, D).transpose(1, 2)
        kv = linear(memory, f"{name}.key_value")
        k = kv[..., : H * D].reshape(B, Tk, H, D).transpose(1, 2)
        v = kv[..., H * D:].reshape(B, Tk, H, D).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)  # [B,H,Tq,Tk]
        if key_keep is not None:
            s = s.masked_fill(~key_keep[:, None, None, :], float("-inf"))
        if causal:
            s = s.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool).triu(1), float("-inf"))
        ctx = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, Tq, H * D)
        return linear(ctx, f"{name}.output")

    def mlp(x, name):
        return linear(F.gelu(linear(x, f"{name}.fc1"), approximate=gelu), f"{name}.fc2")

    def residual(x, normed):  # what a sublayer adds its output to
        return normed if post else x

    x = wte[enc] + wpe[torch.arange(Te)]
    for i in range(Le):
        n = f"encoder.layers.{i}"
        a = ln(x, f"{n}.ln1")
        x = residual(x, a) + attention(a, a, f"{n}.attention", key_keep=keep)
        a2 = ln(x, f"{n}.ln2")
        x = residual(x, a2) + mlp(a2, f"{n}.mlp")
    memory = ln(x, "encoder.final_layernorm")

    y = wte[dec] + wpe[torch.arange(Td)]
    for i in range(Ld):
        n = f"decoder.layers.{i}"
        a = ln(y, f"{n}.ln1")
        # As Megatron-LM: causal and padded decoder keys masked (plugins/t5 masks causally only).
        y = residual(y, a) + attention(a, a, f"{n}.attention", key_keep=dec_keep, causal=True)
        c = ln(y, f"{n}.cross_ln")
        y = residual(y, c) + attention(c, memory, f"{n}.cross_attention", key_keep=keep)
        a2 = ln(y, f"{n}.ln2")
        y = residual(y, a2) + mlp(a2, f"{n}.mlp")
    y = ln(y, "decoder.final_layernorm")

    logits = y @ wte.t() + p["lm_head.bias"]  # padded vocabulary
    flat = mask.reshape(-1)
    losses = F.cross_entropy(logits.reshape(B * Td, -1), labels.reshape(-1).clamp(min=0), reduction="none")
    loss = (losses * flat).sum() / flat.sum()
    loss.backward()
    out = {"loss": loss.detach().reshape(1)}
    out.update({f"grad:{k}": v.grad for k, v in p.items()})
    reference_io.save(f"{directory}/torch.safetensors", {k: v.float() for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
