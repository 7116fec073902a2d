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


class Block(nn.Module):
    """A pre-LayerNorm layer; causal (GPT) or attending to every token (BERT: no padding in a benchmark)."""

    def __init__(self, C, H, G, causal=True):
        super().__init__()
        self.H, self.G, self.D, self.causal = H, G, C // H, causal
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.q = nn.Linear(C, C)
        self.kv = nn.Linear(C, 2 * G * self.D)
        self.proj = nn.Linear(C, C)
        self.fc1, self.fc2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x, mask):
        B, T, C = x.shape
        a = self.ln1(x)
        q = self.q(a).view(B, T, self.H, self.D).transpose(1, 2)
        k, v = self.kv(a).split(self.G * self.D, dim=-1)
        k = k.reshape(B, T, self.G, self.D).transpose(1, 2).repeat_interleave(self.H // self.G, dim=1)
        v = v.reshape(B, T, self.G, self.D).transpose(1, 2).repeat_interleave(self.H // self.G, dim=1)
        if x.is_cuda:  # the fused kernel PyTorch users run on GPUs
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.D))
            if self.causal:
                att = att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf"))
            y = att.softmax(dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, H, G, V, T):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H, G) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x, self.mask)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


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
    model = GPT(a.layers, a.hidden, a.heads, a.groups, a.vocab, a.seq).to(a.device)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    time_training(a, model, lambda: model(x, y))


if __name__ == "__main__":
    main()
