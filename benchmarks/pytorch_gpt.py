"""The GPT of plugins/gpt written plainly in PyTorch (nanoGPT style, AdamW), timed the way
`tessera bench` times Tessera, so that both run on the same machine in the same run.

--precision fp32 (default): everything in f32.
--precision bf16: PyTorch's CPU mixed precision, `torch.autocast("cpu", dtype=torch.bfloat16)` around
forward and loss (autocast picks bf16 or f32 per op: matmuls/linears in bf16, the loss in f32), backward
outside it as PyTorch's AMP recipe does; f32 master weights, f32 gradients, the same AdamW and
clipping. (PyTorch 1.13 has no CPU fp16 autocast.)

Prints one JSON line: ms per step (median), tokens/s, achieved GFLOP/s, peak RSS, last loss.

--gemm N [--dtype fp32|bf16]: instead, times torch.matmul of two N×N matrices in that dtype (median
of 5 after one warm-up, as `tessera bench` times its own GEMM peak) and prints its GFLOP/s.

--device cuda (`tessera bench --device cuda`): the same on the GPU, with torch.autocast("cuda") for bf16,
F.scaled_dot_product_attention (PyTorch's fused flash attention) for attention, and a
torch.cuda.synchronize() closing each timed step; peak memory is torch.cuda.max_memory_allocated.

Run with Debian's /usr/bin/python3 (python3-torch) on the CPU; with the GPU machine's python3 on cuda.
"""
import contextlib
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """Megatron-Core's RMSNorm: w·x·rsqrt(mean(x²) + eps), in f32."""

    def __init__(self, C, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(C)), eps

    def forward(self, x):
        xf = x.float()
        return (self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps))).type_as(x)


def yarn_frequencies(inv_freq, dim, base, y):
    """Megatron-Core's YarnRotaryEmbedding: the blended frequencies and the cos/sin magnitude."""
    def correction_dim(rotations):
        return dim * math.log(y["original"] / (rotations * 2 * math.pi)) / (2 * math.log(base))
    low, high = correction_dim(y["beta_fast"]), correction_dim(y["beta_slow"])
    if y["round_to_int"]:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    ramp = ((torch.arange(dim // 2, device=inv_freq.device) - low) / max(high - low, 0.001)).clamp(0, 1)

    def mscale(m):
        return 1.0 if y["factor"] <= 1 else 0.1 * m * math.log(y["factor"]) + 1.0
    return inv_freq / y["factor"] * ramp + inv_freq * (1 - ramp), mscale(y["mscale"]) / mscale(y["mscale_all_dim"])


def rotary(t, dim, base, interleaved, yarn=None):
    """Megatron-Core's apply_rotary_pos_emb on t [B,T,H,D] (positions 0…T−1); `yarn`: its settings."""
    T = t.shape[1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=t.device) / dim))
    magnitude = 1.0
    if yarn:
        inv_freq, magnitude = yarn_frequencies(inv_freq, dim, base, yarn)
    freqs = torch.outer(torch.arange(T, dtype=torch.float32, device=t.device), inv_freq)
    emb = torch.stack((freqs, freqs), -1).view(T, -1) if interleaved else torch.cat((freqs, freqs), -1)
    cos = (emb.cos() * magnitude)[None, :, None, :].to(t.dtype)
    sin = (emb.sin() * magnitude)[None, :, None, :].to(t.dtype)
    rot, rest = t[..., :dim], t[..., dim:]
    if interleaved:
        half = torch.stack((-rot[..., 1::2], rot[..., ::2]), -1).view(rot.shape)
    else:
        x1, x2 = torch.chunk(rot, 2, dim=-1)
        half = torch.cat((-x2, x1), -1)
    return torch.cat((rot * cos + half * sin, rest), -1)


class MoE(nn.Module):
    """Megatron-Core's MoELayer as PyTorch users write it (Mixtral's and Megatron's local dispatch): a
    router, top-k experts run on their tokens (index_select / index_add_), the load-balancing and
    z-losses added to the objective, an optional shared expert. `mlp(x, fc1, fc2)` is the activation."""

    def __init__(self, C, o, bias, mlp):
        super().__init__()
        m = o["moe"]
        self.E, self.k, self.mlp = m["experts"], m["topk"], mlp
        self.pre_softmax, self.scale = m.get("pre_softmax", False), m.get("scale", 1.0)
        self.aux, self.z = m.get("aux", 0.0), m.get("z", 0.0)
        width = lambda f: 2 * f if o.get("swiglu", False) else f  # noqa: E731
        self.router = nn.Linear(C, self.E, bias=bias)  # Megatron-Core's router bias with add_bias_linear
        self.fc1 = nn.ModuleList(nn.Linear(C, width(m["ffn"]), bias=bias) for _ in range(self.E))
        self.fc2 = nn.ModuleList(nn.Linear(m["ffn"], C, bias=bias) for _ in range(self.E))
        shared = m.get("shared", 0)
        self.shared = (nn.Linear(C, width(shared), bias=bias), nn.Linear(shared, C, bias=bias)) if shared else None
        if self.shared:
            self.shared_modules = nn.ModuleList(self.shared)
        self.router_loss = None

    def forward(self, x):
        rows = x.reshape(-1, x.shape[-1])
        logits = self.router(rows).float()
        scores = logits.softmax(-1)
        if self.pre_softmax:
            probs, chosen = torch.topk(scores, self.k, dim=-1)
            probs = probs * self.scale
        else:
            top, chosen = torch.topk(logits, self.k, dim=-1)
            probs = top.softmax(-1)
        out = torch.zeros_like(rows)
        for e in range(self.E):
            tok, slot = (chosen == e).nonzero(as_tuple=True)
            if len(tok):
                y = self.mlp(rows.index_select(0, tok), self.fc1[e], self.fc2[e])
                out = out.index_add(0, tok, (probs[tok, slot].unsqueeze(-1) * y).to(out.dtype))
        if self.shared:
            out = out + self.mlp(rows, *self.shared)
        n = rows.shape[0]
        counts = torch.bincount(chosen.flatten(), minlength=self.E).float()
        self.router_loss = (self.aux * (scores.sum(0) * counts).sum() * self.E / (self.k * n * n) +
                            self.z * torch.logsumexp(logits, -1).pow(2).mean())
        return out.view(x.shape)


class Block(nn.Module):
    """A pre-LayerNorm layer; causal (GPT) or attending to every token (BERT: no padding in a benchmark).
    `llama` (tessera bench's --llama, GPT only): ffn width, rope, RMSNorm, SwiGLU, biases (docs/llama.md)."""

    def __init__(self, C, H, G, causal=True, llama=None, layer=0):
        super().__init__()
        o = llama or {}
        # Megatron-Core's window_size in the layers window_attn_skip_freq leaves it (None: every key),
        # its softmax_type's sinks and YaRN positions.
        windowed = o.get("window") is not None and o.get("window_layers", [1] * (layer + 1))[layer]
        self.window = o["window"] if windowed else None
        softmax_type = o.get("softmax_type", "vanilla")
        self.sink = nn.Parameter(torch.zeros(H)) if softmax_type == "learnable" else (
            torch.zeros(H) if softmax_type == "off-by-one" else None)
        self.yarn = o.get("yarn")
        self.H, self.G, self.D, self.causal = H, G, C // H, causal
        F_ = o.get("ffn", 4 * C)
        bias = o.get("bias", True)
        self.swiglu = o.get("swiglu", False)
        # The gated unit's quick GELU α, clamp and linear offset (quick_geglu, activation_func_clamp_value,
        # glu_linear_offset; gpt-oss's 1.702, 7, 1); None: SwiGLU.
        self.glu = o.get("glu")
        self.squared_relu = o.get("squared_relu", False)  # Megatron's --squared-relu
        # Megatron-Core's no_rope_freq: no rotary positions in the layers "nope_layers" flags 1.
        self.rope = o.get("rope", False) and not o.get("nope_layers", [0] * (layer + 1))[layer]
        self.rot_dim = int(self.D * o.get("rotary_percent", 1.0))
        self.rot_base, self.rot_interleaved = o.get("rotary_base", 10000.0), o.get("rotary_interleaved", False)
        norm = RMSNorm if o.get("rms_norm", False) else nn.LayerNorm
        self.ln1, self.ln2 = norm(C), norm(C)
        # Megatron-Core's qk_layernorm: the same norm over each head's channels of q and k.
        self.q_ln, self.k_ln = (norm(self.D), norm(self.D)) if o.get("qk_layernorm", False) else (None, None)
        qkv_bias = o.get("qkv_bias", bias)  # Megatron's add_qkv_bias: q, k, v keep theirs
        self.q = nn.Linear(C, C, bias=qkv_bias)
        self.kv = nn.Linear(C, 2 * G * self.D, bias=qkv_bias)
        self.proj = nn.Linear(C, C, bias=bias)
        self.fc1 = nn.Linear(C, 2 * F_ if self.swiglu else F_, bias=bias)
        self.fc2 = nn.Linear(F_, C, bias=bias)
        self.moe = MoE(C, o, bias, self.activation) if o.get("moe") else None

    def activation(self, x, fc1, fc2):
        h = fc1(x)
        if self.swiglu:
            x0, x1 = torch.chunk(h, 2, dim=-1)
            if self.glu is None:
                return fc2(F.silu(x0) * x1)
            if self.glu.get("clamp") is not None:
                x0, x1 = x0.clamp(max=self.glu["clamp"]), x1.clamp(min=-self.glu["clamp"], max=self.glu["clamp"])
            return fc2(x0 * torch.sigmoid(self.glu["alpha"] * x0) * (x1 + self.glu["offset"]))
        if self.squared_relu:
            return fc2(torch.relu(h) ** 2)
        return fc2(F.gelu(h, approximate="tanh"))

    def mlp(self, x):
        return self.moe(x) if self.moe is not None else self.activation(x, self.fc1, self.fc2)

    def forward(self, x, mask):
        B, T, C = x.shape
        a = self.ln1(x)
        q = self.q(a).view(B, T, self.H, self.D)
        k, v = self.kv(a).split(self.G * self.D, dim=-1)
        k = k.reshape(B, T, self.G, self.D)
        if self.q_ln is not None:
            q, k = self.q_ln(q), self.k_ln(k)
        if self.rope:
            q = rotary(q, self.rot_dim, self.rot_base, self.rot_interleaved, self.yarn)
            k = rotary(k, self.rot_dim, self.rot_base, self.rot_interleaved, self.yarn)
        q = q.transpose(1, 2)
        k = k.transpose(1, 2).repeat_interleave(self.H // self.G, dim=1)
        v = v.reshape(B, T, self.G, self.D).transpose(1, 2).repeat_interleave(self.H // self.G, dim=1)
        allowed = mask[:, :, :T, :T] != 0
        if self.window is not None:
            allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=x.device).triu(-self.window)
        if x.is_cuda and self.sink is None:  # the fused kernel PyTorch users run on GPUs
            y = (F.scaled_dot_product_attention(q, k, v, is_causal=self.causal) if self.window is None
                 else F.scaled_dot_product_attention(q, k, v, attn_mask=allowed))
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.D))
            if self.causal:
                att = att.masked_fill(~allowed, float("-inf"))
            if self.sink is not None:  # one more logit per head in every row, dropped after the softmax
                sink = self.sink.to(att.device, att.dtype).view(1, -1, 1, 1).expand(B, -1, T, 1)
                y = torch.cat([att, sink], -1).softmax(dim=-1)[..., :T] @ v
            else:
                y = att.softmax(dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, L, C, H, G, V, T, llama=None):
        super().__init__()
        o = llama or {}
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C) if o.get("learned_positions", not o.get("rope", False)) else None
        # Mixture-of-experts layers where o["moe"]["layers"] flags them (every layer without the list).
        flags = o["moe"].get("layers") or [1] * L if o.get("moe") else [0] * L
        self.blocks = nn.ModuleList(Block(C, H, G, llama=o if flags[i] else {**o, "moe": None}, layer=i)
                                    for i in range(L))
        self.ln_f = RMSNorm(C) if o.get("rms_norm", False) else nn.LayerNorm(C)
        self.head = nn.Linear(C, V, bias=False) if o.get("untied", False) else None
        self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T))
        # Multi-token prediction (o["mtp"] = {layers, scale, repeated}; Tessera's docs/mtp.md,
        # Megatron-Core's): per depth enorm, hnorm, eh_proj (2C → C) and a block built like the last,
        # with its final norm; "repeated" (mtp_use_repeated_layer): one such module at every depth.
        mtp = o.get("mtp") or {}
        self.mtp_scale = mtp.get("scale", 0.1) / max(1, mtp.get("layers", 0))
        norm = (lambda: RMSNorm(C)) if o.get("rms_norm", False) else (lambda: nn.LayerNorm(C))
        self.mtp = nn.ModuleList(
            nn.ModuleDict({"enorm": norm(), "hnorm": norm(), "eh_proj": nn.Linear(2 * C, C, bias=False),
                           "block": Block(C, H, G, llama=o if flags[L - 1] else {**o, "moe": None}, layer=L - 1),
                           "norm": norm()})
            for _ in range(1 if mtp.get("repeated", False) and mtp.get("layers", 0) > 0 else mtp.get("layers", 0)))
        self.mtp_depths = mtp.get("layers", 0)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x, self.mask)
        x = self.ln_f(x)

        def lm_loss(h, labels):
            logits = self.head(h) if self.head is not None else h @ self.wte.weight.t()  # untied or tied head
            return F.cross_entropy(logits.view(-1, logits.size(-1)), labels.reshape(-1), reduction="none")

        loss = lm_loss(x, targets).mean()
        # Each depth: inputs and targets one more place left (the rolled-in end masked out of its mean).
        pos, extra = torch.arange(T, device=idx.device), 0
        for i in range(self.mtp_depths):
            d = self.mtp[min(i, len(self.mtp) - 1)]
            shift = lambda t: torch.cat([t[:, i + 1:], torch.zeros_like(t[:, :i + 1])], 1)  # noqa: E731
            e = self.wte(shift(idx))
            if self.wpe is not None:
                e = e + self.wpe(shift(pos.unsqueeze(0)).squeeze(0))
            x = d["norm"](d["block"](d["eh_proj"](torch.cat([d["enorm"](e), d["hnorm"](x)], -1)), self.mask))
            keep = (pos < T - i - 1).to(x.dtype).expand(idx.shape[0], T).reshape(-1)
            extra = extra + self.mtp_scale * (lm_loss(x, shift(targets)) * keep).sum() / keep.sum()
        if torch.is_tensor(extra):  # in the gradient, not in the reported loss (as Tessera logs it)
            loss = loss + (extra - extra.detach())
        # Mixture-of-experts layers' router losses join the objective's gradient, not the reported value
        # (as Tessera logs the LM loss): r − r.detach() is 0 with r's gradient.
        router = sum(b.moe.router_loss for b in self.blocks if b.moe is not None)
        return loss + (router - router.detach()) if torch.is_tensor(router) else loss


DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def gemm_rate(n, dtype, device="cpu"):
    """GFLOP/s of torch.matmul(a, b, out=c) on N×N matrices (median of 5 after one warm-up)."""
    a = torch.rand((n, n), device=device).to(dtype)  # random: zeros run faster on GPUs
    b = torch.rand((n, n), device=device).to(dtype)
    c = torch.empty((n, n), dtype=dtype, device=device)
    rates = []
    for i in range(6):
        sync(device)
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        sync(device)
        s = time.perf_counter() - t0
        if i > 0:
            rates.append(2.0 * n * n * n / s / 1e9)
    return statistics.median(rates)


def arg_parser():
    """The options every baseline script takes (tessera bench passes them)."""
    p = argparse.ArgumentParser()
    for k in ("layers", "hidden", "heads", "groups", "vocab", "seq", "batch"):
        p.add_argument(f"--{k}", type=int)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--flops", type=float, help="model FLOPs per step (same accounting as Tessera)")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                   help="bf16: torch.autocast('cpu', dtype=torch.bfloat16) around forward and loss")
    p.add_argument("--gemm", type=int, default=0, help="time an N×N×N torch.matmul instead of the model")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="the --gemm operands' dtype")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--llama", default="", help="GPT only: JSON of the ffn width and Llama-style options "
                   "(ffn, rope, learned_positions, rotary_percent, rotary_base, rotary_interleaved, rms_norm, swiglu, "
                   "glu: {alpha, clamp, offset}, nope_layers, untied, bias, qkv_bias, qk_layernorm, squared_relu, "
                   "softmax_type, window, window_layers, "
                   "yarn: {factor, original, beta_fast, beta_slow, mscale, mscale_all_dim, round_to_int}, and moe: "
                   "{experts, topk, ffn, shared, pre_softmax, scale, aux, z}, mtp: {layers, scale, repeated})")
    return p


def setup(p):
    """Parses the options and sets threads and TF32; with --gemm prints the GEMM rate and returns None."""
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if "tf32" in (a.precision, a.dtype):  # f32 tensors, TF32 tensor-core matmuls (GPUs only)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if a.gemm:
        print(json.dumps({"gflops": gemm_rate(a.gemm, DTYPES[a.dtype], a.device), "n": a.gemm, "dtype": a.dtype,
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "mkldnn": torch.backends.mkldnn.is_available()}))
        return None
    missing = [k for k in ("layers", "hidden", "heads", "groups", "vocab", "seq", "batch", "flops")
               if getattr(a, k) is None]
    if missing:
        p.error("the model needs " + ", ".join("--" + k for k in missing))
    torch.manual_seed(0)
    return a


def time_training(a, model, loss_of_step):
    """Times AdamW training steps of `model` (loss_of_step() runs forward and returns the loss) and
    prints the JSON line tessera bench reads."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    if a.precision == "bf16":
        def autocast():
            return torch.autocast(a.device, dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    times = []
    for i in range(a.warmup + a.iters):
        sync(a.device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_of_step()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync(a.device)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    print(json.dumps({"ms_per_step": s * 1e3, "tokens_per_s": a.batch * a.seq / s, "gflops": a.flops / s / 1e9,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "peak_device_mib": torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else 0,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "precision": "bf16-autocast" if a.precision == "bf16" else a.precision, "loss": loss.item()}))


def main():
    a = setup(arg_parser())
    if a is None:
        return
    model = GPT(a.layers, a.hidden, a.heads, a.groups, a.vocab, a.seq, json.loads(a.llama) if a.llama else None).to(a.device)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    time_training(a, model, lambda: model(x, y))


if __name__ == "__main__":
    main()
