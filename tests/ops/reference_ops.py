#!/usr/bin/python3
"""PyTorch reference data for tests/ops/test_ops.cpp.

Usage: /usr/bin/python3 reference_ops.py OUTDIR

For every case: random float32 inputs from a fixed seed, the reference outputs and gradients
(autograd with a random upstream gradient), written as raw little-endian float32/int32 files, plus
OUTDIR/manifest.json listing each case's op, parameters and arrays (file, dtype, shape).

References are computed in float64 from the float32 inputs (so the C++ test measures our float32
error against the exact result, not against another float32 implementation), except Adam, which
runs torch.optim.Adam/AdamW itself in float32 because the point there is its exact semantics.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference_rotary import rotary  # noqa: E402

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(1234)
torch.set_num_threads(2)
cases = []


def case(op, name, params, **arrays):
    entry = {"op": op, "name": name, "params": params, "arrays": {}}
    for key, t in arrays.items():
        t = t.detach().contiguous()
        if t.dtype in (torch.float64, torch.float32):
            t, dtype = t.to(torch.float32), "f32"
        else:
            t, dtype = t.to(torch.int32), "i32"
        fname = f"{len(cases):03d}_{key}.bin"
        t.numpy().tofile(os.path.join(OUT, fname))  # native order: little-endian on x86/ARM
        entry["arrays"][key] = {"file": fname, "dtype": dtype, "shape": list(t.shape)}
    cases.append(entry)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, dtype=torch.float32) * scale


def d(t):  # float64 leaf for autograd
    return t.double().requires_grad_(True)


# ---- matmul ----------------------------------------------------------------------------------
for (M, K, N) in [(1, 5, 7), (7, 33, 5), (33, 67, 24), (64, 24, 67)]:
    for ta in (False, True):
        for tb in (False, True):
            alpha, beta = (1.0, 0.0) if not (ta and tb) else (1.5, 0.5)
            a = randn(K, M) if ta else randn(M, K)
            b = randn(N, K) if tb else randn(K, N)
            out0 = randn(M, N)
            opa = a.double().t() if ta else a.double()
            opb = b.double().t() if tb else b.double()
            ref = alpha * opa @ opb + beta * out0.double()
            case("matmul", f"M{M} K{K} N{N} ta{int(ta)} tb{int(tb)}",
                 {"trans_a": ta, "trans_b": tb, "alpha": alpha, "beta": beta},
                 a=a, b=b, out0=out0, out=ref)
# a with flattened leading dims: [2, 3, K] · [K, N]
a, b = randn(2, 3, 24), randn(24, 5)
case("matmul", "a [2,3,24] flattened", {"trans_a": False, "trans_b": False, "alpha": 1.0, "beta": 0.0},
     a=a, b=b, out0=torch.zeros(2, 3, 5), out=(a.double() @ b.double()))

# ---- linear ----------------------------------------------------------------------------------
lin_shapes = [(N, i, o) for N in (1, 7, 33) for (i, o) in ((5, 24), (24, 67), (67, 5))] + [(64, 256, 300)]
for k, (N, fin, fout) in enumerate(lin_shapes):
    has_bias = k % 3 != 2
    lead = (N,) if k % 2 == 0 or N == 1 else (1, N)  # some with an extra leading dim
    x, w, bias = randn(*lead, fin), randn(fout, fin, scale=fin ** -0.5), randn(fout)
    dy, dw0, db0 = randn(*lead, fout), randn(fout, fin), randn(fout)
    xd, wd, bd = d(x), d(w), d(bias)
    y = xd @ wd.t() + (bd if has_bias else 0)
    y.backward(dy.double())
    arrays = dict(x=x, w=w, dy=dy, dw0=dw0, y=y, dx=xd.grad, dw=dw0.double() + wd.grad)
    if has_bias:
        arrays.update(b=bias, db0=db0, db=db0.double() + bd.grad)
    case("linear", f"N{N} in{fin} out{fout} bias{int(has_bias)}", {"bias": has_bias}, **arrays)

# ---- layer_norm ------------------------------------------------------------------------------
for N in (1, 7, 33):
    for C in (5, 24, 67, 768):
        x = randn(N, C, scale=2.0) + 3.0  # offset mean: the variance must be computed stably
        w, b, dy = 1.0 + randn(C, scale=0.1), randn(C, scale=0.1), randn(N, C)
        dw0, db0 = randn(C), randn(C)
        xd, wd, bd = d(x), d(w), d(b)
        y = F.layer_norm(xd, (C,), wd, bd, eps=1e-5)
        y.backward(dy.double())
        xx = x.double()
        mean = xx.mean(-1)
        rstd = 1.0 / torch.sqrt(xx.var(-1, unbiased=False) + 1e-5)
        case("layer_norm", f"N{N} C{C}", {"eps": 1e-5}, x=x, w=w, b=b, dy=dy, dw0=dw0, db0=db0, y=y,
             mean=mean, rstd=rstd, dx=xd.grad, dw=dw0.double() + wd.grad, db=db0.double() + bd.grad)

# ---- gelu: "gelu" the tanh form, "gelu_erf" the exact one (BERT's LM head), and squared ReLU
# (Megatron's --squared-relu), on the same data -------------------------------------------------
for n in (1, 7, 33 * 67, 100003):
    x = randn(n, scale=3.0)
    if n > 16:  # the tails: a careless tanh(x) = 1 − 2/(e^{2x}+1), or 1 + erf(x/√2), loses digits there
        x[:8] = torch.tensor([-30.0, -10.0, -5.0, -1e-4, 0.0, 1e-4, 10.0, 30.0])
    dy = randn(n)
    # The exact form as ½·x·erfc(−x/√2): F.gelu's ½·x·(1 + erf(x/√2)) cancels for x ≪ 0 even in
    # float64 (5e-4 relative at x = −7.5), which is the n = 1 case's lone value.
    exact = lambda t: 0.5 * t * torch.special.erfc(-t / math.sqrt(2.0))
    for name, gelu in (("gelu", lambda t: F.gelu(t, approximate="tanh")), ("gelu_erf", exact),
                       ("squared_relu", lambda t: torch.relu(t) ** 2)):
        xd = d(x)
        y = gelu(xd)
        y.backward(dy.double())
        case(name, f"n{n}", {}, x=x, dy=dy, y=y, dx=xd.grad)

# ---- tanh, sigmoid (backward from the output) ---------------------------------------------------
# Their own generator, so that the cases after them keep their data.
gen = torch.Generator().manual_seed(4321)
for name, fn in (("tanh", torch.tanh), ("sigmoid", torch.sigmoid)):
    for n in (1, 7, 33 * 67, 100003):
        x = torch.randn(n, generator=gen, dtype=torch.float32) * 3.0
        if n > 16:  # the tails, where the derivative is tiny, and around 0 (and e^{−x} overflowing)
            x[:9] = torch.tensor([-30.0, -10.0, -5.0, -1e-4, 0.0, 1e-4, 10.0, 30.0, -100.0])
        dy = torch.randn(n, generator=gen, dtype=torch.float32)
        xd = d(x)
        y = fn(xd)
        y.backward(dy.double())
        case(name, f"n{n}", {}, x=x, dy=dy, y=y, dx=xd.grad)

# ---- attention -------------------------------------------------------------------------------
def attention_ref(q, kv, mask, B, Tq, Tk, Hq, Hkv, D, causal, first_key=None, window_left=-1, sink=None,
                  query_position=None):
    """out and lse (−inf where a row attends no key; its out is 0) in float64. query_position [Tq]:
    where each query stands among the keys (causal: query i attends keys j ≤ query_position[i]; the
    window counts back from there); None: query i at position i. first_key [B,Tq]:
    query i of row b attends keys j ≥ first_key[b, i] only. window_left ≥ 0: query i attends keys
    j ≥ i − window_left only (Megatron-Core's sliding window, as its get_sliding_window_causal_mask).
    sink [Hq]: one more logit in every row of head h's softmax, of value zero (Megatron-Core's
    softmax_offset; gpt-oss's sinks): the probabilities of the keys drop it."""
    qh = q.view(B, Tq, Hq, D).transpose(1, 2)
    k = kv[..., : Hkv * D].reshape(B, Tk, Hkv, D).transpose(1, 2).repeat_interleave(Hq // Hkv, dim=1)
    v = kv[..., Hkv * D:].reshape(B, Tk, Hkv, D).transpose(1, 2).repeat_interleave(Hq // Hkv, dim=1)
    att = (qh @ k.transpose(-1, -2)) / math.sqrt(D)
    allowed = torch.ones(B, 1, Tq, Tk, dtype=torch.bool)
    position = torch.arange(Tq) if query_position is None else query_position.long()
    keys = torch.arange(Tk).view(1, Tk)
    if causal:
        allowed = allowed & (keys <= position.view(Tq, 1))
    if mask is not None:
        allowed = allowed & (mask != 0).view(B, 1, 1, Tk)
    if first_key is not None:
        allowed = allowed & (torch.arange(Tk).view(1, 1, 1, Tk) >= first_key.view(B, 1, Tq, 1))
    if window_left >= 0:
        allowed = allowed & (keys >= position.view(Tq, 1) - window_left)
    att = att.masked_fill(~allowed, float("-inf"))
    if sink is not None:  # every row has the sink: no row without a finite logit
        full = torch.cat([att, sink.view(1, Hq, 1, 1).expand(B, Hq, Tq, 1)], dim=-1)
        p = torch.softmax(full, dim=-1)[..., :Tk]
        return (p @ v).transpose(1, 2).reshape(B, Tq, Hq * D), torch.logsumexp(full, dim=-1)
    lse = torch.logsumexp(att, dim=-1)
    # A row with no key: softmax of zeros times 0, so that autograd sees no NaN.
    any_key = allowed.any(dim=-1, keepdim=True)
    p = torch.softmax(torch.where(any_key, att, torch.zeros_like(att)), dim=-1) * any_key
    out = (p @ v).transpose(1, 2).reshape(B, Tq, Hq * D)
    return out, lse


def key_mask(kind, B, Tk):
    """u8-style [B,Tk] mask (stored as i32): 'pad' masks a tail per batch row; 'holes' random keys,
    with batch row 0's key 0 masked (so a causal row 0 attends nothing); 'empty' masks all of row 0."""
    if kind is None:
        return None
    m = torch.ones(B, Tk, dtype=torch.int32)
    if kind == "pad":
        for b in range(B):
            m[b, Tk - (b * 5 + 3) % Tk:] = 0
    elif kind == "holes":
        m = (torch.rand(B, Tk) > 0.3).to(torch.int32)
        m[0, 0] = 0
    elif kind == "empty":
        m[0, :] = 0
        m[-1, Tk // 2:] = 0
    return m


# Tile-boundary sizes: the kernel's key and query tiles are 64 wide.
for (B, Tq, Tk, Hq, Hkv, D, causal, mask, kind) in [
        (1, 1, 1, 2, 2, 8, True, None, "MHA"), (2, 13, 13, 4, 4, 16, True, None, "MHA"),
        (2, 13, 13, 4, 2, 16, True, None, "GQA"), (1, 33, 33, 4, 1, 8, True, None, "MQA"),
        (2, 64, 64, 4, 2, 64, True, None, "GQA"), (1, 7, 7, 3, 3, 5, True, None, "MHA"),
        (2, 64, 64, 6, 6, 64, True, None, "MHA"), (1, 33, 33, 6, 3, 24, True, None, "GQA"),
        (2, 13, 13, 4, 1, 16, True, None, "MQA"), (2, 13, 13, 4, 2, 16, False, None, "GQA non-causal"),
        (1, 63, 63, 2, 1, 16, True, None, "MQA"), (1, 65, 65, 2, 2, 24, True, None, "MHA"),
        (1, 129, 129, 4, 2, 64, True, None, "GQA"), (1, 127, 127, 2, 1, 40, False, None, "MQA non-causal"),
        (2, 70, 70, 4, 2, 16, True, "holes", "GQA causal padding-masked"),
        (2, 65, 65, 4, 4, 16, False, "pad", "MHA padding-masked"),
        (2, 130, 130, 2, 1, 32, False, "empty", "MQA fully masked batch row"),
        (2, 13, 70, 4, 2, 16, False, None, "GQA cross"), (1, 65, 7, 2, 1, 24, False, "pad", "MQA cross padding-masked"),
        (2, 1, 129, 4, 4, 8, False, "holes", "MHA cross T=1"), (1, 100, 64, 3, 1, 64, False, "pad", "MQA cross")]:
    q, kv, dout = randn(B, Tq, Hq * D), randn(B, Tk, 2 * Hkv * D), randn(B, Tq, Hq * D)
    m = key_mask(mask, B, Tk)
    qd, kvd = d(q), d(kv)
    out, lse = attention_ref(qd, kvd, m, B, Tq, Tk, Hq, Hkv, D, causal)
    out.backward(dout.double())
    arrays = dict(q=q, kv=kv, dout=dout, out=out, lse=lse, dq=qd.grad, dkv=kvd.grad)
    if m is not None:
        arrays["key_mask"] = m
    case("attention", f"{kind} B{B} Tq{Tq} Tk{Tk} Hq{Hq} Hkv{Hkv} D{D}",
         {"B": B, "Tq": Tq, "Tk": Tk, "Hq": Hq, "Hkv": Hkv, "D": D, "causal": causal}, **arrays)



def megatron_document_mask(tokens, eod):
    """Megatron-LM's get_ltor_masks_and_position_ids with reset_attention_mask (transcribed): a
    lower-triangular [B,T,T] mask whose rows after each eod at i lose the keys up to i."""
    B, T = tokens.shape
    allowed = torch.tril(torch.ones(B, T, T, dtype=torch.bool))
    for b in range(B):
        for i in (tokens[b] == eod).nonzero().flatten().tolist():
            allowed[b, i + 1:, :i + 1] = False
    return allowed


def first_keys_of(tokens, eod):
    """The first key of each query: one past the last eod before it (what Tessera's data gives)."""
    B, T = tokens.shape
    first = torch.zeros(B, T, dtype=torch.int32)
    for b in range(B):
        start = 0
        for t in range(T):
            first[b, t] = start
            if tokens[b, t] == eod:
                start = t + 1
    return first


# Documents (reset_attention_mask): per-query first keys from eods, checked to give Megatron's mask
# exactly; and arbitrary first keys (below 0, past the keys) with a padding mask, not causal.
for (B, T, Hq, Hkv, D, causal, docs, kind) in [
        (2, 70, 4, 2, 16, True, "eod", "GQA documents"), (1, 130, 2, 1, 32, True, "eod", "MQA documents"),
        (2, 65, 4, 4, 16, False, "arbitrary", "MHA first keys padding-masked")]:
    q, kv, dout = randn(B, T, Hq * D), randn(B, T, 2 * Hkv * D), randn(B, T, Hq * D)
    m = None
    if docs == "eod":
        eod = 0
        tokens = torch.randint(1, 9, (B, T))
        tokens[torch.rand(B, T) < 0.08] = eod  # short documents …
        tokens[0, 1] = eod                     # … one of a single token after the first
        tokens[-1, 100 % T:] = torch.randint(1, 9, (T - 100 % T,))  # … and one across key tiles
        first = first_keys_of(tokens, eod)
        ours = torch.arange(T).view(1, 1, T) >= first.view(B, T, 1)
        assert torch.equal(ours & torch.tril(torch.ones(T, T, dtype=torch.bool)), megatron_document_mask(tokens, eod))
    else:
        first = torch.randint(-3, T + 3, (B, T), dtype=torch.int32)
        first[0, :5] = T + 1  # rows that attend nothing
        m = key_mask("holes", B, T)
    qd, kvd = d(q), d(kv)
    out, lse = attention_ref(qd, kvd, m, B, T, T, Hq, Hkv, D, causal, first)
    out.backward(dout.double())
    arrays = dict(q=q, kv=kv, dout=dout, out=out, lse=lse, dq=qd.grad, dkv=kvd.grad, first_key=first)
    if m is not None:
        arrays["key_mask"] = m
    case("attention", f"{kind} B{B} Tq{T} Tk{T} Hq{Hq} Hkv{Hkv} D{D}",
         {"B": B, "Tq": T, "Tk": T, "Hq": Hq, "Hkv": Hkv, "D": D, "causal": causal}, **arrays)

# Sliding windows (window_left), alone and with documents' first keys: windows inside one key tile,
# across tiles, of zero keys (each query attends itself), and wider than the sequence.
for (B, T, Hq, Hkv, D, window, docs, kind) in [
        (2, 70, 4, 2, 16, 5, False, "GQA window 5"), (1, 130, 2, 1, 32, 70, False, "MQA window 70"),
        (1, 33, 2, 2, 8, 0, False, "MHA window 0"), (2, 13, 4, 4, 16, 40, False, "MHA window wider than T"),
        (2, 130, 4, 2, 16, 9, True, "GQA window 9 documents"), (1, 70, 2, 1, 24, 64, True, "MQA window 64 documents")]:
    q, kv, dout = randn(B, T, Hq * D), randn(B, T, 2 * Hkv * D), randn(B, T, Hq * D)
    first = None
    if docs:
        tokens = torch.randint(1, 9, (B, T))
        tokens[torch.rand(B, T) < 0.03] = 0
        tokens[0, 40] = 0
        first = first_keys_of(tokens, 0)
    qd, kvd = d(q), d(kv)
    out, lse = attention_ref(qd, kvd, None, B, T, T, Hq, Hkv, D, True, first, window)
    out.backward(dout.double())
    arrays = dict(q=q, kv=kv, dout=dout, out=out, lse=lse, dq=qd.grad, dkv=kvd.grad)
    if first is not None:
        arrays["first_key"] = first
    case("attention", f"{kind} B{B} Tq{T} Tk{T} Hq{Hq} Hkv{Hkv} D{D}",
         {"B": B, "Tq": T, "Tk": T, "Hq": Hq, "Hkv": Hkv, "D": D, "causal": True, "window_left": window}, **arrays)

# Attention sinks (Megatron-Core's softmax_type learnable; off-by-one is a zero sink): causal MHA and
# GQA, with a window and documents, and padding-masked rows that attend no key but the sink. The
# sinks are large enough, against the scores, to take a good share of each row.
for (B, T, Hq, Hkv, D, causal, mask, window, docs, kind) in [
        (2, 70, 4, 2, 16, True, None, -1, False, "GQA sink"), (1, 33, 2, 2, 8, True, None, -1, False, "MHA zero sink"),
        (2, 130, 4, 1, 24, True, None, 9, True, "MQA sink window 9 documents"),
        (2, 65, 4, 4, 16, False, "empty", -1, False, "MHA sink fully masked rows")]:
    q, kv, dout = randn(B, T, Hq * D), randn(B, T, 2 * Hkv * D), randn(B, T, Hq * D)
    sink = torch.zeros(Hq) if "zero" in kind else randn(Hq) * 2.0 + 1.0
    m = key_mask(mask, B, T)
    first = None
    if docs:
        tokens = torch.randint(1, 9, (B, T))
        tokens[torch.rand(B, T) < 0.03] = 0
        first = first_keys_of(tokens, 0)
    qd, kvd, sd = d(q), d(kv), d(sink)
    out, lse = attention_ref(qd, kvd, m, B, T, T, Hq, Hkv, D, causal, first, window, sd)
    out.backward(dout.double())
    arrays = dict(q=q, kv=kv, dout=dout, out=out, lse=lse, dq=qd.grad, dkv=kvd.grad, sink=sink, dsink=sd.grad)
    if m is not None:
        arrays["key_mask"] = m
    if first is not None:
        arrays["first_key"] = first
    case("attention", f"{kind} B{B} Tq{T} Tk{T} Hq{Hq} Hkv{Hkv} D{D}",
         {"B": B, "Tq": T, "Tk": T, "Hq": Hq, "Hkv": Hkv, "D": D, "causal": causal, "window_left": window}, **arrays)

# Queries placed among the keys (query_position; context parallelism's chunks): rank r of cp holds
# sequence chunks r and 2·cp − 1 − r of 2·cp, against all T keys; with GQA and MQA, documents,
# windows, sinks, and an arbitrary increasing set of positions.
def cp_positions(T, cp, r):
    c = T // (2 * cp)
    return torch.cat([torch.arange(r * c, (r + 1) * c), torch.arange((2 * cp - 1 - r) * c, (2 * cp - r) * c)])


for (B, T, Hq, Hkv, D, positions, window, docs, sink, kind) in [
        (2, 140, 4, 2, 16, cp_positions(140, 2, 0), -1, False, False, "GQA cp2 rank0"),
        (1, 140, 2, 1, 24, cp_positions(140, 2, 1), -1, False, False, "MQA cp2 rank1"),
        (2, 132, 4, 4, 8, cp_positions(132, 3, 1), 9, True, False, "MHA cp3 rank1 window 9 documents"),
        (2, 96, 4, 2, 16, cp_positions(96, 4, 3), -1, True, True, "GQA cp4 rank3 documents sink"),
        (1, 150, 2, 2, 8, torch.tensor([0, 3, 4, 5, 63, 64, 65, 100, 128, 129, 149]), 40, False, False,
         "MHA scattered positions window 40")]:
    Tq = positions.numel()
    q, kv, dout = randn(B, Tq, Hq * D), randn(B, T, 2 * Hkv * D), randn(B, Tq, Hq * D)
    first = None
    if docs:
        tokens = torch.randint(1, 9, (B, T))
        tokens[torch.rand(B, T) < 0.03] = 0
        tokens[0, T // 3] = 0
        first = first_keys_of(tokens, 0)[:, positions.long()].contiguous()
    sd = d(randn(Hq) * 2.0 + 1.0) if sink else None
    qd, kvd = d(q), d(kv)
    out, lse = attention_ref(qd, kvd, None, B, Tq, T, Hq, Hkv, D, True, first, window, sd, positions)
    out.backward(dout.double())
    arrays = dict(q=q, kv=kv, dout=dout, out=out, lse=lse, dq=qd.grad, dkv=kvd.grad,
                  query_position=positions.to(torch.int32))
    if first is not None:
        arrays["first_key"] = first
    if sink:
        arrays.update(sink=sd.detach().float(), dsink=sd.grad)
    case("attention", f"{kind} B{B} Tq{Tq} Tk{T} Hq{Hq} Hkv{Hkv} D{D}",
         {"B": B, "Tq": Tq, "Tk": T, "Hq": Hq, "Hkv": Hkv, "D": D, "causal": True, "window_left": window}, **arrays)

# ---- embedding -------------------------------------------------------------------------------
for N in (1, 7, 33):
    for C in (5, 24, 67):
        rows = 11  # few rows: ids repeat, so the backward's += of colliding rows is exercised
        accumulate = (N + C) % 2 == 0
        ids = torch.randint(0, rows, (N,), dtype=torch.int64)
        table, out0, dout, dtable0 = randn(rows, C), randn(N, C), randn(N, C), randn(rows, C)
        td = d(table)
        out = F.embedding(ids, td)
        out.backward(dout.double())
        if accumulate:
            out = out + out0.double()
        case("embedding", f"N{N} C{C} acc{int(accumulate)}", {"accumulate": accumulate}, ids=ids,
             table=table, out0=out0, dout=dout, dtable0=dtable0, out=out,
             dtable=dtable0.double() + td.grad)

# ---- softmax cross-entropy -------------------------------------------------------------------
for (N, V, masked) in [(1, 5, False), (7, 5, True), (33, 67, True), (7, 1000, False), (33, 1000, True),
                       (7, 50304, True), (1, 50304, False)]:
    logits, targets = randn(N, V, scale=3.0), torch.randint(0, V, (N,), dtype=torch.int64)
    mask = (torch.rand(N) > 0.3).float() if masked else torch.ones(N)
    grad_scale = 0.7 / N
    ld = d(logits)
    losses = F.cross_entropy(ld, targets, reduction="none")
    ((losses * mask.double()).sum() * grad_scale).backward()
    arrays = dict(logits=logits, targets=targets, losses=losses, grad=ld.grad)
    if masked:
        arrays["mask"] = mask
    case("cross_entropy", f"N{N} V{V} mask{int(masked)}", {"grad_scale": grad_scale, "masked": masked},
         **arrays)

# ---- softmax ---------------------------------------------------------------------------------
for (N, C) in [(1, 1), (1, 7), (7, 33), (33, 67), (5, 50304)]:
    x = randn(N, C, scale=4.0)
    case("softmax", f"N{N} C{C}", {}, x=x, out=torch.softmax(x.double(), -1))

# ---- elementwise and reductions --------------------------------------------------------------
for n in (1, 7, 33 * 67, 100003):
    a, b = randn(n), randn(n)
    alpha, s = -0.37, 1.7
    case("elementwise", f"n{n}", {"alpha": alpha, "scale": s}, a=a, b=b,
         add=a.double() + b.double(), axpy=b.double() + alpha * a.double(), scale=a.double() * s,
         sum=a.double().sum().reshape(1), sum_squares=(a.double() ** 2).sum().reshape(1))

# ---- Adam / AdamW: 10 steps of torch.optim in float32 ----------------------------------------
for (n, opt, lr, wd, gs) in [(7, "adam", 1e-3, 0.0, 1.0), (1000, "adam", 3e-2, 0.01, 1.0),
                             (33 * 67, "adamw", 1e-3, 0.1, 0.5), (100003, "adamw", 3e-2, 0.01, 0.25),
                             (1000, "adam", 1e-3, 0.1, 0.5)]:
    steps, betas, eps = 10, (0.9, 0.95), 1e-8
    p0, grads = randn(n), randn(steps, n)
    p = p0.clone().requires_grad_(True)
    cls = torch.optim.AdamW if opt == "adamw" else torch.optim.Adam
    o = cls([p], lr=lr, betas=betas, eps=eps, weight_decay=wd)
    for k in range(steps):
        p.grad = grads[k] * gs  # grad_scale is applied to the gradient before the step
        o.step()
    st = o.state[p]
    case("adam", f"{opt} n{n} lr{lr} wd{wd} gs{gs}",
         {"decoupled": opt == "adamw", "lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps,
          "weight_decay": wd, "grad_scale": gs, "steps": steps},
         param0=p0, grads=grads, param=p, m=st["exp_avg"], v=st["exp_avg_sq"])

# ---- Llama-style ops: rms_norm, swiglu, rope (their own generator: earlier cases keep their data) --
gen = torch.Generator().manual_seed(777)


def grandn(*shape, scale=1.0):
    return torch.randn(*shape, generator=gen, dtype=torch.float32) * scale


for N in (1, 7, 33):
    for C in (5, 24, 67, 768):
        x = grandn(N, C, scale=2.0) + 0.5
        w, dy, dw0 = 1.0 + grandn(C, scale=0.1), grandn(N, C), grandn(C)
        xd, wd = d(x), d(w)
        rstd = torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-5)
        y = wd * (xd * rstd)  # Megatron-Core's RMSNorm
        y.backward(dy.double())
        case("rms_norm", f"N{N} C{C}", {"eps": 1e-5}, x=x, w=w, dy=dy, dw0=dw0, y=y, rstd=rstd.reshape(N),
             dx=xd.grad, dw=dw0.double() + wd.grad)

for N in (1, 7, 33):
    for Fh in (1, 5, 67, 1000):
        x = grandn(N, 2 * Fh, scale=3.0)
        dy = grandn(N, Fh)
        xd = d(x)
        x0, x1 = torch.chunk(xd, 2, dim=-1)  # Megatron-Core: silu(x0)·x1
        y = F.silu(x0) * x1
        y.backward(dy.double())
        case("swiglu", f"N{N} F{Fh}", {}, x=x, dy=dy, y=y, dx=xd.grad)

# Megatron-Core's other gated linear units (mlp.py's glu): quick GELU's σ(1.702·a) on the gate, the
# gate clamped above and the linear half on both sides at activation_func_clamp_value, and
# glu_linear_offset added to the linear half (gpt-oss: 1.702, 7, 1). Inputs reach past the clamp,
# and some sit exactly on it (torch.clamp passes their gradient).
for (N, Fh, alpha, clamp, offset) in [(7, 67, 1.702, 7.0, 1.0), (33, 5, 1.0, 2.5, 0.0), (3, 1000, 1.702, None, 0.5),
                                      (1, 64, 1.0, None, 1.0)]:
    x = grandn(N, 2 * Fh, scale=6.0)
    if clamp is not None:
        x[:, ::7] = clamp
        x[:, 3::11] = -clamp
    dy = grandn(N, Fh)
    xd = d(x)
    x0, x1 = torch.chunk(xd, 2, dim=-1)
    if clamp is not None:
        x0, x1 = x0.clamp(max=clamp), x1.clamp(min=-clamp, max=clamp)
    y = x0 * torch.sigmoid(alpha * x0) * (x1 + offset)
    y.backward(dy.double())
    case("swiglu", f"N{N} F{Fh} alpha{alpha} clamp{clamp} offset{offset}",
         {"alpha": alpha, "clamp": clamp if clamp is not None else 0.0, "offset": offset}, x=x, dy=dy, y=y, dx=xd.grad)


# (B, T, H, D, rotary dim, interleaved, extra columns per row (the values of a fused [K | V]), base, offset)
for (B, T, H, D, dim, il, extra, base, offset) in [
        (1, 1, 1, 2, 2, False, 0, 10000.0, 0), (2, 5, 3, 8, 8, False, 0, 10000.0, 0),
        (2, 5, 3, 8, 4, True, 0, 10000.0, 0), (1, 7, 2, 16, 8, False, 32, 10000.0, 0),
        (3, 33, 4, 6, 6, True, 24, 500000.0, 0), (2, 17, 2, 64, 32, False, 0, 10000.0, 5),
        (1, 300, 1, 128, 128, False, 0, 10000.0, 0)]:
    x = grandn(B, T, H * D + extra)
    dy = grandn(B, T, H * D + extra)
    xd = d(x)
    heads = rotary(xd[..., : H * D].reshape(B, T, H, D), dim, base, il, offset).reshape(B, T, H * D)
    y = torch.cat((heads, xd[..., H * D:]), -1)
    y.backward(dy.double())
    case("rope", f"B{B} T{T} H{H} D{D} dim{dim} il{int(il)} W{H * D + extra} base{base:g} off{offset}",
         {"B": B, "T": T, "H": H, "D": D, "dim": dim, "interleaved": il, "width": H * D + extra, "base": base,
          "offset": offset}, x=x, dy=dy, y=y, dx=xd.grad)

# Llama 3.1's scaled frequencies (base 500000: wavelengths below 2048, between and past 8192).
for (B, T, H, D, dim, il, base, offset, factor) in [
        (2, 9, 2, 128, 128, False, 500000.0, 0, 8.0), (1, 5, 3, 64, 64, True, 500000.0, 9000, 32.0),
        (1, 3, 1, 16, 16, False, 500000.0, 3, 8.0)]:
    x = grandn(B, T, H * D)
    dy = grandn(B, T, H * D)
    xd = d(x)
    y = rotary(xd.reshape(B, T, H, D), dim, base, il, offset, factor).reshape(B, T, H * D)
    y.backward(dy.double())
    case("rope", f"B{B} T{T} H{H} D{D} dim{dim} il{int(il)} base{base:g} off{offset} llama3 x{factor:g}",
         {"B": B, "T": T, "H": H, "D": D, "dim": dim, "interleaved": il, "width": H * D, "base": base,
          "offset": offset, "scaling": factor}, x=x, dy=dy, y=y, dx=xd.grad)

# Linear position interpolation (--rotary-seq-len-interpolation-factor), alone and with Llama 3.1's.
for (B, T, H, D, dim, il, base, offset, factor, interp) in [
        (2, 9, 2, 16, 16, False, 10000.0, 0, 0.0, 4.0), (1, 5, 3, 64, 32, True, 500000.0, 700, 0.0, 2.5),
        (1, 4, 1, 128, 128, False, 500000.0, 9000, 8.0, 2.0)]:
    x = grandn(B, T, H * D)
    dy = grandn(B, T, H * D)
    xd = d(x)
    y = rotary(xd.reshape(B, T, H, D), dim, base, il, offset, factor, interp).reshape(B, T, H * D)
    y.backward(dy.double())
    case("rope", f"B{B} T{T} H{H} D{D} dim{dim} il{int(il)} base{base:g} off{offset} llama3 x{factor:g} interp{interp:g}",
         {"B": B, "T": T, "H": H, "D": D, "dim": dim, "interleaved": il, "width": H * D, "base": base,
          "offset": offset, "scaling": factor, "interpolation": interp}, x=x, dy=dy, y=y, dx=xd.grad)

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
print(f"reference_ops.py: wrote {len(cases)} cases to {OUT}")
