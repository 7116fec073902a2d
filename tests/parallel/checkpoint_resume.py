"""Resumable checkpoints through `tessera train`: for each layout, 10 iterations uninterrupted; then
5 iterations saving a checkpoint (checkpoint.save_interval = 5); then a resume from it
(checkpoint.load) to iteration 10. `tessera generate` from the checkpoint folder (shards joined
offline) must write the same text as from the final weights the trainer gathered. The resumed run's
logged learning rate, loss and grad norm of iterations 6-10 (and its validation loss; with fp16's
loss scaler also the loss scale and the skipped-iteration count) must equal the uninterrupted run's
as strings, the checkpoint folder must be complete (no .tmp left, latest_checkpointed_iteration.txt
= 5). With --errors, resuming the first layout's checkpoint with a different data-parallel size,
another optimizer, another bucket size, a truncated optimizer file and a bucket size that changes
distributed_adam's shard shapes must each fail with a message naming the mismatch or the file.

With --ep-errors (the first layout must use expert parallelism), its checkpoint resumed with another
expert-parallel size must fail naming the reason (and the keys that load it anyway), `tessera
evaluate` of it must print one validation loss in one process and under ep 2 and 4, and its weights
must load with checkpoint.finetune in one process.

With --etp-errors (the first layout must set tp=2 and etp=1: whole experts on each tp rank), its
checkpoint resumed with the experts split over tp must fail naming the reason, `tessera evaluate` of it
must print one validation loss in one process and under its own layout with and without etp=1,
checkpoint.finetune must load it with the experts split over tp, and `tessera checkpoint reshard`
must refuse it naming the setting.

usage: checkpoint_resume.py TESSERA CONFIG WORKDIR MPIEXEC... -- [--errors | --ep-errors | --etp-errors] LAYOUT...
LAYOUT: "np=1", "np=2,opt=dist", "np=4,tp=2,pp=2" (keys np, tp, pp, ep, etp, cp, opt, dev, prec: ep sets
parallel.expert_model_parallel_size, etp parallel.expert_tensor_parallel_size, cp
parallel.context_parallel_size; dev=sim trains on
the simulated device, so checkpoints are saved from and restored into device memory; prec=bf16 or
prec=fp16 trains in mixed precision, whose f32 master weights, gradients and Adam state are what a
checkpoint holds and the bf16/f16 compute copies are remade from them on resume; fp16 runs
Megatron's dynamic loss scaler from a scale so large (FP16_SCALER) that the first iterations
overflow and are skipped, and it must grow and may overflow again after the checkpoint: the
metadata's loss_scaler object must hold the scaler's state after iteration 5, as the update rule
replayed over the logged skips gives it, and the resumed run must log the same scales and skips)
"""
import json
import os
import re
import shutil
import subprocess
import sys

LINE = re.compile(r"iteration\s+(\d+)/.*\| learning rate: (\S+) \|.*\| lm loss: (\S+) \|(?: [a-z0-9_ ]+: \S+ \|)* grad norm: (\S+) \|"
                  r"(?: loss scale: (\S+) \| number of skipped iterations:\s+(\d+) \|)?")
# The model's statistics after the loss ("load_balancing_loss: X |", docs/moe.md; "mtp_1 loss: Y |",
# docs/mtp.md).
STATISTIC = re.compile(r" ([a-z]+(?:_[a-z0-9]+)+(?: loss)?): (\S+) \|")
VALID = re.compile(r"validation loss at iteration (\d+) \| lm loss value: (\S+)")
# Same LR schedule for the 5-iteration run as for the 10-iteration ones (its default follows train_iters).
COMMON = ["--set", "optimizer.lr_decay_iters=10"]
# fp16's dynamic loss scaler: iteration 1's gradients overflow f16 from a scale of about 2^22 (measured:
# 2^21 does not), so 2^24 skips the first iteration or two (hysteresis 1: each overflow halves the
# scale); a window of 2 finite iterations doubles it again, so the scaler's growth tracker is mid-way
# at the checkpoint and the scale climbs back into overflow after it (measured, one process and
# np=2 with distributed_adam: iterations 1, 2 and 9 skipped, growth after 4, 6 and 8; at the
# checkpoint scale 2^23, growth tracker 1). Resuming with the growth tracker edited to 0, or with
# the initial scale, logs other scales from iteration 6 or 7 on.
FP16_SCALER = {"initial_loss_scale": 2 ** 24, "hysteresis": 1, "loss_scale_window": 2, "growth_factor": 2.0,
               "backoff_factor": 0.5, "min_loss_scale": 1.0}


def command(tessera, config, mpiexec, opts, sets):
    args = [tessera, "train", config] + COMMON + sets
    for key, name in (("tp", "tensor_model_parallel_size"), ("pp", "pipeline_model_parallel_size"),
                      ("ep", "expert_model_parallel_size"), ("etp", "expert_tensor_parallel_size"),
                      ("cp", "context_parallel_size")):
        if key in opts:
            args += ["--set", f"parallel.{name}={opts[key]}"]
    if opts.get("opt") == "dist":
        args += ["--set", "optimizer.plugin=distributed_adam"]
    if "dev" in opts:
        args += ["--set", f"training.device={opts['dev']}"]
    if "prec" in opts:
        args += ["--set", f"training.precision={opts['prec']}"]
    if opts.get("prec") == "fp16":
        args += [a for k, v in FP16_SCALER.items() for a in ("--set", f"training.{k}={v}")]
    return args if opts["np"] == "1" else mpiexec + ["-np", opts["np"]] + args


def run(cmd, expect_ok=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if expect_ok and p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    if not expect_ok and p.returncode == 0:
        sys.exit(f"expected a failure: {' '.join(cmd)}\n{p.stdout}")
    return p


def values(out):
    v = {}
    for m in LINE.finditer(out):
        it = m.group(1)
        v[f"lr@{it}"], v[f"loss@{it}"], v[f"grad_norm@{it}"] = m.group(2), m.group(3), m.group(4)
        for s in STATISTIC.finditer(m.group(0)):  # mixture-of-experts router losses
            v[f"{s.group(1)}@{it}"] = s.group(2)
        if m.group(5) is not None:
            v[f"loss_scale@{it}"], v[f"skipped@{it}"] = m.group(5), m.group(6)
    for m in VALID.finditer(out):
        v[f"valid@{m.group(1)}"] = m.group(2)
    return v


def replay_scaler(skips):
    """Megatron's DynamicGradScaler over iterations whose overflows are `skips` (booleans): the scale
    each iteration ran with, and the state (scale, growth and hysteresis trackers) after the last."""
    o = FP16_SCALER
    scale, growth, hysteresis = float(o["initial_loss_scale"]), 0, o["hysteresis"]
    scales = []
    for skipped in skips:
        scales.append(scale)
        if skipped:
            growth, hysteresis = 0, hysteresis - 1
            if hysteresis <= 0:
                scale = max(scale * o["backoff_factor"], o["min_loss_scale"])
        else:
            growth += 1
            if growth == o["loss_scale_window"]:
                growth, hysteresis, scale = 0, o["hysteresis"], scale * o["growth_factor"]
    return scales, {"scale": scale, "growth_tracker": growth, "hysteresis_tracker": hysteresis}


def check_loss_scaler(layout, full, meta):
    """fp16: iterations 1-5 skipped some steps; the logged scales follow the update rule; the
    checkpoint's loss_scaler object is the state after iteration 5."""
    iters = sorted({int(k.split("@")[1]) for k in full if k.startswith("skipped@")})
    if iters != list(range(1, 11)):
        sys.exit(f"{layout}: fp16 iteration lines without a loss scale: {sorted(full)}")
    skips = [full[f"skipped@{i}"] == "1" for i in iters]
    scales, _ = replay_scaler(skips)
    logged = [float(full[f"loss_scale@{i}"]) for i in iters]
    if logged != scales:
        sys.exit(f"{layout}: logged loss scales {logged} with skips {skips}; the update rule gives {scales}")
    skipped = sum(skips[:5])
    if skipped == 0 or skipped == 5:
        sys.exit(f"{layout}: {skipped} of iterations 1-5 skipped; the test needs some skipped (FP16_SCALER) "
                 "and some taken")
    want = dict(replay_scaler(skips[:5])[1], skipped_iterations=skipped)
    got = meta.get("loss_scaler")
    if got != want or meta.get("optimizer_steps") != 5 - skipped:
        sys.exit(f"{layout}: checkpoint metadata loss_scaler {got}, optimizer_steps {meta.get('optimizer_steps')}; "
                 f"expected {want}, {5 - skipped}")
    return f"; iterations {[i for i, s in zip(iters, skips) if s]} skipped, checkpoint loss_scaler {got}"


def expect_error(cmd, needles, what):
    p = run(cmd, expect_ok=False)
    if p.returncode < 0 or "Segmentation fault" in p.stdout or "signal 11" in p.stdout:
        sys.exit(f"{what}: crashed ({p.returncode}) instead of an error:\n{p.stdout}")
    for n in needles:
        if n not in p.stdout:
            sys.exit(f"{what}: the output does not name {n!r}:\n{p.stdout}")
    print(f"{what}: fails naming {needles}")


def evaluated_losses(tessera, config, mpiexec, ckpt, layouts, what):
    """`tessera evaluate` of the checkpoint's iteration 5 in each (--set list, process count) layout:
    the validation losses printed, as strings."""
    losses = []
    for sets, np in layouts:
        cmd = [tessera, "evaluate", config, "--split", "valid", "--load", os.path.join(ckpt, "iter_0000005")] + sets
        out = run(cmd if np == "1" else mpiexec + ["-np", np] + cmd).stdout
        m = re.search(r"validation loss at iteration 5 on validation set \| lm loss value: (\S+)", out)
        if not m:
            sys.exit(f"evaluate of the {what} checkpoint printed no validation line:\n{out}")
        losses.append(m.group(1))
    return losses


def check_ep_errors(tessera, config, mpiexec, workdir, opts, ckpt, cmd):
    """The refusals around a checkpoint saved with expert parallelism (docs/moe.md)."""
    ep = opts.get("ep")
    if ep is None:
        sys.exit("--ep-errors needs the first layout to set ep")
    resume = ["--set", "training.train_iters=10", "--set", f"checkpoint.load={ckpt}"]
    no_ep = {k: v for k, v in opts.items() if k != "ep"}
    expect_error(command(tessera, config, mpiexec, no_ep, resume),
                 [f"expert_model_parallel_size {ep}, this run has 1", "checkpoint.finetune = true"],
                 f"ep {ep} checkpoint resumed with ep 1")
    # `tessera evaluate` of the checkpoint: the same validation loss in one process and under ep 2
    # and 4 (each rank loading its own experts from the model file).
    evaluated = evaluated_losses(tessera, config, mpiexec, ckpt,
                                 (([], "1"), (["--set", "parallel.expert_model_parallel_size=2"], opts["np"]),
                                  (["--set", "parallel.expert_model_parallel_size=4"], "4")), "ep")
    if len(set(evaluated)) != 1:
        sys.exit(f"evaluate of the ep checkpoint in one process, ep 2 and ep 4 printed {evaluated}")
    print(f"ep checkpoint: evaluates to {evaluated[0]} in one process, ep 2 and ep 4")
    # The model files hold every expert: one process fine-tunes from them (all experts, checked).
    tuned = run(command(tessera, config, mpiexec, {"np": "1"},
                        ["--set", "training.train_iters=1", "--set", f"checkpoint.load={ckpt}",
                         "--set", "checkpoint.finetune=true"])).stdout
    if "checkpoint.finetune: the weights of checkpoint" not in tuned:
        sys.exit(f"finetune from the ep checkpoint in one process did not load it:\n{tuned}")
    print("ep checkpoint: its weights fine-tune in one process")


def check_etp_errors(tessera, config, mpiexec, workdir, opts, ckpt, cmd):
    """A checkpoint saved with expert_tensor_parallel_size 1 (docs/moe.md): each model file holds every
    expert whole, so readers join it in any layout; resuming needs the same setting."""
    if opts.get("etp") != "1" or opts.get("tp") != "2":
        sys.exit("--etp-errors needs the first layout to set tp=2 and etp=1")
    split = dict(opts)
    split.pop("etp")
    resume = ["--set", "model.make_vocab_size_divisible_by=64", "--set", "training.train_iters=10",
              "--set", f"checkpoint.load={ckpt}"]
    expect_error(command(tessera, config, mpiexec, split, resume),
                 ["expert_tensor_parallel_size 1, this run has 2", "checkpoint.finetune = true"],
                 "etp 1 checkpoint resumed with the experts split over tp")
    layouts = (([], "1"),
               (["--set", "parallel.tensor_model_parallel_size=2", "--set", "model.make_vocab_size_divisible_by=64",
                 "--set", f"parallel.expert_model_parallel_size={opts['ep']}",
                 "--set", "parallel.expert_tensor_parallel_size=1"], opts["np"]),
               (["--set", "parallel.tensor_model_parallel_size=2", "--set", "model.make_vocab_size_divisible_by=64",
                 "--set", f"parallel.expert_model_parallel_size={opts['ep']}"], opts["np"]))
    evaluated = [float(v) for v in evaluated_losses(tessera, config, mpiexec, ckpt, layouts, "etp 1")]
    # The experts' sums in another order across tp: equal to float rounding.
    if max(evaluated) - min(evaluated) > 1e-5 * abs(evaluated[0]):
        sys.exit(f"evaluate of the etp 1 checkpoint in one process, with etp 1 and with the experts split printed {evaluated}")
    print(f"etp 1 checkpoint: evaluates to {evaluated} in one process, with etp 1 and with the experts split over tp")
    tuned = run(command(tessera, config, mpiexec, split,
                        ["--set", "model.make_vocab_size_divisible_by=64", "--set", "training.train_iters=1",
                         "--set", f"checkpoint.load={ckpt}", "--set", "checkpoint.finetune=true"])).stdout
    if "checkpoint.finetune: the weights of checkpoint" not in tuned:
        sys.exit(f"finetune from the etp 1 checkpoint with the experts split over tp did not load it:\n{tuned}")
    print("etp 1 checkpoint: its weights fine-tune with the experts split over tp")
    expect_error([tessera, "checkpoint", "reshard", os.path.join(ckpt, "iter_0000005"), "--tp", "1",
                  os.path.join(workdir, "resharded_etp")],
                 ["expert_tensor_parallel_size = 1", "does not rewrite yet"], "reshard of an etp 1 checkpoint")


def main():
    tessera, config, workdir = sys.argv[1:4]
    rest = sys.argv[4:]
    split = rest.index("--")
    mpiexec, layouts = rest[:split], rest[split + 1:]
    errors = "--errors" in layouts
    ep_errors = "--ep-errors" in layouts
    etp_errors = "--etp-errors" in layouts
    layouts = [l for l in layouts if l not in ("--errors", "--ep-errors", "--etp-errors")]
    first_ckpt = None
    for layout in layouts:
        opts = dict(kv.split("=") for kv in layout.split(","))
        if "tp" in opts:  # keep the padded vocabulary of the one-process config
            opts_sets = ["--set", f"model.make_vocab_size_divisible_by={128 // int(opts['tp'])}"]
        else:
            opts_sets = []
        cmd = lambda sets, opts=opts, opts_sets=opts_sets: command(tessera, config, mpiexec, opts, opts_sets + sets)
        ckpt = os.path.join(workdir, f"ckpt_{layout}")
        shutil.rmtree(ckpt, ignore_errors=True)
        full = values(run(cmd(["--set", "training.train_iters=10"])).stdout)
        part = values(run(cmd(["--set", "training.train_iters=5", "--set", "checkpoint.save_interval=5",
                               "--set", f"checkpoint.save={ckpt}"])).stdout)
        entries = sorted(os.listdir(ckpt))
        if "iter_0000005" not in entries or any(e.endswith(".tmp") for e in entries):
            sys.exit(f"{layout}: checkpoint folder holds {entries}")
        with open(os.path.join(ckpt, "latest_checkpointed_iteration.txt")) as f:
            if f.read().strip() != "5":
                sys.exit(f"{layout}: latest_checkpointed_iteration.txt is not 5")
        with open(os.path.join(ckpt, "iter_0000005", "metadata.json")) as f:
            meta = json.load(f)
        if meta["iteration"] != 5 or meta["consumed_samples"] != 40:
            sys.exit(f"{layout}: metadata {meta}")
        # adam's state is replicated over dp: only the first data-parallel rank of each set of experts
        # writes it (ep of them, ep / tp with etp=1); distributed_adam: every rank its own shard.
        tp_, pp_, ep_ = int(opts.get("tp", 1)), int(opts.get("pp", 1)), int(opts.get("ep", 1))
        dp_ = int(opts["np"]) // (tp_ * pp_ * int(opts.get("cp", 1)))  # cp ranks write nothing more
        writers = dp_ if opts.get("opt") == "dist" else (ep_ // tp_ if opts.get("etp") == "1" and ep_ > 1 else ep_)
        want = {f"optimizer_tp{t}_pp{p}_dp{d}.safetensors" for t in range(tp_) for p in range(pp_) for d in range(writers)}
        have = {e for e in os.listdir(os.path.join(ckpt, "iter_0000005")) if e.startswith("optimizer_")}
        if have != want:
            sys.exit(f"{layout}: optimizer files {sorted(have)}, expected {sorted(want)}")
        scaler = check_loss_scaler(layout, full, meta) if opts.get("prec") == "fp16" else ""
        # generate joins the checkpoint's tp shards and pipeline stages offline: the same text as from
        # the final weights, which the trainer gathered over the ranks.
        gen = [tessera, "generate", "--prompt", "Tensor ", "--max-new-tokens", "30", "--temperature", "1",
               "--top-k", "0", "--top-p", "1", "--seed", "5", "--load"]
        # Bytes: a token decoded alone may be part of a UTF-8 sequence.
        from_final = subprocess.run(gen + [ckpt], stdout=subprocess.PIPE, check=True, timeout=600).stdout
        from_shards = subprocess.run(gen + [os.path.join(ckpt, "iter_0000005")], stdout=subprocess.PIPE, check=True,
                                     timeout=600).stdout
        if from_final != from_shards:
            sys.exit(f"{layout}: generate from the checkpoint's shards differs from the final weights:\n"
                     f"{from_shards!r}\n{from_final!r}")
        for k, v in full.items():
            if int(k.split("@")[1]) <= 5 and part.get(k) != v:
                sys.exit(f"{layout}: the 5-iteration run logged {k} = {part.get(k)}, the 10-iteration run {v}")
        resumed_out = run(cmd(["--set", "training.train_iters=10", "--set", f"checkpoint.load={ckpt}"])).stdout
        resumed = values(resumed_out)
        want = {k: v for k, v in full.items() if int(k.split("@")[1]) > 5}
        if resumed != want:
            diff = {k: (resumed.get(k), want.get(k)) for k in sorted(set(resumed) | set(want)) if resumed.get(k) != want.get(k)}
            sys.exit(f"{layout}: resumed run differs from the uninterrupted one (resumed, uninterrupted): {diff}")
        if "resumed from checkpoint" not in resumed_out:
            sys.exit(f"{layout}: no 'resumed from checkpoint' line")
        print(f"{layout}: iterations 6-10 after resuming equal the uninterrupted run ({len(want)} values{scaler})")
        if first_ckpt is None:
            first_ckpt = (opts, ckpt, cmd)

    if ep_errors:
        check_ep_errors(tessera, config, mpiexec, workdir, *first_ckpt)
    if etp_errors:
        check_etp_errors(tessera, config, mpiexec, workdir, *first_ckpt)
    if not errors:
        return
    opts, ckpt, cmd = first_ckpt
    if opts.get("opt") != "dist" or opts["np"] != "2":
        sys.exit("--errors needs the first layout to be np=2,opt=dist")
    resume = ["--set", "training.train_iters=10"]
    # A different data-parallel size.
    one = dict(opts, np="1")
    expect_error(command(tessera, config, mpiexec, one, resume + ["--set", f"checkpoint.load={ckpt}"]),
                 ["resuming needs the same layout", "1/1/2/1", "1/1/1/1"], "dp 2 checkpoint resumed with dp 1")
    # Another optimizer.
    adam = dict(opts)
    adam.pop("opt")
    expect_error(command(tessera, config, mpiexec, adam, resume + ["--set", f"checkpoint.load={ckpt}"]),
                 ["holds the state of optimizer 'distributed_adam'", "optimizer.plugin is 'adam'"],
                 "distributed_adam checkpoint resumed with adam")
    # Another bucket size.
    expect_error(cmd(resume + ["--set", f"checkpoint.load={ckpt}", "--set", "parallel.bucket_size=1000"]),
                 ["parallel.bucket_size 40000000, this run has 1000"], "distributed_adam resumed with another bucket size")
    # The optimizer's own check: metadata edited to agree, the shards' shapes do not.
    edited = os.path.join(workdir, "ckpt_edited")
    shutil.rmtree(edited, ignore_errors=True)
    shutil.copytree(os.path.join(ckpt, "iter_0000005"), edited)
    with open(os.path.join(edited, "metadata.json")) as f:
        meta = json.load(f)
    meta["bucket_size"] = 1000
    with open(os.path.join(edited, "metadata.json"), "w") as f:
        json.dump(meta, f)
    expect_error(cmd(resume + ["--set", f"checkpoint.load={edited}", "--set", "parallel.bucket_size=1000"]),
                 ["optimizer_tp0_pp0_dp", "distributed_adam", "a different data-parallel size or bucket size changes"],
                 "distributed_adam shards of another bucket size")
    # A truncated optimizer file.
    truncated = os.path.join(workdir, "ckpt_truncated")
    shutil.rmtree(truncated, ignore_errors=True)
    shutil.copytree(os.path.join(ckpt, "iter_0000005"), truncated)
    path = os.path.join(truncated, "optimizer_tp0_pp0_dp1.safetensors")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    expect_error(cmd(resume + ["--set", f"checkpoint.load={truncated}"]), [path], "truncated optimizer file")
    # A missing model file.
    os.remove(os.path.join(truncated, "model_tp0_pp0.safetensors"))
    expect_error(cmd(resume + ["--set", f"checkpoint.load={truncated}"]), ["model_tp0_pp0.safetensors"],
                 "missing model file")


if __name__ == "__main__":
    main()
