"""Megatron-Core's apply_rotary_pos_emb, written plainly in float64 for the tests' PyTorch references
(tests/ops/reference_ops.py for the rope op, tests/model/gpt_reference.py for Llama-style models)."""
import math

import torch


def apply_scaling(freqs, factor, low_freq_factor=1, high_freq_factor=4, original_max_position_embeddings=8192):
    """Megatron-Core's apply_scaling (--use-rope-scaling, Llama 3.1), transcribed."""
    old_context_len = original_max_position_embeddings
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / freqs
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, freqs / factor, freqs)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def rotary(t, dim, base, interleaved, offset=0, scaling_factor=0.0, interpolation=1.0):
    """t [B,T,H,D] at positions offset…offset+T−1: the first `dim` channels rotated (pairs of halves,
    or of neighbours when interleaved), the rest passed through; scaling_factor > 0: Llama 3.1's
    frequencies; interpolation: the positions divided by it (Megatron-Core's
    seq_len_interpolation_factor, RotaryEmbedding.forward's `seq *= 1 / factor`)."""
    T = t.shape[1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    if scaling_factor > 0:
        inv_freq = apply_scaling(inv_freq, scaling_factor)
    seq = torch.arange(offset, offset + T, dtype=torch.float64) * (1.0 / interpolation)
    freqs = torch.outer(seq, inv_freq)
    emb = torch.stack((freqs, freqs), -1).view(T, -1) if interleaved else torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    rot, rest = t[..., :dim], t[..., dim:]
    if interleaved:
        half = torch.stack((-rot[..., 1::2], rot[..., ::2]), -1).view(rot.shape)
    else:
        x1, x2 = torch.chunk(rot, 2, dim=-1)
        half = torch.cat((-x2, x1), -1)
    return torch.cat((rot * cos + half * sin, rest), -1)
