#!/usr/bin/env python3
"""Fill-in-the-middle as BigCode's Megatron-LM applies it (megatron/data/gpt_dataset.py, branch
multi-query-attention after commit f5981104 "file level FIM": permute, fim_split_and_permute_sequence
and the FIM block of GPTDataset.__getitem__), transcribed from the description in
shared/reference/megatron-bert-t5-fim-facts.md section 3, with numpy's RandomState for the draws.

Tessera's two deviations are switches, so the same code shows BigCode's behaviour and Tessera's:
  per_sample_rng  a RandomState(sample_seed(seed, index)) per sample (BigCode: one per dataset)
  keep_eod        an EOD (or split token) at a segment's start or doubled is kept (BigCode drops it)

The tokenizer is a byte tokenizer: ids 0..255 are bytes; text is decoded with surrogateescape, so an
invalid UTF-8 byte is one character and survives re-encoding (Tessera's choice for windows cut inside
a character; BigCode's HF tokenizer decodes those to U+FFFD).

Usage: bigcode_fim_reference.py in.json out.json
  in:  {"eod", "pre", "mid", "suf", "pad", "split" (id or null), "rate", "spm_rate", "fragment_rate",
        "seed", "keep_eod", "per_sample_rng", "windows": [{"index": i, "tokens": [...]}, ...]}
       or {"draws": [{"seed": s, "ops": [["binomial", n, p] | ["randint", low, high], ...]}, ...]}
  out: {"windows": [[...], ...]} or {"draws": [[...], ...]}
"""
import json
import sys

import numpy as np

M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def sample_seed(seed, index):
    return splitmix64(splitmix64(seed) ^ (index & M64)) >> 32


class ByteTokenizer:
    def detokenize(self, ids):
        return bytes(int(i) for i in ids).decode("utf-8", errors="surrogateescape")

    def tokenize(self, text):
        return list(text.encode("utf-8", errors="surrogateescape"))


def permute(sample, np_rng, fim_rate, fim_spm_rate, tokenizer, prefix_tok_id, middle_tok_id, suffix_tok_id):
    # BigCode's permute with truncate_or_pad=False (as the dataset calls it).
    if np_rng.binomial(1, fim_rate):
        contents = tokenizer.detokenize(sample)
        boundaries = list(np_rng.randint(low=0, high=len(contents) + 1, size=2))
        boundaries.sort()
        prefix = contents[: boundaries[0]]
        middle = contents[boundaries[0]: boundaries[1]]
        suffix = contents[boundaries[1]:]
        prefix = np.array([*tokenizer.tokenize(prefix)], dtype=np.int64)
        middle = np.array([*tokenizer.tokenize(middle)], dtype=np.int64)
        suffix = np.array([*tokenizer.tokenize(suffix)], dtype=np.int64)
        if np_rng.binomial(1, fim_spm_rate):
            new_sample = np.concatenate([[prefix_tok_id, suffix_tok_id], suffix, [middle_tok_id], prefix, middle])
        else:
            new_sample = np.concatenate([[prefix_tok_id], prefix, [suffix_tok_id], suffix, [middle_tok_id], middle])
    else:
        new_sample = sample
    return list(new_sample)


def fim_getitem(sample, np_rng, cfg, tokenizer):
    sample = np.array(sample, dtype=np.int64)
    sample_len = sample.shape[0]
    eod, pre, mid, suf, pad = cfg["eod"], cfg["pre"], cfg["mid"], cfg["suf"], cfg["pad"]
    split = cfg["split"]
    keep = cfg["keep_eod"]

    def perm(seq, rate):
        return permute(seq, np_rng, rate, cfg["spm_rate"], tokenizer, pre, mid, suf)

    def fim_split_and_permute_sequence(sequence):
        if split is None:
            return perm(sequence, cfg["rate"])
        fragment_breaks = np.argwhere(sequence == split)
        if fragment_breaks.shape == (0, 1):
            return perm(sequence, cfg["rate"])
        if not np_rng.binomial(1, cfg["rate"]):
            return list(sequence)
        curr_start_position = 0
        new_samples = []
        for loc in np.nditer(fragment_breaks):
            if loc - curr_start_position > 0:
                permuted = perm(sequence[curr_start_position:loc], cfg["fragment_rate"])
                new_samples += [permuted, [split]]
            elif keep:
                new_samples += [[split]]
            curr_start_position = loc + 1
        permuted = perm(sequence[curr_start_position:], cfg["fragment_rate"])
        new_samples.append(permuted)
        return list(np.concatenate(new_samples))

    segment_breaks = np.argwhere(sample == eod)
    if segment_breaks.shape != (0, 1):
        curr_start_position = 0
        new_samples = []
        for loc in np.nditer(segment_breaks):
            if loc - curr_start_position > 0:
                permuted = fim_split_and_permute_sequence(sample[curr_start_position:loc])
                new_samples += [permuted, [eod]]
            elif keep:
                new_samples += [[eod]]
            curr_start_position = loc + 1
        permuted = fim_split_and_permute_sequence(sample[curr_start_position:])
        new_samples.append(permuted)
        sample = np.concatenate([np.array(s, dtype=np.int64) for s in new_samples])
    else:
        sample = np.array(fim_split_and_permute_sequence(sample), dtype=np.int64)
    diff = sample.shape[0] - sample_len
    if diff > 0:
        sample = sample[:sample_len]
    elif diff < 0:
        sample = np.concatenate([sample, np.full((-1 * diff), pad)])
    return [int(t) for t in sample]


def main():
    cfg = json.load(open(sys.argv[1]))
    out = {}
    if "draws" in cfg:
        out["draws"] = []
        for d in cfg["draws"]:
            rng = np.random.RandomState(d["seed"])
            vals = []
            for op in d["ops"]:
                if op[0] == "binomial":
                    vals.append(int(rng.binomial(op[1], op[2])))
                else:
                    vals += [int(v) for v in rng.randint(low=op[1], high=op[2], size=2)]
            out["draws"].append(vals)
    else:
        tokenizer = ByteTokenizer()
        shared = np.random.RandomState(seed=cfg["seed"])  # BigCode: one generator for the dataset
        out["windows"] = []
        for w in cfg["windows"]:
            rng = np.random.RandomState(sample_seed(cfg["seed"], w["index"])) if cfg["per_sample_rng"] else shared
            out["windows"].append(fim_getitem(w["tokens"], rng, cfg, tokenizer))
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
