"""`tessera checkpoint reshard` through `tessera train` (issue 14): a checkpoint saved after 5 of 10
iterations in one layout, resharded to another and resumed there, must log iterations 6-10 as the
old layout does uninterrupted: the learning rate as the same string, loss, grad norm and validation
loss within 1e-5 relative (another layout sums in another order). Chains:
  adam:             tp2·pp2 -> tp1·pp1 -> tp4 (the second reshard reads the first one's output);
  distributed_adam: dp2 -> dp4 with another gradient bucket size, tp2·dp2 -> dp4 (its tp-reduced
                    parameters bucketed apart in the source), both with several buckets; tp2·dp2 ->
                    tp2·dp2 with sequence parallelism (which the trainer refuses to resume across);
  another optimizer: distributed_adam dp2 -> adam tp2 -> distributed_adam dp2 (--optimizer);
  a virtual pipeline: pp2·vpp2 (interleaved) -> tp2;
  uneven pipeline stages: pp2 with 1 + 3 layers -> pp2 with 3 + 1 (and resuming with even stages is
                    refused, naming the reshard);
  with --t5 (CONFIG a T5 run): pp2 split 1 -> pp1 -> tp2·pp2 split 1 (the decoder's first stage
                    embeds too; the last stage's tied copies);
  with --llama (CONFIG a Llama-style GQA run, untied output layer): tp2·pp2 -> tp1·pp1, and
                    distributed_adam dp2 -> tp2 (the [K | V] blocks split by tp);
  with --moe (CONFIG a mixture-of-experts run): the same two reshards (the router, the experts' and
                    the shared expert's tp shards);
  with --moe-ep (CONFIG a mixture-of-experts run of 4 experts): expert parallelism, adam ep2·dp4 ->
                    one process -> ep4·dp4 (each rank's experts' moments gathered, then split anew),
                    distributed_adam ep2·dp4 (the experts' buckets sharded over pairs) -> tp2·ep2·dp2.
Each layout keeps the padded vocabulary of the others (make_vocab_size_divisible_by = 128 / tp, set
on the reshard with --set as on the run). Then errors: a tp that does not divide the heads, a pp that
does not divide the layers, --set of a key outside [model] or of one the model does not read, a
missing model shard, a model larger than the memory at hand, a truncated optimizer file, final
weights (which load into any layout as they are), an OUT that is not empty — each fails naming the key or file, and leaves no OUT behind; a reshard that changes the
padded vocabulary warns and still resumes.

usage: checkpoint_reshard.py TESSERA CONFIG WORKDIR [--t5|--llama|--moe] MPIEXEC...
"""
import os
import re
import shutil
import subprocess
import sys

LINE = re.compile(r"iteration\s+(\d+)/.*\| learning rate: (\S+) \|.*\| lm loss: (\S+) \|(?: [a-z0-9_ ]+: \S+ \|)* grad norm: (\S+) \|")
# The model's statistics after the loss ("load_balancing_loss: X |", docs/moe.md; "mtp_1 loss: Y |",
# docs/mtp.md).
STATISTIC = re.compile(r" ([a-z]+(?:_[a-z0-9]+)+(?: loss)?): (\S+) \|")
VALID = re.compile(r"validation loss at iteration (\d+) \| lm loss value: (\S+)")
COMMON = ["--set", "optimizer.lr_decay_iters=10"]  # the same schedule for 5 and 10 iterations
BUCKETS = 2000  # elements: several gradient buckets for distributed_adam's shards


def layout_sets(tp=1, pp=1, dist=False, bucket=None, vpp=1, split=0, ep=1):
    sets = ["--set", f"parallel.tensor_model_parallel_size={tp}", "--set", f"parallel.pipeline_model_parallel_size={pp}",
            "--set", f"parallel.expert_model_parallel_size={ep}",
            "--set", f"parallel.virtual_pipeline_model_parallel_size={vpp}",
            "--set", f"parallel.pipeline_model_parallel_split_rank={split}",
            "--set", f"model.make_vocab_size_divisible_by={128 // tp}"]
    if dist:
        sets += ["--set", "optimizer.plugin=distributed_adam"]
    if bucket:
        sets += ["--set", f"parallel.bucket_size={bucket}"]
    return sets


def run(cmd, expect_ok=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if expect_ok and p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    if not expect_ok and (p.returncode == 0 or p.returncode < 0 or "Segmentation fault" in p.stdout):
        sys.exit(f"expected a clean failure, got {p.returncode}: {' '.join(cmd)}\n{p.stdout}")
    return p.stdout


def values(out):
    v = {}
    for m in LINE.finditer(out):
        it = m.group(1)
        v[f"lr@{it}"], v[f"loss@{it}"], v[f"grad_norm@{it}"] = m.group(2), m.group(3), m.group(4)
        for s in STATISTIC.finditer(m.group(0)):  # mixture-of-experts router losses
            v[f"{s.group(1)}@{it}"] = s.group(2)
    for m in VALID.finditer(out):
        v[f"valid@{m.group(1)}"] = m.group(2)
    return v


def close(a, b):
    return abs(float(a) - float(b)) <= 1e-5 * max(abs(float(a)), abs(float(b)), 1e-30)


class Runs:
    def __init__(self, tessera, config, workdir, mpiexec):
        self.tessera, self.config, self.workdir, self.mpiexec = tessera, config, workdir, mpiexec

    def train(self, np, sets, expect_ok=True):
        cmd = [self.tessera, "train", self.config] + COMMON + sets
        return run(cmd if np == 1 else self.mpiexec + ["-np", str(np)] + cmd, expect_ok)

    def checkpoint_at_5(self, name, np, sets):
        """The uninterrupted 10 iterations' values and a save folder with the checkpoint at 5."""
        full = values(self.train(np, sets + ["--set", "training.train_iters=10"]))
        ckpt = os.path.join(self.workdir, name)
        shutil.rmtree(ckpt, ignore_errors=True)
        self.train(np, sets + ["--set", "training.train_iters=5", "--set", "checkpoint.save_interval=5",
                               "--set", f"checkpoint.save={ckpt}"])
        return full, ckpt

    def reshard(self, ckpt, name, args, expect_ok=True):
        out = os.path.join(self.workdir, name)
        shutil.rmtree(out, ignore_errors=True)
        log = run([self.tessera, "checkpoint", "reshard", ckpt, out] + args, expect_ok)
        return out, log

    def resume_matches(self, what, full, np, sets, ckpt):
        out = self.train(np, sets + ["--set", "training.train_iters=10", "--set", f"checkpoint.load={ckpt}"])
        if "resumed from checkpoint" not in out:
            sys.exit(f"{what}: no 'resumed from checkpoint' line:\n{out}")
        got = values(out)
        want = {k: v for k, v in full.items() if int(k.split("@")[1]) > 5}
        if set(got) != set(want):
            sys.exit(f"{what}: logged {sorted(got)}, expected {sorted(want)}")
        bad = {k: (got[k], want[k]) for k in want
               if (got[k] != want[k] if k.startswith("lr@") else not close(got[k], want[k]))}
        if bad:
            sys.exit(f"{what}: differs from the old layout's uninterrupted run (resharded, old): {bad}")
        worst = max(abs(float(got[k]) - float(want[k])) / abs(float(want[k])) for k in want if not k.startswith("lr@"))
        print(f"{what}: iterations 6-10 equal the uninterrupted run ({len(want)} values, largest relative "
              f"difference {worst:.1e})")


def expect_error(runs, ckpt, name, args, needles, what):
    out, log = runs.reshard(ckpt, name, args, expect_ok=False)
    for n in needles:
        if n not in log:
            sys.exit(f"{what}: the output does not name {n!r}:\n{log}")
    if os.path.exists(out) and os.listdir(out):
        sys.exit(f"{what}: a failed reshard left {out} with {os.listdir(out)}")
    print(f"{what}: fails naming {needles}, nothing written")


def t5_chain(runs):
    full, ckpt = runs.checkpoint_at_5("t5_pp2", 2, layout_sets(pp=2, split=1))
    one, _ = runs.reshard(ckpt, "t5_pp1", ["--pp", "1"])
    runs.resume_matches("t5 pp2 split 1 -> pp1", full, 1, layout_sets(), one)
    four, _ = runs.reshard(one, "t5_tp2pp2", ["--tp", "2", "--pp", "2", "--split-rank", "1",
                                              "--set", "model.make_vocab_size_divisible_by=64"])
    runs.resume_matches("t5 pp2 split 1 -> pp1 -> tp2·pp2 split 1", full, 4, layout_sets(tp=2, pp=2, split=1), four)
    expect_error(runs, one, "t5_bad_split", ["--pp", "2"], ["pipeline_model_parallel_split_rank", "--split-rank"],
                 "t5 at pp 2 without a split rank")


def llama_chain(runs):
    full, ckpt = runs.checkpoint_at_5("llama_tp2pp2", 4, layout_sets(tp=2, pp=2))
    one, _ = runs.reshard(ckpt, "llama_tp1", ["--tp", "1", "--pp", "1", "--set", "model.make_vocab_size_divisible_by=128"])
    runs.resume_matches("llama-style tp2·pp2 -> tp1·pp1", full, 1, layout_sets(), one)
    full, dp2 = runs.checkpoint_at_5("llama_dist_dp2", 2, layout_sets(dist=True, bucket=BUCKETS))
    tp2, _ = runs.reshard(dp2, "llama_dist_tp2", ["--tp", "2", "--dp", "1", "--set", "model.make_vocab_size_divisible_by=64"])
    runs.resume_matches("llama-style distributed_adam dp2 -> tp2", full, 2, layout_sets(tp=2, dist=True, bucket=BUCKETS),
                        tp2)


def moe_ep_chain(runs):
    full, ckpt = runs.checkpoint_at_5("ep_ep2dp4", 4, layout_sets(ep=2))
    one, _ = runs.reshard(ckpt, "ep_one", ["--dp", "1", "--ep", "1"])
    runs.resume_matches("adam ep2·dp4 -> one process", full, 1, layout_sets(), one)
    four, _ = runs.reshard(one, "ep_ep4", ["--dp", "4", "--ep", "4"])
    runs.resume_matches("adam ep2·dp4 -> one process -> ep4·dp4", full, 4, layout_sets(ep=4), four)
    full, dist = runs.checkpoint_at_5("ep_dist_ep2dp4", 4, layout_sets(ep=2, dist=True, bucket=BUCKETS))
    tp2, _ = runs.reshard(dist, "ep_dist_tp2ep2", ["--tp", "2", "--dp", "2", "--ep", "2",
                                                   "--set", "model.make_vocab_size_divisible_by=64"])
    runs.resume_matches("distributed_adam ep2·dp4 -> tp2·ep2·dp2", full, 4,
                        layout_sets(tp=2, ep=2, dist=True, bucket=BUCKETS), tp2)
    expect_error(runs, dist, "ep_bad", ["--dp", "4", "--ep", "3"], ["expert_model_parallel_size 3", "--ep"],
                 "reshard to an ep that does not divide dp")


def main():
    tessera, config, workdir = sys.argv[1:4]
    chain = {"--t5": t5_chain, "--llama": llama_chain, "--moe": llama_chain, "--moe-ep": moe_ep_chain}.get(sys.argv[4])
    runs = Runs(tessera, config, workdir, sys.argv[5 if chain else 4:])
    if chain:
        chain(runs)
        return

    # adam: tp2·pp2 -> tp1·pp1 -> tp4.
    full, ckpt = runs.checkpoint_at_5("adam_tp2pp2", 4, layout_sets(tp=2, pp=2))
    one, _ = runs.reshard(ckpt, "adam_tp1", ["--tp", "1", "--pp", "1", "--set", "model.make_vocab_size_divisible_by=128"])
    runs.resume_matches("adam tp2·pp2 -> tp1·pp1", full, 1, layout_sets(), one)
    four, _ = runs.reshard(one, "adam_tp4", ["--tp", "4", "--set", "model.make_vocab_size_divisible_by=32"])
    runs.resume_matches("adam tp2·pp2 -> tp1·pp1 -> tp4", full, 4, layout_sets(tp=4), four)

    # distributed_adam: dp2 -> dp4 (another bucket size), tp2·dp2 -> dp4.
    full_dp2, dp2 = runs.checkpoint_at_5("dist_dp2", 2, layout_sets(dist=True, bucket=BUCKETS))
    dp4, _ = runs.reshard(dp2, "dist_dp4", ["--dp", "4", "--bucket-size", str(BUCKETS + 1000)])
    runs.resume_matches("distributed_adam dp2 -> dp4", full_dp2, 4, layout_sets(dist=True, bucket=BUCKETS + 1000), dp4)
    full, tp2dp2 = runs.checkpoint_at_5("dist_tp2dp2", 4, layout_sets(tp=2, dist=True, bucket=BUCKETS))
    dp4, _ = runs.reshard(tp2dp2, "dist_tp2dp2_dp4",
                          ["--tp", "1", "--dp", "4", "--set", "model.make_vocab_size_divisible_by=128"])
    runs.resume_matches("distributed_adam tp2·dp2 -> dp4", full, 4, layout_sets(dist=True, bucket=BUCKETS), dp4)
    # Sequence parallelism changes the buckets (norms reduced over tp): the trainer refuses to resume
    # across it, naming the key and the reshard that fixes it; the reshard resumes.
    sp = ["--set", "parallel.sequence_parallel=true"]
    out = runs.train(4, layout_sets(tp=2, dist=True, bucket=BUCKETS) + sp + [
        "--set", "training.train_iters=10", "--set", f"checkpoint.load={tp2dp2}"], expect_ok=False)
    for needle in ("parallel.sequence_parallel = false", "--sequence-parallel true"):
        if needle not in out:
            sys.exit(f"resuming across sequence parallelism: no {needle!r} in:\n{out}")
    print("resuming across sequence parallelism: refused, naming the key and the reshard")
    sp_on, _ = runs.reshard(tp2dp2, "dist_tp2dp2_sp", ["--sequence-parallel", "true"])
    runs.resume_matches("distributed_adam tp2·dp2 -> tp2·dp2 with sequence parallelism", full, 4,
                        layout_sets(tp=2, dist=True, bucket=BUCKETS) + sp, sp_on)

    # Another optimizer with the same state: distributed_adam dp2 -> adam tp2 -> distributed_adam dp2
    # (adam and distributed_adam take the same steps).
    adam, _ = runs.reshard(dp2, "dist_to_adam_tp2", ["--tp", "2", "--dp", "1", "--optimizer", "adam",
                                                     "--set", "model.make_vocab_size_divisible_by=64"])
    back, _ = runs.reshard(adam, "adam_to_dist_dp2", ["--tp", "1", "--dp", "2", "--optimizer", "distributed_adam",
                                                      "--set", "model.make_vocab_size_divisible_by=128"])
    runs.resume_matches("distributed_adam dp2 -> adam tp2 -> distributed_adam dp2", full_dp2, 2,
                        layout_sets(dist=True, bucket=BUCKETS), back)
    full = values(runs.train(2, layout_sets(tp=2, bucket=BUCKETS) + ["--set", "training.train_iters=10"]))
    runs.resume_matches("distributed_adam dp2 -> adam tp2", full, 2, layout_sets(tp=2), adam)

    # A virtual pipeline (the interleaved schedule): pp2·vpp2 -> tp2.
    full, vpp = runs.checkpoint_at_5("adam_pp2vpp2", 2, layout_sets(pp=2, vpp=2))
    tp2, _ = runs.reshard(vpp, "adam_vpp_tp2", ["--tp", "2", "--pp", "1", "--set", "model.make_vocab_size_divisible_by=64"])
    runs.resume_matches("adam pp2·vpp2 -> tp2", full, 2, layout_sets(tp=2), tp2)
    # Resumed without the virtual pipeline: the trainer's suggestion names --vpp too.
    out = runs.train(2, layout_sets(pp=2) + ["--set", "training.train_iters=10", "--set", f"checkpoint.load={vpp}"],
                     expect_ok=False)
    if "--tp 1 --pp 2 --dp 1 --vpp 1" not in out:
        sys.exit(f"resuming pp2·vpp2 at pp2: the suggested reshard does not name --vpp 1:\n{out}")
    print("resuming pp2·vpp2 at pp2: refused, the suggested reshard names --vpp 1")

    # Uneven pipeline stages: pp2 with 1 + 3 layers -> pp2 with 3 + 1 (--first-stage-layers 3, the
    # other stage's layers moved between the ranks' files).
    def first_stage(n):
        return ["--set", f"parallel.decoder_first_pipeline_num_layers={n}"]
    full, uneven = runs.checkpoint_at_5("adam_pp2_1_3", 2, layout_sets(pp=2) + first_stage(1))
    moved, _ = runs.reshard(uneven, "adam_pp2_3_1", ["--first-stage-layers", "3"])
    runs.resume_matches("adam pp2 (1 + 3 layers) -> pp2 (3 + 1)", full, 2, layout_sets(pp=2) + first_stage(3), moved)
    # Resumed with even stages: refused, the suggested reshard names the stage layers.
    out = runs.train(2, layout_sets(pp=2) + ["--set", "training.train_iters=10", "--set", f"checkpoint.load={uneven}"],
                     expect_ok=False)
    if "(stage layers: first 1, last even)" not in out or "--first-stage-layers 0 --last-stage-layers 0" not in out:
        sys.exit(f"resuming pp2 (1 + 3 layers) with even stages: the refusal does not name the stages:\n{out}")
    print("resuming pp2 (1 + 3 layers) with even stages: refused, the suggested reshard names --first-stage-layers")
    # checkpoint.use_mp_args_from_checkpoint_args: the same config resumes it, the split taken from
    # the checkpoint (as every [parallel] layout key: this config's pp 1 and even stages give way).
    mp_args = ["--set", "checkpoint.use_mp_args_from_checkpoint_args=true"]
    runs.resume_matches("adam pp2 (1 + 3 layers), resumed by a pp1 config with use_mp_args_from_checkpoint_args",
                        full, 2, layout_sets() + mp_args, uneven)

    # The embedding and loss counted as layers: pp3 holds 1 + 2 + 1 of the 4 layers -> pp2, evenly
    # (the counting resets with pp, as uneven stages do): the layers move between the ranks' files.
    counted = ["--set", "parallel.account_for_embedding_in_pipeline_split=true",
               "--set", "parallel.account_for_loss_in_pipeline_split=true"]
    full, counted3 = runs.checkpoint_at_5("adam_pp3_counted", 3, layout_sets(pp=3) + counted)
    to_pp2, _ = runs.reshard(counted3, "adam_pp3_counted_pp2", ["--pp", "2"])
    runs.resume_matches("adam pp3 (embedding and loss counted: 1 + 2 + 1 layers) -> pp2", full, 2, layout_sets(pp=2),
                        to_pp2)
    # Resumed with the same layers given as uneven stages: refused, the suggested reshard names the counting.
    out = runs.train(3, layout_sets(pp=3) + first_stage(1) + ["--set", "parallel.decoder_last_pipeline_num_layers=1",
                                                              "--set", "training.train_iters=10",
                                                              "--set", f"checkpoint.load={counted3}"], expect_ok=False)
    if ("(stage layers: even, counting the embedding and loss)" not in out
            or "--account-for-embedding false --account-for-loss false" not in out):
        sys.exit(f"resuming pp3 (embedding and loss counted) as uneven stages: the refusal does not name them:\n{out}")
    print("resuming pp3 (embedding and loss counted) as uneven stages 1 + 2 + 1: refused, the suggested reshard names "
          "--account-for-embedding")

    # Bad input: named, nothing written.
    expect_error(runs, ckpt, "bad_tp3", ["--tp", "3"], ["tensor_model_parallel_size", "tp 3"], "tp 3 with 4 heads")
    expect_error(runs, ckpt, "bad_pp3", ["--tp", "1", "--pp", "3"], ["num_layers", "pp 3"], "pp 3 with 4 layers")
    expect_error(runs, dp2, "bad_dp3", ["--dp", "3"], ["global_batch_size", "data-parallel size (3)"],
                 "dp 3 with a global batch of 8")
    expect_error(runs, ckpt, "bad_set_section", ["--tp", "1", "--pp", "1", "--set", "parallel.sequence_parallel=true"],
                 ["only [model] keys", "--sequence-parallel"], "--set of a key outside [model]")
    expect_error(runs, ckpt, "bad_set_typo", ["--tp", "1", "--pp", "1", "--set", "model.make_vocab_size_divisable_by=128"],
                 ["make_vocab_size_divisable_by"], "--set of a [model] key the model does not read")
    broken = os.path.join(workdir, "broken")
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(ckpt, broken)
    os.remove(os.path.join(broken, "iter_0000005", "model_tp1_pp0.safetensors"))
    expect_error(runs, broken, "bad_missing", ["--tp", "1", "--pp", "1"], ["model_tp1_pp0.safetensors"],
                 "a missing model shard")
    shutil.rmtree(broken)
    # A model file of 1 TiB (sparse): more than the memory at hand is an error before any reading.
    shutil.copytree(ckpt, broken)
    os.truncate(os.path.join(broken, "iter_0000005", "model_tp0_pp0.safetensors"), 1 << 40)
    expect_error(runs, broken, "bad_memory", ["--tp", "1", "--pp", "1"], ["GiB of memory", "MemAvailable"],
                 "a model larger than the memory")
    shutil.rmtree(broken)
    shutil.copytree(dp2, broken)
    path = os.path.join(broken, "iter_0000005", "optimizer_tp0_pp0_dp1.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    expect_error(runs, broken, "bad_truncated", ["--dp", "4"], ["optimizer_tp0_pp0_dp1.safetensors"],
                 "a truncated optimizer file")
    final_only = os.path.join(workdir, "final_only")
    shutil.rmtree(final_only, ignore_errors=True)
    os.makedirs(final_only)
    for name in ("config.toml", "model.safetensors"):
        shutil.copy(os.path.join(ckpt, name), final_only)
    expect_error(runs, final_only, "bad_final", ["--tp", "1"], ["final weights only", "any layout"],
                 "final weights (nothing to reshard)")
    taken = os.path.join(workdir, "taken")
    shutil.rmtree(taken, ignore_errors=True)
    os.makedirs(taken)
    open(os.path.join(taken, "keep.txt"), "w").write("mine\n")
    log = run([tessera, "checkpoint", "reshard", ckpt, taken, "--tp", "1", "--pp", "1"], expect_ok=False)
    if "OUT" not in log or taken not in log or os.listdir(taken) != ["keep.txt"]:
        sys.exit(f"a non-empty OUT: not named, or its files touched ({os.listdir(taken)}):\n{log}")
    print("a non-empty OUT: refused, its files untouched")

    # Another padded vocabulary: a warning naming the embedding, and a run that resumes.
    out, log = runs.reshard(ckpt, "padding", ["--tp", "1", "--pp", "1"])
    if "embedding.word_embeddings.weight: the padded vocabulary differs" not in log:
        sys.exit(f"no warning about the padded vocabulary:\n{log}")
    resumed = runs.train(1, ["--set", "model.make_vocab_size_divisible_by=64", "--set", "training.train_iters=6",
                             "--set", f"checkpoint.load={out}"])
    if "resumed from checkpoint" not in resumed:
        sys.exit(f"the reshard with another padded vocabulary does not resume:\n{resumed}")
    print("another padded vocabulary: warned, and resumes")


if __name__ == "__main__":
    main()
