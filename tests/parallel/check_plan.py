"""`tessera plan` against `tessera train`'s own log lines, exactly: for each layout, the plan's
stage-0 parameters per rank must equal the trainer's "parameters: N" line (world rank 0 is stage 0,
tp rank 0), and with pipeline parallelism the plan's peak held microbatches and activation elements
on stage 0 must equal "pipeline: stage 0 of P held at most K microbatches' activations at once
(E elements)". Every other stage and tp rank is compared in one process by
tests/model/test_model_plan.cpp; pp = 1's held elements there against TrainingRecord.

usage: check_plan.py TESSERA CONFIG WORKDIR MPIEXEC... -- LAYOUT...
LAYOUT: "np=1" or "np=4,tp=2,pp=2" (keys np, tp, pp, cp; np 1 runs without mpirun). Prints a predicted-vs-measured table.
"""
import json
import re
import subprocess
import sys

PARAMS = re.compile(r"parameters: (\d+) \(")
HELD = re.compile(r"pipeline: stage 0 of (\d+) held at most (\d+) microbatches' activations at once \((\d+) elements\)")


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    return p.stdout


def main():
    tessera, config, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
    rest = sys.argv[4:]
    split = rest.index("--")
    mpiexec, layouts = rest[:split], rest[split + 1:]
    rows, failed = [], False
    for layout in layouts:
        keys = dict(kv.split("=") for kv in layout.split(","))
        np_ = int(keys["np"])
        sets = ["--set", f"parallel.tensor_model_parallel_size={keys.get('tp', 1)}",
                "--set", f"parallel.pipeline_model_parallel_size={keys.get('pp', 1)}",
                "--set", f"parallel.context_parallel_size={keys.get('cp', 1)}",
                "--set", "training.train_iters=2", "--set", "training.eval_interval=0"]
        plan = json.loads(run([tessera, "plan", config, "--ranks", str(np_), "--json"] + sets))
        stage0 = plan["stages"][0]
        train = [tessera, "train", config] + sets
        log = run(train if np_ == 1 else mpiexec + ["--bind-to", "none", "-np", str(np_)] + train)
        params = PARAMS.search(log)
        if not params:
            sys.exit(f"{layout}: no 'parameters:' line in the log:\n{log}")
        checks = [("parameters per rank (stage 0)", stage0["parameters"], int(params.group(1)))]
        held = HELD.search(log)
        if plan["pp"] > 1:
            if not held:
                sys.exit(f"{layout}: no 'pipeline: stage 0 … held' line in the log:\n{log}")
            checks.append(("microbatches held (stage 0)", stage0["peak_passes_held"], int(held.group(2))))
            checks.append(("activation elements held (stage 0)", stage0["peak_held_elements"], int(held.group(3))))
        for what, predicted, measured in checks:
            ok = predicted == measured
            failed |= not ok
            rows.append(f"| {layout} (tp {plan['tp']}, pp {plan['pp']}, dp {plan['dp']}, m {plan['num_microbatches']}) "
                        f"| {what} | {predicted} | {measured} | {'=' if ok else 'DIFFERENT'} |")
    print("| layout | figure | plan | tessera train | |\n|---|---|---:|---:|---|")
    print("\n".join(rows))
    if failed:
        sys.exit("the plan differs from the measurement")


if __name__ == "__main__":
    main()
