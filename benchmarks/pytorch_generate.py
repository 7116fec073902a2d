"""Greedy generation with PyTorch's own key/value-cached loop on the GPT of plugins/gpt (GPT-2 shape:
learned positions, pre-LayerNorm, GELU, tied head; num_query_groups for MQA/GQA), random weights,
timed as tests/model/bench_generation.cpp times Tessera's cached and uncached generation, so that
both run on the same machine in the same run (docs/benchmarks.md, "Generation with a KV cache").

The cache is Megatron-LM's inference_params (and HF's past_key_values): per layer K and V
[B, max_len, groups, D], filled by one forward over the prompt, then one token per step attending
to the cached keys. Prompts of different lengths in a batch: right-padded, each row at its own
position, keys past each row's length masked.

Prints one JSON line: uncached tokens/s (batch 1, a full forward per token), cached tokens/s at
batch 1 and at --batch (row b's prompt the first prompt − b tokens), whether cached and uncached
tokens agree, and the largest relative logit difference.

Run with Debian's /usr/bin/python3 (python3-torch 1.13) on the CPU.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, G):
        super().__init__()
        self.H, self.G, self.D = H, G, C // H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.q = nn.Linear(C, C)
        self.kv = nn.Linear(C, 2 * G * self.D)
        self.proj = nn.Linear(C, C)
        self.fc1 = nn.Linear(C, 4 * C)
        self.fc2 = nn.Linear(4 * C, C)

    def forward(self, x, cache, pos, key_mask):
        """x [B,T,C] at positions pos [B,T]; cache (K, V) [B, L, G, D] or None; key_mask [B, T, Tk] bool."""
        B, T, C = x.shape
        a = self.ln1(x)
        q = self.q(a).view(B, T, self.H, self.D)
        k, v = self.kv(a).split(self.G * self.D, dim=-1)
        k, v = k.reshape(B, T, self.G, self.D), v.reshape(B, T, self.G, self.D)
        if cache is not None:
            K, V = cache
            rows = torch.arange(B).unsqueeze(1).expand(B, T)
            K[rows, pos] = k
            V[rows, pos] = v
            Tk = key_mask.shape[-1]
            k, v = K[:, :Tk], V[:, :Tk]
        r = self.H // self.G
        q = q.transpose(1, 2)
        k = k.transpose(1, 2).repeat_interleave(r, dim=1)
        v = v.transpose(1, 2).repeat_interleave(r, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.D))
        att = att.masked_fill(~key_mask[:, None], float("-inf"))
        y = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, H, G, V, T):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H, G) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, pos, key_mask, caches=None):
        x = self.wte(idx) + self.wpe(pos)
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i], pos, key_mask)
        return self.ln_f(x) @ self.wte.weight.t()


def uncached_logits(model, ids):
    T = len(ids)
    idx = torch.tensor([ids])
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))[None]
    return model(idx, torch.arange(T)[None], mask)[0, -1]


class Session:
    """The cached loop: prefill the right-padded prompts, then one token per row per step."""

    def __init__(self, model, prompts, L, G, D):
        B = len(prompts)
        self.model, self.lengths = model, [len(p) for p in prompts]
        self.caches = [(torch.zeros(B, L, G, D), torch.zeros(B, L, G, D)) for _ in model.blocks]
        T = max(self.lengths)
        idx = torch.tensor([p + [0] * (T - len(p)) for p in prompts])
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))[None].expand(B, T, T)
        logits = model(idx, torch.arange(T)[None].expand(B, T), mask, self.caches)
        self.first = logits[torch.arange(B), torch.tensor(self.lengths) - 1]

    def step(self, next_ids):
        B = len(next_ids)
        pos = torch.tensor(self.lengths)[:, None]
        Tk = max(self.lengths) + 1
        mask = (torch.arange(Tk)[None] <= pos)[:, None, :]  # [B, 1, Tk]
        logits = self.model(torch.tensor(next_ids)[:, None], pos, mask, self.caches)[:, 0]
        self.lengths = [n + 1 for n in self.lengths]
        return logits


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--groups", type=int, default=0, help="query groups (0: heads, MHA; 1: MQA)")
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--uncached", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    G = a.groups or a.heads
    D = a.hidden // a.heads
    model = GPT(a.layers, a.hidden, a.heads, G, a.vocab, a.seq).eval()
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, a.vocab, (a.prompt,), generator=g).tolist()
    with torch.no_grad():
        Session(model, [prompt], a.seq, G, D)  # warm-up
        t0 = time.perf_counter()
        s = Session(model, [prompt], a.seq, G, D)
        logits, cached_logits, cached_ids = s.first, [], []
        for i in range(a.new):
            cached_logits.append(logits[0])
            cached_ids.append(int(logits[0].argmax()))
            if i + 1 < a.new:
                logits = s.step([cached_ids[-1]])
        cached1 = a.new / (time.perf_counter() - t0)

        prompts = [prompt[: a.prompt - min(b, a.prompt - 1)] for b in range(a.batch)]
        t0 = time.perf_counter()
        s = Session(model, prompts, a.seq, G, D)
        logits = s.first
        for i in range(a.new - 1):
            logits = s.step(logits.argmax(-1).tolist())
        cachedB = a.batch * a.new / (time.perf_counter() - t0)

        uncached1, worst, same = 0.0, 0.0, True
        if a.uncached:
            ids = list(prompt)
            t0 = time.perf_counter()
            for i in range(a.new):
                row = uncached_logits(model, ids)
                worst = max(worst, float((row - cached_logits[i]).abs().max() / row.abs().max()))
                nxt = int(row.argmax())
                same = same and nxt == cached_ids[i]
                ids.append(nxt)
            uncached1 = a.new / (time.perf_counter() - t0)
    print(json.dumps({"layers": a.layers, "hidden": a.hidden, "heads": a.heads, "groups": a.groups, "vocab": a.vocab,
                      "seq": a.seq, "prompt": a.prompt, "new_tokens": a.new, "threads": a.threads,
                      "torch": torch.__version__, "uncached_tokens_per_s": round(uncached1, 2),
                      "cached_tokens_per_s": round(cached1, 2), "batch": a.batch,
                      "cached_batch_tokens_per_s": round(cachedB, 2), "same_tokens": same,
                      "max_rel_logit_diff": float(f"{worst:.3g}")}))


if __name__ == "__main__":
    main()
