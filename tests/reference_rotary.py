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


def yarn_get_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn(dim, base, factor, original=4096, beta_fast=32.0, beta_slow=1.0, mscale=1.0, mscale_all_dim=0.0,
         round_to_int=True):
    """Megatron-Core's YarnRotaryEmbedding (and Hugging Face's _compute_yarn_parameters), transcribed:
    the inverse frequencies and the magnitude cos and sin are scaled by."""
    def correction_dim(rotations):
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))
    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if round_to_int:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    extra = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    inter = extra / factor
    mask = 1.0 - ramp  # the share of extrapolation
    inv_freq = inter * (1 - mask) + extra * mask
    return inv_freq, yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)


def rotary(t, dim, base, interleaved, offset=0, scaling_factor=0.0, interpolation=1.0, yarn_args=None):
    """t [B,T,H,D] at positions offset…offset+T−1: the first `dim` channels rotated (pairs of halves,
    or of neighbours when interleaved), the rest passed through; scaling_factor > 0: Llama 3.1's
    frequencies; interpolation: the positions divided by it (Megatron-Core's
    seq_len_interpolation_factor, RotaryEmbedding.forward's `seq *= 1 / factor`); yarn_args (a dict
    of yarn()'s keyword arguments): YaRN's frequencies, cos and sin times its magnitude."""
    T = t.shape[1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    magnitude = 1.0
    if yarn_args:
        inv_freq, magnitude = yarn(dim, base, **yarn_args)
    if scaling_factor > 0:
        inv_freq = apply_scaling(inv_freq, scaling_factor)
    seq = torch.arange(offset, offset + T, dtype=torch.float64) * (1.0 / interpolation)
    freqs = torch.outer(seq, inv_freq)
    emb = torch.stack((freqs, freqs), -1).view(T, -1) if interleaved else torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos()[None, :, None, :] * magnitude, emb.sin()[None, :, None, :] * magnitude
    rot, rest = t[..., :dim], t[..., dim:]
    if interleaved:
        half = torch.stack((-rot[..., 1::2], rot[..., ::2]), -1).view(rot.shape)
    else:
        x1, x2 = torch.chunk(rot, 2, dim=-1)
        half = torch.cat((-x2, x1), -1)
    return torch.cat((rot * cos + half * sin, rest), -1)
