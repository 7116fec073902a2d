"""Runs `tessera train` in one process and under mpirun in several layouts, and requires every
layout's per-iteration loss and grad norm (and validation loss) to equal the single-process run
within a relative tolerance, and the saved final weights (gathered over tensor-parallel ranks) to
equal the single-process weights.

usage: compare_layouts.py TESSERA CONFIG WORKDIR TOLERANCE MPIEXEC... -- LAYOUT...
LAYOUT: "np=2" or "np=8,tp=2,pp=2" (keys: np, tp, pp, vp, sp, ov, bs, opt, rc, dev) — tp/pp/vp map to
[parallel] overrides, sp=1 turns on sequence parallelism, ov=1 overlaps the gradient all-reduce with
backward, bs=N sets parallel.bucket_size (elements per gradient bucket) to N, opt=dist uses the
distributed_adam optimizer (whose per-rank state must be 1/dp of Adam's), rc turns on activation
recompute ([model]): rc=full (uniform, 1 layer), rc=full2 (uniform, 2 layers), rc=block (block, 1
layer), rc=sel (selective); the one-process run it is compared with recomputes nothing. dev=sim
trains on the simulated device ([training] device = "sim"): its logged values and saved weights must
equal, bit for bit, those of the same layout without dev= listed before it (and, like every layout,
one process's within the tolerance).
"""
import json
import math
import os
import re
import struct
import subprocess
import sys

LINE = re.compile(r"iteration\s+(\d+)/.*lm loss: (\S+) \| grad norm: (\S+) \|")
VALID = re.compile(r"validation loss at iteration (\d+) \| lm loss value: (\S+)")


def model_sets(**keys):
    return [a for k, v in keys.items() for a in ("--set", f"model.{k}={v}")]


RECOMPUTE = {
    "full": model_sets(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1),
    "full2": model_sets(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=2),
    "block": model_sets(recompute_granularity="full", recompute_method="block", recompute_num_layers=1),
    "sel": model_sets(recompute_granularity="selective"),
}


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    values = {}
    for m in LINE.finditer(p.stdout):
        values[f"loss@{m.group(1)}"] = float(m.group(2))
        values[f"grad_norm@{m.group(1)}"] = float(m.group(3))
    for m in VALID.finditer(p.stdout):
        values[f"valid@{m.group(1)}"] = float(m.group(2))
    if not values:
        sys.exit(f"no iteration lines from: {' '.join(cmd)}\n{p.stdout}")
    overlapped = re.search(r"data parallel: (\d+) of (\d+) gradient all-reduces started while backward ran", p.stdout)
    values["overlapped"] = (int(overlapped.group(1)), int(overlapped.group(2))) if overlapped else None
    state = re.search(r"optimizer state: (\d+) elements on this rank", p.stdout)
    values["state"] = int(state.group(1)) if state else None
    buckets = re.search(r"data parallel: gradients in (\d+) bucket", p.stdout)
    values["buckets"] = int(buckets.group(1)) if buckets else None
    held = re.search(r"pipeline: stage 0 of (\d+) held at most (\d+) microbatches", p.stdout)
    values["held"] = (int(held.group(1)), int(held.group(2))) if held else None
    return values


def read_safetensors(path):
    """{name: list of floats} from a safetensors file of f32 tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = (info["shape"], struct.unpack(f"<{(end - begin) // 4}f", data[begin:end]))
    return out


def compare_weights(layout, got_dir, base_dir, tol):
    """The saved final weights (gathered over tp, vocab padding dropped) equal one process's."""
    got, base = read_safetensors(os.path.join(got_dir, "model.safetensors")), \
        read_safetensors(os.path.join(base_dir, "model.safetensors"))
    if got.keys() != base.keys():
        sys.exit(f"{layout}: saved tensors {sorted(got)} but one process saved {sorted(base)}")
    for name, (shape, values) in base.items():
        if got[name][0] != shape:
            sys.exit(f"{layout}: saved {name} has shape {got[name][0]}, one process {shape}")
        diff = math.sqrt(sum((a - b) ** 2 for a, b in zip(got[name][1], values)))
        norm = math.sqrt(sum(b * b for b in values))
        if diff > tol * max(norm, 1e-12):
            sys.exit(f"{layout}: saved {name} differs from one process's by {diff / norm:.2e} (relative) > {tol}")


def main():
    tessera, config, tol = sys.argv[1], sys.argv[2], float(sys.argv[4])
    rest = sys.argv[5:]
    split = rest.index("--")
    mpiexec, layouts = rest[:split], rest[split + 1:]
    workdir = sys.argv[3]
    save = lambda name: ["--set", f"checkpoint.save={os.path.join(workdir, name)}"]
    base = run([tessera, "train", config] + save("weights_one_process"))
    base.pop("overlapped")
    base.pop("buckets")
    base_state = base.pop("state")
    base.pop("held")
    worst = 0.0
    logged = {}  # layout → its logged values, for dev=sim's bitwise comparison
    for layout in layouts:
        opts = dict(kv.split("=") for kv in layout.split(","))
        sets = []
        for key, name in (("tp", "tensor_model_parallel_size"), ("pp", "pipeline_model_parallel_size"),
                          ("vp", "virtual_pipeline_model_parallel_size")):
            if key in opts:
                sets += ["--set", f"parallel.{name}={opts[key]}"]
        if "tp" in opts:
            # Megatron pads the vocabulary to a multiple of make_vocab_size_divisible_by × tp; keep
            # the padded size (and so the model) the one-process run's (the config must use 128).
            sets += ["--set", f"model.make_vocab_size_divisible_by={128 // int(opts['tp'])}"]
        if opts.get("sp") == "1":
            sets += ["--set", "parallel.sequence_parallel=true"]
        if opts.get("ov") == "1":
            sets += ["--set", "parallel.overlap_grad_reduce=true"]
        if "bs" in opts:
            sets += ["--set", f"parallel.bucket_size={opts['bs']}"]
        if opts.get("opt") == "dist":
            sets += ["--set", "optimizer.plugin=distributed_adam"]
        if "rc" in opts:
            sets += RECOMPUTE[opts["rc"]]
        if "dev" in opts:
            sets += ["--set", f"training.device={opts['dev']}"]
        got = run(mpiexec + ["-np", opts["np"], tessera, "train", config] + sets + save(f"weights_{layout}"))
        overlapped = got.pop("overlapped")
        state, buckets = got.pop("state"), got.pop("buckets")
        if opts.get("opt") == "dist" and set(opts) <= {"np", "opt", "ov", "bs"}:
            # ZeRO-1: each of the dp ranks holds 1/dp of Adam's moments, plus at most 16 padding
            # elements per bucket and rank for each moment.
            dp = int(opts["np"])
            buckets = buckets or 0  # dp = 1: no buckets, the state is Adam's
            if state is None or not 0 <= state * dp - base_state <= 2 * 16 * dp * buckets:
                sys.exit(f"{layout}: optimizer state {state} elements per rank with {buckets} buckets; "
                         f"one process's Adam holds {base_state}, so about {base_state / dp:.0f} expected")
        held = got.pop("held")
        if "pp" in opts and int(opts["pp"]) > 1 and "vp" not in opts:
            # 1F1B: the first stage holds at most pp microbatches' activations at once.
            if held is None or held[0] != int(opts["pp"]) or not 1 <= held[1] <= held[0]:
                sys.exit(f"{layout}: first stage held {held} (pp, microbatches); 1F1B allows at most pp")
        # The bucket holding the tied embedding (final only after backward) and those of gradients
        # still to be summed over tp start after backward; with many small buckets (bs=N) and
        # overlap, others must have started during it.
        if opts.get("ov") == "1" and (not overlapped or ("bs" in opts and overlapped[0] == 0)):
            sys.exit(f"{layout}: no gradient all-reduce started during backward ({overlapped})")
        if "bs" in opts and (not overlapped or overlapped[1] < 2):
            sys.exit(f"{layout}: expected several gradient buckets, the log says {overlapped} (overlapped, buckets)")
        if got.keys() != base.keys():
            sys.exit(f"{layout}: logged {sorted(got)} but one process logged {sorted(base)}")
        logged[layout] = got
        if "dev" in opts:
            twin = ",".join(kv for kv in layout.split(",") if not kv.startswith("dev="))
            if twin not in logged:
                sys.exit(f"{layout}: list {twin} before it, to compare the device run with the CPU bit for bit")
            if got != logged[twin]:
                diff = {k: (got[k], logged[twin][k]) for k in got if got[k] != logged[twin][k]}
                sys.exit(f"{layout}: differs from {twin} on the CPU (device, cpu): {diff}")
            compare_weights(layout, os.path.join(workdir, f"weights_{layout}"), os.path.join(workdir, f"weights_{twin}"), 0.0)
        for k, v in base.items():
            rel = abs(got[k] - v) / max(abs(v), 1e-12)
            worst = max(worst, rel)
            if rel > tol:
                sys.exit(f"{layout}: {k} = {got[k]!r}, one process {v!r} (relative difference {rel:.2e} > {tol})")
        # The key bias's true gradient is zero (softmax ignores a shift shared by every key), and
        # Adam's m/√v turns its rounding noise into real steps: weights get 100× the tolerance
        # (measured: 3e-4 on the key bias, 2e-7 elsewhere).
        compare_weights(layout, os.path.join(workdir, f"weights_{layout}"), os.path.join(workdir, "weights_one_process"),
                        100 * tol)
        buckets = f" ({overlapped[0]} of {overlapped[1]} bucket all-reduces overlapped)" if overlapped else ""
        print(f"{layout}: {len(base)} values equal to one process within {tol}{buckets}")
    print(f"worst relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
