"""Runs `tessera train` in one process and under mpirun in several layouts, and requires every
layout's per-iteration loss and grad norm (and validation loss) to equal the single-process run
within a relative tolerance.

usage: compare_layouts.py TESSERA CONFIG WORKDIR TOLERANCE MPIEXEC... -- LAYOUT...
LAYOUT: "np=2" or "np=8,tp=2,pp=2" (keys: np, tp, pp, sp, ov) — tp/pp map to [parallel] overrides,
sp=1 turns on sequence parallelism, ov=1 overlaps the gradient all-reduce with backward.
"""
import re
import subprocess
import sys

LINE = re.compile(r"iteration\s+(\d+)/.*lm loss: (\S+) \| grad norm: (\S+) \|")
VALID = re.compile(r"validation loss at iteration (\d+) \| lm loss value: (\S+)")


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
    overlapped = re.search(r"data parallel: (\d+) of \d+ gradient all-reduces started while backward ran", p.stdout)
    values["overlapped"] = int(overlapped.group(1)) if overlapped else None
    return values


def main():
    tessera, config, tol = sys.argv[1], sys.argv[2], float(sys.argv[4])
    rest = sys.argv[5:]
    split = rest.index("--")
    mpiexec, layouts = rest[:split], rest[split + 1:]
    base = run([tessera, "train", config])
    base.pop("overlapped")
    worst = 0.0
    for layout in layouts:
        opts = dict(kv.split("=") for kv in layout.split(","))
        sets = []
        for key, name in (("tp", "tensor_model_parallel_size"), ("pp", "pipeline_model_parallel_size")):
            if key in opts:
                sets += ["--set", f"parallel.{name}={opts[key]}"]
        if opts.get("sp") == "1":
            sets += ["--set", "parallel.sequence_parallel=true"]
        if opts.get("ov") == "1":
            sets += ["--set", "parallel.overlap_grad_reduce=true"]
        got = run(mpiexec + ["-np", opts["np"], tessera, "train", config] + sets)
        overlapped = got.pop("overlapped")
        if opts.get("ov") == "1" and not overlapped:
            sys.exit(f"{layout}: no gradient all-reduce started during backward ({overlapped})")
        if got.keys() != base.keys():
            sys.exit(f"{layout}: logged {sorted(got)} but one process logged {sorted(base)}")
        for k, v in base.items():
            rel = abs(got[k] - v) / max(abs(v), 1e-12)
            worst = max(worst, rel)
            if rel > tol:
                sys.exit(f"{layout}: {k} = {got[k]!r}, one process {v!r} (relative difference {rel:.2e} > {tol})")
        print(f"{layout}: {len(base)} values equal to one process within {tol}")
    print(f"worst relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
