"""Runs `tessera train` in one process and under mpirun in several layouts, and requires every
layout's per-iteration loss (each term the line shows: BERT's lm and sop loss), grad norm, params
norm (logging.log_params_norm), zeros in the gradient (logging.log_num_zeros_in_grad) (and validation
losses) to equal the single-process run
within a relative tolerance, and the saved final weights (gathered over tensor-parallel ranks) to
equal the single-process weights.

usage: compare_layouts.py TESSERA CONFIG WORKDIR TOLERANCE MPIEXEC... -- LAYOUT...
LAYOUT: "np=2" or "np=8,tp=2,pp=2" (keys: np, tp, pp, vp, cp, split, first, last, ep, etp, disp, emb, loss, s0, sp,
ov, bs, opt, rc, dev, prec) — tp/pp/vp, split (pipeline_model_parallel_split_rank, encoder-decoders), first/last
(uneven pipeline stages: decoder_first_pipeline_num_layers, and num_layers_in_last_pipeline_stage,
Megatron-LM's newer name), cp (context_parallel_size: the layout line must say so), ep
(expert_model_parallel_size) and etp (expert_tensor_parallel_size: with etp=1 the layout line must say
so) map to [parallel] overrides, disp to model.moe_token_dispatcher_type,
emb=1 / loss=1 count the embedding / loss as a
layer of the split (account_for_embedding/loss_in_pipeline_split), s0=N requires the first stage's
model to hold N transformer layers, sp=1 turns on sequence parallelism, ov=1 overlaps the gradient all-reduce with
backward, bs=N sets parallel.bucket_size (elements per gradient bucket) to N, opt=dist uses the
distributed_adam optimizer (whose per-rank state must be 1/dp of Adam's), rc turns on activation
recompute ([model]): rc=full (uniform, 1 layer), rc=full2 (uniform, 2 layers), rc=block (block, 1
layer), rc=dist (full as rc=full with distribute_saved_activations), rc=sel (selective), rc=mods (selective of recompute_modules core_attn, mlp and moe_act), rc=moe
(selective of mlp and moe: every MLP whole), rc=ln1 (layernorm: the norms' outputs), rc=ln (core_attn,
layernorm and mlp), rc=lnmoe (layernorm, mlp and moe); the one-process run it is compared with recomputes nothing. dev=sim
trains on the simulated device ([training] device = "sim"): its logged values and saved weights must
equal, bit for bit, those of the same layout without dev= listed before it (and, like every layout,
one process's within the tolerance). prec=bf16 trains in mixed precision ([training] precision =
"bf16") and is compared with one process in bf16 (run once, when the first such layout comes) within
BF16_TOLERANCE below instead of TOLERANCE (prec=fp32, the default, is the config's own precision).
"""
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

# The losses of an iteration line: "lm loss: X |", or each term of a model with several ("lm loss:
# X | sop loss: Y |", BERT), then the model's statistics ("load_balancing_loss: Z |", mixture-of-experts
# layers; "mtp_1 loss: W |", multi-token prediction); of a validation line: "<term> value: X |" for each. Every term is compared.
LINE = re.compile(r"iteration\s+(\d+)/.*global batch size:\s+\d+ \|(.*?) grad norm: (\S+) \|")
TERM = re.compile(r" ([a-z][a-z0-9_ ]*?): (\S+) \|")
VALID = re.compile(r"validation loss at iteration (\d+) \|(.*)$", re.M)
VALID_TERM = re.compile(r" ([a-z][a-z ]*?) value: (\S+) \|")


def term_key(prefix, name, iteration):
    """loss@10 / valid@10 for the "lm loss"; <prefix>_sop_loss@10 for another term."""
    return f"{prefix}@{iteration}" if name == "lm loss" else f"{prefix}_{name.replace(' ', '_')}@{iteration}"


def model_sets(**keys):
    return [a for k, v in keys.items() for a in ("--set", f"model.{k}={v}")]


RECOMPUTE = {
    "full": model_sets(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1),
    "full2": model_sets(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=2),
    "block": model_sets(recompute_granularity="full", recompute_method="block", recompute_num_layers=1),
    "sel": model_sets(recompute_granularity="selective"),
    "dist": model_sets(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1,
                       distribute_saved_activations="true"),
    # Megatron-Core's recompute_modules (TOML arrays through --set).
    "mods": model_sets(recompute_granularity="selective", recompute_modules='["core_attn","mlp","moe_act"]'),
    "moe": model_sets(recompute_granularity="selective", recompute_modules='["mlp","moe"]'),
    # "layernorm": the norms' outputs (alone: fc1 takes its input back; with the attention core and
    # every dense MLP whole; with every MLP whole under "lnmoe").
    "ln1": model_sets(recompute_granularity="selective", recompute_modules='["layernorm"]'),
    "ln": model_sets(recompute_granularity="selective", recompute_modules='["core_attn","layernorm","mlp"]'),
    "lnmoe": model_sets(recompute_granularity="selective", recompute_modules='["layernorm","mlp","moe"]'),
}


# Mixed precision (prec=bf16) against one process in bf16: relative tolerances for (the train and
# validation losses, the grad norm, each saved weight tensor), for layouts with tensor parallelism
# and without.
#
# bf16 keeps 8 significant bits (unit roundoff u = 2^-9 ≈ 2.0e-3). With tp every bf16 rounding
# happens elsewhere: each rank's row-parallel GEMM rounds its partial sum to bf16 and the bf16
# all-reduce / reduce-scatter rounds again after each combine step, where one process rounds the
# whole sum once; partial sums are added in another order. That is noise of the same kind as bf16's
# own, so its scale is the distance between one process in bf16 and one in fp32 (same config): over
# the six layout tests' configs (10 and 20 iterations, MQA and MHA, 4 and 24 layers) up to 1.0e-3
# on the losses and 8.5e-3 on the grad norm. Without tp every rank computes what one process does
# from the same bf16 compute copies, until another f32 summation order of the gradients (dp, ZeRO
# shards) moves a master weight across a bf16 rounding boundary.
#
# Measured on 2026-11-30 (every layout of the six tests run in bf16, with both bf16 GEMM ways:
# oneDNN on avx512_bf16 and TESSERA_BF16_GEMM=convert), the worst relative differences from one
# process in bf16:
#   tp layouts (tp, sp, and with pp, vp, dp, distributed_adam, recompute): losses 1.6e-4, grad norm
#     4.6e-3 (at iteration 2, after Adam's first, sign-like step has moved every weight whose
#     gradient is rounding noise by ±lr), weights 0.12;
#   layouts without tp (dp, pp, vp, distributed_adam, recompute): losses 1.9e-5, grad norm 9.2e-5,
#     weights 6.8e-3 (pp alone and recompute in one process: equal, or 1 ulp of the grad norm).
# The bounds are about 3× those with tp, 5× (losses), 10× (grad norm) and 4.4× (weights) without;
# the loss bound with tp is half of bf16's own worst distance from fp32.
# A real error exceeds them (measured by sabotaging the one-process run): another seed moves the
# losses by 1.2e-2 at iteration 1; lr × 1.01 or × 0.99 (a 1% error in every update) by 1.0-1.2e-4 at
# iteration 2 (past the bound without tp), 6e-4 at iteration 5 (past the bound with tp) and 1e-3
# from iteration 7; hidden_dropout 0.105 for 0.1 moves the grad norm by 2.6e-3 at iteration 1 and
# 1.6e-2 at iteration 2.
# The weights move far more than the losses because Adam normalises each element's step: an element
# whose gradient is small against the bf16 noise steps by ±lr either way (fp32 layouts: 2e-7). The
# key half of attention.key_value.bias ([keys; values]) is not compared in bf16 at all: its true
# gradient is zero (softmax ignores a shift shared by every key), so its values are Adam-amplified
# rounding noise as large as the bias itself (measured: 1.3 relative with tp; 3e-4 in fp32).
BF16_TOLERANCE = {"tp": (5e-4, 1.5e-2, 0.4), "no tp": (1e-4, 1e-3, 0.03)}

# Mixture-of-experts router statistics (the load-balancing and z-losses the log shows) in bf16: each is
# a mean over the microbatch's tokens of a function of the router's bf16 logits, and the
# load-balancing loss weighs each expert by its count of routed tokens — a count that moves by one
# when a last-bit difference flips a (token, expert) choice near a tie. Any layout changes which
# roundings happen (dp: the f32 gradient sums, so the bf16 weight copies; tp: the partial GEMMs;
# ep: the experts' GEMM row counts), so their noise is bf16's own: measured on 2026-12-02 over the
# moe_ep, moe_freq and moe_sigmoid configs (dp, tp, pp, ep, tp·ep·sp, ZeRO), worst 2.3e-4 without tp
# and 2.1e-3 with it, against 2.0e-3 (load balancing) and 3.2e-3 (z-loss) between one process in
# bf16 and in fp32. The bound is 5e-3 for both classes; a real error (another seed, a wrong
# coefficient) moves them by percents.
ROUTER_STATISTICS = {"loss_load_balancing_loss", "loss_seq_load_balancing_loss", "loss_z_loss"}
ROUTER_BF16_TOLERANCE = 5e-3
# And the zeros in the gradient are not compared for such models in bf16: an expert no token
# reached has an all-zero gradient, so one flipped choice that empties or fills an expert moves the
# count by the expert's size (measured: 3,960 elements at iteration 6 of moe_sigmoid, dp2).


# Zeros in the gradient (logging.log_num_zeros_in_grad) are elements, not a float: a layout must
# count every element once (tensor-parallel replicas and tied copies once, ZeRO shards all), so the
# rows of unused token ids (untied embeddings) count alike. But an element whose gradient is rounding
# noise (the key half of attention.key_value.bias, whose true gradient is 0) lands on exactly 0.0 in
# one summation order and not in another: measured 1 such element in a tp layout against one
# process. ZEROS_SLACK allows a few; a double-counted or missed tensor is hundreds off.
ZEROS_SLACK = 8

PARAMS_NORM = re.compile(r"iteration\s+(\d+)/.* params norm: (\S+) \|")
NUM_ZEROS = re.compile(r"iteration\s+(\d+)/.* num zeros: (\S+) \|")


def run(cmd):
    # Compared too: every layout's weights' norm, and its gradient's zeros (each element counted once).
    cmd = cmd + ["--set", "logging.log_params_norm=true", "--set", "logging.log_num_zeros_in_grad=true"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    values = {}
    for m in LINE.finditer(p.stdout):
        for name, value in TERM.findall(m.group(2)):
            values[term_key("loss", name, m.group(1))] = float(value)
        values[f"grad_norm@{m.group(1)}"] = float(m.group(3))
    for m in PARAMS_NORM.finditer(p.stdout):
        values[f"params_norm@{m.group(1)}"] = float(m.group(2))
    for m in NUM_ZEROS.finditer(p.stdout):
        values[f"num_zeros@{m.group(1)}"] = float(m.group(2))
    for m in VALID.finditer(p.stdout):
        for name, value in VALID_TERM.findall(m.group(2)):
            values[term_key("valid", name, m.group(1))] = float(value)
    if not values:
        sys.exit(f"no iteration lines from: {' '.join(cmd)}\n{p.stdout}")
    overlapped = re.search(r"data parallel: (\d+) of (\d+) gradient all-reduces started while backward ran", p.stdout)
    values["overlapped"] = (int(overlapped.group(1)), int(overlapped.group(2))) if overlapped else None
    state = re.search(r"optimizer state: (\d+) elements on this rank", p.stdout)
    values["state"] = int(state.group(1)) if state else None
    buckets = re.search(r"data parallel: gradients in (\d+) bucket", p.stdout)
    values["buckets"] = int(buckets.group(1)) if buckets else None
    held = re.search(r"pipeline: stage 0 of (\d+) held at most (\d+) microbatches", p.stdout)
    precision = re.search(r"precision: (\w+) activations", p.stdout)
    values["precision"] = precision.group(1) if precision else "fp32"
    values["held"] = (int(held.group(1)), int(held.group(2))) if held else None
    # The layers rank 0's model holds ("layer 0, layers 3–4") and the layout's uneven stages.
    stage0 = re.search(r"pipeline stage 0 of \d+ \((.*)\)\s*$", p.stdout, re.M)
    values["stage0_layers"] = sum(int(b) - int(a) + 1 if b else 1
                                  for a, b in re.findall(r"layers? (\d+)(?:–(\d+))?", stage0.group(1))) if stage0 else None
    values["layout"] = (re.search(r"layout: (.*)", p.stdout) or re.search("$", "")).group(0)
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


def weight_differences(got_dir, base_dir, layout, skip_key_bias=False):
    """{name: relative L2 difference} between two saved final weights (gathered over tp, vocab padding
    dropped); with skip_key_bias (bf16), of the value half of attention.key_value.bias only ([keys;
    values]), and without the MoE expert bias.
    attention.k_layernorm.bias (qk_layernorm with LayerNorm) is never compared: like the key bias, it
    adds one vector to every key, which moves no softmax, so its true gradient is zero and its values
    are Adam's steps on rounding noise in any precision."""
    got, base = read_safetensors(os.path.join(got_dir, "model.safetensors")), \
        read_safetensors(os.path.join(base_dir, "model.safetensors"))
    if got.keys() != base.keys():
        sys.exit(f"{layout}: saved tensors {sorted(got)} but one process saved {sorted(base)}")
    out = {}
    for name, (shape, values) in base.items():
        if name.endswith("attention.k_layernorm.bias"):
            continue
        # bf16: the MoE expert bias moves by ±rate on the sign of (mean − count) per expert; one
        # routing choice flipped by bf16 noise can reverse a sign (see ROUTER_STATISTICS), so it is
        # compared in fp32 only (measured: 0.16 relative after 10 iterations, moe_sigmoid dp2).
        if skip_key_bias and name.endswith("router.expert_bias"):
            continue
        if got[name][0] != shape:
            sys.exit(f"{layout}: saved {name} has shape {got[name][0]}, one process {shape}")
        got_values = got[name][1]
        if skip_key_bias and name.endswith("attention.key_value.bias"):
            values, got_values = values[len(values) // 2:], got_values[len(values) // 2:]
        diff = math.sqrt(sum((a - b) ** 2 for a, b in zip(got_values, values)))
        norm = math.sqrt(sum(b * b for b in values))
        out[name] = diff / max(norm, 1e-12) if diff else 0.0
    return out


def compare_weights(layout, got_dir, base_dir, tol, what="one process's"):
    """The saved final weights equal `base_dir`'s within a relative L2 tolerance per tensor."""
    for name, rel in weight_differences(got_dir, base_dir, layout).items():
        if rel > tol:
            sys.exit(f"{layout}: saved {name} differs from {what} by {rel:.2e} (relative) > {tol}")


def main():
    tessera, config, tol = sys.argv[1], sys.argv[2], float(sys.argv[4])
    rest = sys.argv[5:]
    split = rest.index("--")
    mpiexec, layouts = rest[:split], rest[split + 1:]
    workdir = sys.argv[3]
    def save(name):  # a fresh folder each time: a run refuses to save over another run's files
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
        return ["--set", f"checkpoint.save={os.path.join(workdir, name)}"]
    bases = {}  # precision → (logged values, optimizer state elements, saved weights folder) of one process

    def one_process(prec):
        if prec not in bases:
            folder = "weights_one_process" if prec == "fp32" else f"weights_one_process_{prec}"
            sets = [] if prec == "fp32" else ["--set", f"training.precision={prec}"]
            base = run([tessera, "train", config] + sets + save(folder))
            base.pop("overlapped")
            base.pop("buckets")
            base.pop("held")
            base.pop("precision")
            base.pop("stage0_layers")
            base.pop("layout")
            state = base.pop("state")
            bases[prec] = (base, state, os.path.join(workdir, folder))
        return bases[prec]

    worst = {}  # precision → worst relative difference of a logged value
    logged = {}  # layout → its logged values, for dev=sim's bitwise comparison
    for layout in layouts:
        opts = dict(kv.split("=") for kv in layout.split(","))
        prec = opts.get("prec", "fp32")
        if prec not in ("fp32", "bf16"):
            sys.exit(f"{layout}: prec must be fp32 or bf16")
        base, base_state, base_weights = one_process(prec)
        if prec == "fp32":
            # The key bias (see BF16_TOLERANCE) moves by Adam's steps on f32 rounding noise: weights get
            # 100× the tolerance (measured: 3e-4 on the key bias, 2e-7 elsewhere).
            loss_tol, norm_tol, weight_tol = tol, tol, 100 * tol
        else:
            loss_tol, norm_tol, weight_tol = BF16_TOLERANCE["tp" if int(opts.get("tp", "1")) > 1 else "no tp"]
        sets = []
        for key, name in (("tp", "tensor_model_parallel_size"), ("pp", "pipeline_model_parallel_size"),
                          ("vp", "virtual_pipeline_model_parallel_size"),
                          ("split", "pipeline_model_parallel_split_rank"),
                          ("first", "decoder_first_pipeline_num_layers"),
                          ("last", "num_layers_in_last_pipeline_stage"),
                          ("ep", "expert_model_parallel_size"), ("etp", "expert_tensor_parallel_size"),
                          ("cp", "context_parallel_size")):
            if key in opts:
                sets += ["--set", f"parallel.{name}={opts[key]}"]
        if "tp" in opts:
            # Megatron pads the vocabulary to a multiple of make_vocab_size_divisible_by × tp; keep
            # the padded size (and so the model) the one-process run's (the config must use 128).
            sets += ["--set", f"model.make_vocab_size_divisible_by={128 // int(opts['tp'])}"]
        for key, name in (("emb", "account_for_embedding_in_pipeline_split"),
                          ("loss", "account_for_loss_in_pipeline_split")):
            if opts.get(key) == "1":
                sets += ["--set", f"parallel.{name}=true"]
        if opts.get("sp") == "1":
            sets += ["--set", "parallel.sequence_parallel=true"]
        if "disp" in opts:
            sets += ["--set", f"model.moe_token_dispatcher_type=\"{opts['disp']}\""]
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
        if prec != "fp32":
            sets += ["--set", f"training.precision={prec}"]
        got = run(mpiexec + ["-np", opts["np"], tessera, "train", config] + sets + save(f"weights_{layout}"))
        overlapped = got.pop("overlapped")
        state, buckets = got.pop("state"), got.pop("buckets")
        if opts.get("opt") == "dist" and set(opts) <= {"np", "opt", "ov", "bs", "prec"}:
            # ZeRO-1: each of the dp ranks holds 1/dp of Adam's moments, plus the buckets' padding
            # for each moment: under 16 elements per parameter (each starts 16-aligned) and under
            # 16 per bucket and rank (a bucket splits into dp equal shards).
            dp = int(opts["np"])
            buckets = buckets or 0  # dp = 1: no buckets, the state is Adam's
            tensors = len(read_safetensors(os.path.join(base_weights, "model.safetensors"))) if buckets else 0
            if state is None or not 0 <= state * dp - base_state <= 2 * (15 * tensors + 16 * dp * buckets):
                sys.exit(f"{layout}: optimizer state {state} elements per rank with {buckets} buckets; "
                         f"one process's Adam holds {base_state}, so about {base_state / dp:.0f} expected")
        held = got.pop("held")
        # Uneven stages (first=, last=) must reach the layout and the model, not fall back to even.
        stage0_layers, layout_line = got.pop("stage0_layers"), got.pop("layout")
        expected_stage0 = opts.get("s0", opts.get("first"))
        if expected_stage0 is not None and stage0_layers != int(expected_stage0):
            sys.exit(f"{layout}: the first stage's model holds {stage0_layers} layers, not {expected_stage0}")
        for key, stage in (("first", "first"), ("last", "last")):
            n = int(opts.get(key, "0"))
            if n and f"{stage} stage {n} layer" not in layout_line:
                sys.exit(f"{layout}: the layout line does not give the {stage} stage {n} layers: {layout_line}")
        if int(opts.get("cp", "1")) > 1 and f"cp {opts['cp']}" not in layout_line:
            sys.exit(f"{layout}: the layout line does not give context parallel size {opts['cp']}: {layout_line}")
        if opts.get("etp") == "1" and int(opts.get("tp", "1")) > 1 and "expert tensor parallel 1" not in layout_line:
            sys.exit(f"{layout}: the layout line does not give expert tensor parallel 1: {layout_line}")
        for key, what in (("emb", "embedding"), ("loss", "loss")):
            if opts.get(key) == "1" and f"the {what} counted as a layer" not in layout_line:
                sys.exit(f"{layout}: the layout line does not count the {what} as a layer: {layout_line}")
        if got.pop("precision") != prec:  # else a layout silently in fp32 might pass as bf16 noise
            sys.exit(f"{layout}: the log does not say it trained in {prec}")
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
            compare_weights(layout, os.path.join(workdir, f"weights_{layout}"),
                            os.path.join(workdir, f"weights_{twin}"), 0.0, f"{twin}'s")
        # The worst relative difference of each kind of value, for the log (and BF16_TOLERANCE's measurements).
        kinds = {}
        for k, v in base.items():
            kind = k.split("@")[0]
            if kind == "num_zeros":
                # A count: within ZEROS_SLACK elements (see there), not a relative tolerance.
                kinds[kind] = max(kinds.get(kind, 0.0), abs(got[k] - v))
                routed = any(r.split("@")[0] in ROUTER_STATISTICS for r in base)
                if abs(got[k] - v) > ZEROS_SLACK and not (prec != "fp32" and routed):
                    sys.exit(f"{layout}: {k} = {got[k]!r}, one process in {prec} {v!r} (more than {ZEROS_SLACK} "
                             f"elements apart)")
                continue
            rel = abs(got[k] - v) / max(abs(v), 1e-12)
            kinds[kind] = max(kinds.get(kind, 0.0), rel)
            worst[prec] = max(worst.get(prec, 0.0), rel)
            bound = norm_tol if kind == "grad_norm" else loss_tol
            if prec != "fp32" and kind in ROUTER_STATISTICS:
                bound = ROUTER_BF16_TOLERANCE
            if rel > bound:
                sys.exit(f"{layout}: {k} = {got[k]!r}, one process in {prec} {v!r} (relative difference {rel:.2e} > "
                         f"{bound})")
        weights = weight_differences(os.path.join(workdir, f"weights_{layout}"), base_weights, layout,
                                     skip_key_bias=prec != "fp32")
        kinds["weights"] = max(weights.values())
        for name, rel in weights.items():
            if rel > weight_tol:
                sys.exit(f"{layout}: saved {name} differs from one process's in {prec} by {rel:.2e} (relative) > "
                         f"{weight_tol}")
        buckets = f" ({overlapped[0]} of {overlapped[1]} bucket all-reduces overlapped)" if overlapped else ""
        within = f"{tol}" if prec == "fp32" else f"{loss_tol} (grad norm {norm_tol})"
        print(f"{layout}: {len(base)} values equal to one process in {prec} within {within}, weights within "
              f"{weight_tol}{buckets}; worst relative differences: "
              + ", ".join(f"{kind} {rel:.1e}" if kind != "num_zeros" else f"num_zeros {rel:.0f} elements"
                          for kind, rel in kinds.items()))
    for prec, rel in worst.items():
        print(f"worst relative difference in {prec}: {rel:.2e}")


if __name__ == "__main__":
    main()
