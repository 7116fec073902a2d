"""Megatron-Core's apply_rotary_pos_emb, written plainly in float64 for the tests' PyTorch references
(tests/ops/reference_ops.py for the rope op, tests/model/gpt_reference.py for Llama-style models)."""
import torch


def rotary(t, dim, base, interleaved, offset=0):
    """t [B,T,H,D] at positions offset…offset+T−1: the first `dim` channels rotated (pairs of halves,
    or of neighbours when interleaved), the rest passed through."""
    T = t.shape[1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    freqs = torch.outer(torch.arange(offset, offset + T, dtype=torch.float64), inv_freq)
    emb = torch.stack((freqs, freqs), -1).view(T, -1) if interleaved else torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    rot, rest = t[..., :dim], t[..., dim:]
    if interleaved:
        half = torch.stack((-rot[..., 1::2], rot[..., ::2]), -1).view(rot.shape)
    else:
        x1, x2 = torch.chunk(rot, 2, dim=-1)
        half = torch.cat((-x2, x1), -1)
    return torch.cat((rot * cos + half * sin, rest), -1)
