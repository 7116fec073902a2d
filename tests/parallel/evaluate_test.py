"""`tessera evaluate CONFIG --load SAVED` (issue 14 item 6): the validation and test loss of saved weights.

usage: evaluate_test.py TESSERA CONFIG WORKDIR [MPIEXEC...]

One process: 10 iterations of CONFIG (data.split 80,10,10, checkpoints at 5 and 10, validation every
5); `evaluate --load` of each checkpoint prints " validation loss at iteration N on validation set |
lm loss value: X | lm loss PPL: Y |" with X the string training logged at iteration N, and a test-set
line; the save folder (final weights, without the vocabulary padding rows) evaluates with a warning
that says so. Errors, each exit code 1 naming the file or key: a config of another model kind, a
checkpoint folder without its model file, a config whose shapes differ, a folder with no saved model.
With MPIEXEC: the tp1 checkpoint evaluated under tp2 (also on the simulated device), tp2·pp2 and dp2
prints the one-process lines, and a
tp2·pp2 checkpoint (4 ranks) evaluated in one process prints that run's validation losses.
"""
import os
import re
import shutil
import subprocess
import sys

VALID = re.compile(r"validation loss at iteration (\d+) \| lm loss value: (\S+)")
EVAL = re.compile(r"validation loss at (.+?) on (validation|test) set \| lm loss value: (\S+) \| lm loss PPL: (\S+) \|")
SPLIT = ["--set", "data.split=80,10,10"]


def run(cmd, expect_ok=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if expect_ok and p.returncode != 0:
        sys.exit(f"FAIL ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    return p


def evaluated(out):
    """{(where, split): (loss, ppl)} of an evaluate run."""
    return {(m.group(1), m.group(2)): (m.group(3), m.group(4)) for m in EVAL.finditer(out)}


def expect_error(cmd, needles, what):
    p = run(cmd, expect_ok=False)
    if p.returncode != 1:
        sys.exit(f"FAIL: {what}: exit code {p.returncode}, expected 1 (an error):\n{p.stdout}")
    for n in needles:
        if n not in p.stdout:
            sys.exit(f"FAIL: {what}: the output does not name {n!r}:\n{p.stdout}")
    print(f"{what}: fails naming {needles}")


def check_against_training(tessera, config, save, logged, extra, what):
    """evaluate of iter_5 and iter_10 prints the validation losses training logged, and a test line."""
    lines = {}
    for it in (5, 10):
        out = run([tessera, "evaluate", config, "--load", os.path.join(save, f"iter_{it:07d}")] + SPLIT + extra).stdout
        got = evaluated(out)
        valid, test = got.get((f"iteration {it}", "validation")), got.get((f"iteration {it}", "test"))
        if valid is None or test is None:
            sys.exit(f"FAIL: {what}: no validation and test lines for iteration {it}:\n{out}")
        if valid[0] != logged[str(it)]:
            sys.exit(f"FAIL: {what}: evaluate of iteration {it} gives validation loss {valid[0]}, training logged "
                     f"{logged[str(it)]}")
        for loss, ppl in (valid, test):
            if abs(float(ppl) - 2.718281828 ** float(loss)) > 1e-3 * float(ppl):
                sys.exit(f"FAIL: {what}: PPL {ppl} is not exp({loss})")
        lines[it] = got
    print(f"{what}: evaluate of iterations 5 and 10 gives the validation losses training logged "
          f"({logged['5']}, {logged['10']}) and test losses {lines[5][('iteration 5', 'test')][0]}, "
          f"{lines[10][('iteration 10', 'test')][0]}")
    return lines


def main():
    tessera, config, workdir = sys.argv[1:4]
    mpiexec = sys.argv[4:]
    os.makedirs(workdir, exist_ok=True)
    save = os.path.join(workdir, "run")
    shutil.rmtree(save, ignore_errors=True)
    out = run([tessera, "train", config, "--set", f"checkpoint.save={save}", "--set", "checkpoint.save_interval=5"]
              + SPLIT).stdout
    logged = {m.group(1): m.group(2) for m in VALID.finditer(out)}
    one = check_against_training(tessera, config, save, logged, [], "one process")

    # Final weights: no padding rows, a warning, still a number.
    out = run([tessera, "evaluate", config, "--load", save, "--split", "valid"] + SPLIT).stdout
    if ("the final weights", "validation") not in evaluated(out) or "holds no vocabulary padding rows" not in out:
        sys.exit(f"FAIL: evaluate of final weights: expected a validation line and a padding warning:\n{out}")
    if ("the final weights", "test") in evaluated(out):
        sys.exit(f"FAIL: --split valid printed a test line:\n{out}")
    print("final weights: evaluated, with the padding warning")

    ckpt = os.path.join(save, "iter_0000010")
    expect_error([tessera, "evaluate", config, "--load", ckpt, "--set", "model.plugin=bert"] + SPLIT,
                 ["holds a gpt model", "metadata.json", "model.plugin is bert in --set"], "another model kind")
    broken = os.path.join(workdir, "broken")
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(ckpt, os.path.join(broken, "iter_0000010"))
    os.remove(os.path.join(broken, "iter_0000010", "model_tp0_pp0.safetensors"))
    expect_error([tessera, "evaluate", config, "--load", os.path.join(broken, "iter_0000010")] + SPLIT,
                 [os.path.join(broken, "iter_0000010", "model_tp0_pp0.safetensors")], "missing model file")
    expect_error([tessera, "evaluate", config, "--load", ckpt, "--set", "model.hidden_size=64"] + SPLIT,
                 ["model_tp0_pp0.safetensors", "and the saved weights, disagree"], "other shapes")
    expect_error([tessera, "evaluate", config, "--load", workdir] + SPLIT,
                 [f"{workdir} does not hold a saved model"], "no saved model")
    expect_error([tessera, "evaluate", config, "--load", ckpt, "--set", "training.eval_iters=0", "--set", "training.eval_interval=0"] + SPLIT,
                 ["training.eval_iters = 0 in --set"], "eval_iters = 0")

    if not mpiexec:
        return
    # The one-process checkpoint under other layouts (the padded vocabulary kept at 384 rows).
    # On the simulated device (sim), the weights are loaded into device memory.
    for np_, tp, pp, dev in (("2", "2", "1", "cpu"), ("4", "2", "2", "cpu"), ("2", "1", "1", "cpu"),
                             ("2", "2", "1", "sim")):
        layout = ["--set", f"parallel.tensor_model_parallel_size={tp}", "--set",
                  f"parallel.pipeline_model_parallel_size={pp}", "--set",
                  f"model.make_vocab_size_divisible_by={128 // int(tp)}", "--set", f"training.device={dev}"]
        out = run(mpiexec + ["-np", np_, tessera, "evaluate", config, "--load", ckpt] + SPLIT + layout).stdout
        if evaluated(out) != one[10]:
            sys.exit(f"FAIL: np={np_} tp={tp} pp={pp} on {dev}: {evaluated(out)}, one process {one[10]}:\n{out}")
        print(f"np={np_} tp={tp} pp={pp} on {dev}: evaluate prints the one-process lines {one[10]}")
    # A tp2·pp2 checkpoint, evaluated in one process and on its own layout.
    save4 = os.path.join(workdir, "run_tp2pp2")
    shutil.rmtree(save4, ignore_errors=True)
    layout = ["--set", "parallel.tensor_model_parallel_size=2", "--set", "parallel.pipeline_model_parallel_size=2",
              "--set", "model.make_vocab_size_divisible_by=64"]
    out = run(mpiexec + ["-np", "4", tessera, "train", config, "--set", f"checkpoint.save={save4}",
                         "--set", "checkpoint.save_interval=5"] + SPLIT + layout).stdout
    logged4 = {m.group(1): m.group(2) for m in VALID.finditer(out)}
    check_against_training(tessera, config, save4, logged4, [], "tp2·pp2 checkpoint in one process")


if __name__ == "__main__":
    main()
