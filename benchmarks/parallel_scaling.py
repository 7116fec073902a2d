"""Tensor, pipeline and data parallelism at 1, 2 and 4 ranks on one machine, with PyTorch's
one-process step on the same model shape in the same run.

Runs `mpirun -np N tessera train CONFIG` for each layout for a few iterations on the config's data
and reports the median ms/iteration (iterations after the first), tokens/s, achieved GFLOP/s
(Megatron-LM's model-FLOPs accounting, summed over all ranks), the pipeline bubble Tessera measured
(share of step time the stages spent blocked receiving) against 1F1B's theory (p−1)/(m+p−1), and
the peak microbatches the first stage held, and rank 0's optimizer state (dpNz: distributed_adam,
1/dp of Adam's). Prints a Markdown table for docs/benchmarks.md.

usage: /usr/bin/python3 benchmarks/parallel_scaling.py [--config configs/gpt/gpt2-124m.toml]
           [--global-batch 16] [--iters 3] [--layouts 1 tp2 tp4 pp2 pp4 dp2 dp4 dp2e2] [--no-pytorch]
           [--set KEY=VALUE ...]
A layout is 1, tpN, ppN, ppNvV (interleaved), dpN, with eM for expert_model_parallel_size M (mixture-of-experts
configs) and z for distributed_adam: dp4e2z.
Needs a preprocessed corpus at the config's data_path (README's first command makes one).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESSERA = os.path.join(ROOT, "build", "bin", "tessera")
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]

ITER = re.compile(r"iteration\s+(\d+)/.*elapsed time per iteration \(ms\): (\S+) .*tokens/s: (\S+) \| GFLOP/s: (\S+) \|")
BUBBLE = re.compile(r"pipeline bubble: stages spent (\S+)% .* = (\S+)% for p = (\d+), v = (\d+), m = (\d+)")
STATE = re.compile(r"optimizer state: (\d+) elements on this rank")
HELD = re.compile(r"pipeline: stage 0 of \d+ held at most (\d+) ")
MODEL = re.compile(r"GPT: (\d+) layers, hidden (\d+), (\d+) heads \((\d+) query groups\), ffn \d+, seq (\d+), "
                   r"vocab \d+ \(padded (\d+)\)")


def layout_of(name):
    """'tp2' → (ranks, overrides); 'pp2v3': pp 2 with 3 model chunks per rank (interleaved)."""
    if name == "1":
        return 1, {}
    m = re.fullmatch(r"(tp|pp|dp)(\d+)(?:v(\d+))?(?:e(\d+))?(z?)", name)
    if not m:
        sys.exit(f"unknown layout {name!r}: use 1, tpN, ppN, ppNvV, dpN, dpNeM (expert parallel M) or …z "
                 "(distributed_adam)")
    kind, n = m.group(1), int(m.group(2))
    key = {"tp": "tensor_model_parallel_size", "pp": "pipeline_model_parallel_size", "dp": None}[kind]
    overrides = {f"parallel.{key}": n} if key else {}
    if m.group(3):
        overrides["parallel.virtual_pipeline_model_parallel_size"] = int(m.group(3))
    if m.group(4):
        overrides["parallel.expert_model_parallel_size"] = int(m.group(4))
    if m.group(5):
        overrides["optimizer.plugin"] = "distributed_adam"
    return n, overrides


def run_layout(config, name, global_batch, iters, extra_sets=()):
    ranks, overrides = layout_of(name)
    sets = {"training.train_iters": iters, "training.global_batch_size": global_batch, "training.eval_interval": 0,
            "logging.log_interval": 1, **dict(s.split("=", 1) for s in extra_sets), **overrides}
    cmd = ([] if ranks == 1 else MPIRUN + ["-np", str(ranks)]) + [TESSERA, "train", config]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"{name} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    rows = [(int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4))) for m in ITER.finditer(p.stdout)]
    steady = [r for r in rows if r[0] > 1] or rows
    result = {"layout": name, "ranks": ranks, "ms": statistics.median(r[1] for r in steady),
              "tokens_per_s": statistics.median(r[2] for r in steady),
              "gflops": statistics.median(r[3] for r in steady), "model": MODEL.search(p.stdout).groups()}
    if (b := BUBBLE.search(p.stdout)):
        result.update(bubble=float(b.group(1)), theory=float(b.group(2)), m=int(b.group(5)))
    if (st := STATE.search(p.stdout)):
        result["state"] = int(st.group(1))
    if (h := HELD.search(p.stdout)):
        result["held"] = int(h.group(1))
    return result


def pytorch_row(model, micro, global_batch, flops_per_iteration, iters):
    layers, hidden, heads, groups, seq, vocab = (int(x) for x in model)
    flops = flops_per_iteration * micro / global_batch  # one microbatch's step
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "benchmarks", "pytorch_gpt.py"), "--layers", str(layers), "--hidden",
           str(hidden), "--heads", str(heads), "--groups", str(groups), "--vocab", str(vocab), "--seq", str(seq),
           "--batch", str(micro), "--iters", str(iters), "--threads", str(os.cpu_count()), "--flops", str(flops)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--config", default=os.path.join(ROOT, "configs", "gpt", "gpt2-124m.toml"))
    a.add_argument("--global-batch", type=int, default=16)
    a.add_argument("--iters", type=int, default=3)
    a.add_argument("--layouts", nargs="+",
                   default=["1", "tp2", "tp4", "pp2", "pp4", "dp2", "dp4", "pp2v2", "pp2v3", "dp2z", "dp4z"])
    a.add_argument("--no-pytorch", action="store_true")
    a.add_argument("--set", action="append", default=[], help="KEY=VALUE config override for every layout")
    args = a.parse_args()
    results = []
    for name in args.layouts:
        r = run_layout(args.config, name, args.global_batch, args.iters, args.set)
        print(json.dumps(r), flush=True)
        results.append(r)
    base = next((r for r in results if r["layout"] == "1"), results[0])
    print()
    print("| layout | ranks | ms/iteration | tokens/s | GFLOP/s (all ranks) | vs 1 rank | bubble measured | theory (p−1)/(v·m+p−1) | first stage held | optimizer state, rank 0 (M elements) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        bubble = f"{r['bubble']:.1f}%" if "bubble" in r else ""
        theory = f"{r['theory']:.1f}% (m = {r['m']})" if "theory" in r else ""  # (p−1)/(v·m+p−1)
        held = f"{r['held']} microbatches" + (" × chunks" if "v" in r["layout"] else "") if "held" in r else ""
        print(f"| {r['layout']} | {r['ranks']} | {r['ms']:.0f} | {r['tokens_per_s']:.0f} | {r['gflops']:.1f} | "
              f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}× | {bubble} | {theory} | {held} | "
              f"{r.get('state', 0) / 1e6:.1f} |")
    if not args.no_pytorch:
        layers, hidden, heads, groups, seq, vocab = base["model"]
        micro = 4
        m = re.search(r"micro_batch_size\s*=\s*(\d+)", open(args.config).read())
        if m:
            micro = int(m.group(1))
        flops = base["gflops"] * 1e9 * base["ms"] / 1e3  # per iteration
        pt = pytorch_row(base["model"], micro, args.global_batch, flops, args.iters)
        if pt:
            print(f"| PyTorch 1 process (micro batch {micro}) | 1 | {pt['ms_per_step'] * args.global_batch / micro:.0f} | "
                  f"{pt['tokens_per_s']:.0f} | {pt['gflops']:.1f} | {pt['tokens_per_s'] / base['tokens_per_s']:.2f}× | | | | |")


if __name__ == "__main__":
    main()
