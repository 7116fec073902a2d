"""The same GPT as plugins/gpt, written plainly in PyTorch, for tests/model/test_gpt_reference.cpp.

Reads <dir>/tessera.safetensors (weights under Tessera's names, the batch, the model shape) and
writes <dir>/torch.safetensors with the loss and every parameter's gradient, computed in float64 (and
stored as float32) so that the comparison measures Tessera's error, not PyTorch's.

Llama-style blocks (docs/llama.md), from <dir>/options.json when it exists, written the way
Megatron-Core computes them: "rope" (rotary positions instead of the learned table: rotary_percent,
rotary_base, rotary_interleaved — core/models/common/embeddings/rotary_pos_embedding.py),
"rms_norm" (w·x·rsqrt(mean(x²)+eps)), "swiglu" (fc1 → chunk(2) → silu(x0)·x1; with "glu": {"alpha",
"clamp", "offset"} Megatron-Core's other gated units, x0 clamped above and x1 on both sides at
"clamp", then x0·σ(alpha·x0)·(x1 + offset): quick_geglu, activation_func_clamp_value,
glu_linear_offset), "untied" (the head
is output_layer.weight) and "bias" (false: no linear biases; absent parameters are simply not
there; "qkv_bias": true keeps the query's and key/value's, as add_qkv_bias); "qk_layernorm" (the
same norm over each head's channels of q and k, before rotary positions); "layernorm_1p" (LayerNorm
scaling by 1 + weight); "squared_relu" (the MLP's relu(x)²); "positions": "none" (NoPE: neither
the table nor rotary positions); and "post_ln_residual" (Megatron-LM's
--apply-residual-connection-post-layernorm: each sublayer adds its norm's output instead of its input,
as ParallelTransformerLayer.forward picks `residual`); "exact_gelu" (the MLP's F.gelu, erf form, as
Megatron-LM's MLP without its fused bias-GELU); "rotary_interpolation" (positions divided by it,
--rotary-seq-len-interpolation-factor); "nope_layers" (one flag per layer, 1: no rotary positions there,
Megatron-Core's no_rope_freq); "yarn" (a dict of reference_rotary.yarn's arguments: YaRN's
frequencies and magnitude, position_embedding_type = "yarn"); "window" (Megatron-Core's window_size [window, 0]: query i
attends keys i − window … i, as get_sliding_window_causal_mask) in the layers "window_layers" flags 1
(every layer without it: window_attn_skip_freq); "softmax_type" ("off-by-one": a zero logit beside each
row's scores; "learnable": the layer's attention.softmax_offset, one logit per head — Megatron-Core's
softmax_offset); "moe": {"experts", "topk", "aux", "z", "pre_softmax", "scale",
"layers", "shared", "shared_gate", "seq", "capacity", "drop", "sigmoid", "groups", "group_topk", "bias", "sinkhorn"} (the MLPs of the layers flagged 1 in "layers", every layer without it, a mixture of experts
as Megatron-Core's TopKRouter and switch_load_balancing_loss_func — the router's logits x·Wᵀ plus its
bias where "bias" (add_bias_linear) gives the linears biases: softmax over the top-k logits, or
the top-k of the softmax with pre_softmax, or with "sigmoid" the top-k sigmoid scores normalised
(Megatron-Core's topk_routing_with_score_function), times "scale"; "groups" and "group_topk": the
top-k among the experts of the group_topk best of "groups" groups (group_limited_topk), the
load-balancing counts then the plain top-k's; "bias": the sigmoid scores plus the buffer
"router.expert_bias" choose the experts, the unbiased scores weigh them (the counts the plain
top-k's too); "sinkhorn": Megatron-Core's sinkhorn_load_balancing in training (the top-k of the
Sinkhorn-balanced exp(logits), weighted by sigmoid for top-1 or the softmax for top-k); plus the MLP
"shared_expert" on every
token with "shared" (scaled per token by sigmoid(x · shared_expert.gate_weight) with "shared_gate"; its
gated unit unclamped with "shared_clamp": false, activation_func_clamp_shared_expert); "seq": the load-balancing loss per sequence, averaged, as
sequence_load_balancing_loss_func; "capacity": token dropping as Megatron-Core's
topk_softmax_with_capacity, each expert keeping ceil(N·k/E·capacity) of its tokens, those of the
largest weights (its topk over the experts' gate column), or with "drop": "position" the earliest
(a cumulative count, where Megatron's topk over a 0/1 mask leaves ties to the kernel), the dropped
weights zeroed, the load-balancing counts taken before the cut; the load-balancing and z-losses
added to the objective, not to the reported loss; their values without the coefficients, summed over
the layers, are written as "load_balancing_loss" (with "seq": "seq_load_balancing_loss") and "z_loss").
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 2)[0])
import reference_io  # noqa: E402
from reference_rotary import rotary  # noqa: E402


def main(directory):
    t = reference_io.load(f"{directory}/tessera.safetensors")
    L, C, H, G = (int(x) for x in t["shape"][:4])
    opts = {}
    if os.path.exists(f"{directory}/options.json"):
        with open(f"{directory}/options.json") as f:
            opts = json.load(f)
    eps = opts.get("eps", 1e-5)
    params = {k: v.double().requires_grad_(True) for k, v in t.items() if k not in ("shape", "tokens", "labels", "loss_mask")}
    tokens, labels, mask = t["tokens"].long(), t["labels"].long(), t["loss_mask"].double()
    B, T = tokens.shape
    D = opts.get("kv_channels", C // H)  # channels per head: the query/output projections are H·D wide
    p = params
    rope = opts.get("rope", False)
    rot_dim = int(D * opts.get("rotary_percent", 1.0))
    base, interleaved = opts.get("rotary_base", 10000.0), opts.get("rotary_interleaved", False)

    # The linears' biases Tessera must have made: every one with "bias" (add_bias_linear), else only
    # the query's and key/value's with "qkv_bias" (add_qkv_bias).
    bias, qkv_bias = opts.get("bias", True), opts.get("qkv_bias", opts.get("bias", True))
    for name in params:
        if name.endswith(".bias") and (".attention." in name or ".mlp." in name):
            qkv = ".attention.query." in name or ".attention.key_value." in name
            assert (qkv_bias if qkv else bias), f"unexpected {name}"
    for i in range(L):
        for n in ("attention.query", "attention.key_value"):
            assert (f"layers.{i}.{n}.bias" in params) == qkv_bias, f"layers.{i}.{n}.bias: expected {qkv_bias}"

    def linear(x, name):
        return F.linear(x, p[f"{name}.weight"], p.get(f"{name}.bias"))

    def norm(x, name):
        if opts.get("rms_norm", False):
            return p[f"{name}.weight"] * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
        # "layernorm_1p": Megatron's LayerNorm1P scales by 1 + weight.
        weight = p[f"{name}.weight"] + 1 if opts.get("layernorm_1p", False) else p[f"{name}.weight"]
        return F.layer_norm(x, (x.shape[-1],), weight, p[f"{name}.bias"], eps)

    x = p["embedding.word_embeddings.weight"][tokens]
    # "learned_absolute" adds the table; "rope" rotates q and k instead; "none" (NoPE) neither.
    if opts.get("positions", "rope" if rope else "learned_absolute") == "learned_absolute":
        x = x + p["embedding.position_embeddings.weight"][torch.arange(T)]
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def mlp(h, prefix, clamp=True):  # clamp: the gated unit's clamps, where "glu" has them
        m = linear(h, f"{prefix}.fc1")
        if opts.get("swiglu", False):
            x0, x1 = torch.chunk(m, 2, dim=-1)
            glu = opts.get("glu")
            if glu is None:
                m = F.silu(x0) * x1
            else:  # Megatron-Core's mlp.py glu: clamps, the gate's x·σ(α·x), the linear half's offset
                if glu.get("clamp") is not None and clamp:
                    x0, x1 = x0.clamp(max=glu["clamp"]), x1.clamp(min=-glu["clamp"], max=glu["clamp"])
                m = x0 * torch.sigmoid(glu.get("alpha", 1.0) * x0) * (x1 + glu.get("offset", 0.0))
        else:
            # "squared_relu": Megatron's --squared-relu, relu(x)²; else GELU's tanh form.
            gelu = "none" if opts.get("exact_gelu", False) else "tanh"
            m = torch.relu(m) ** 2 if opts.get("squared_relu", False) else F.gelu(m, approximate=gelu)
        return linear(m, f"{prefix}.fc2")

    moe = opts.get("moe")
    router_losses = []  # (load balancing, z) of each layer, without the coefficients

    def mixture(h, prefix):
        E, k = moe["experts"], moe["topk"]
        rows = h.reshape(-1, C)
        logits = linear(rows, f"{prefix}.router")  # with "bias": Megatron-Core's router bias

        def topk(s, limit_groups=True):  # Megatron-Core's compute_topk, with group_limited_topk
            if not (limit_groups and moe.get("groups")):
                return torch.topk(s, k, dim=-1)
            G, g = moe["groups"], moe["group_topk"]
            group_scores = s.view(-1, G, E // G).topk(k // g, dim=-1)[0].sum(-1)
            group_mask = torch.zeros_like(group_scores).scatter(1, torch.topk(group_scores, g, dim=-1)[1], 1)
            mask = group_mask.unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
            return torch.topk(s.masked_fill(~mask.bool(), float("-inf")), k, dim=-1)

        if moe.get("sinkhorn", False):  # sinkhorn_load_balancing (a training step)
            scores = torch.sigmoid(logits) if k == 1 else logits.softmax(-1)
            with torch.no_grad():
                cost = torch.exp(logits)
                d0, d1 = torch.ones(cost.shape[0], dtype=cost.dtype), torch.ones(E, dtype=cost.dtype)
                error, d1_old = 1e9, d1
                while error > 1e-4:
                    d0 = (1 / d0.shape[0]) * 1 / (torch.sum(d1 * cost, 1) + 1e-8)
                    d1 = (1 / d1.shape[0]) * 1 / (torch.sum(d0.unsqueeze(1) * cost, 0) + 1e-8)
                    error = torch.mean(torch.abs(d1_old - d1))
                    d1_old = d1
                chosen = torch.topk(d1 * cost * d0.unsqueeze(1), k, dim=1)[1]
            probs = scores.gather(1, chosen)
        elif moe.get("sigmoid", False):  # topk_routing_with_score_function, score_function "sigmoid"
            sig = torch.sigmoid(logits)
            if moe.get("bias", False):  # the expert bias chooses; the unbiased scores weigh
                _, chosen = topk(sig + p[f"{prefix}.router.expert_bias"].detach())
                top = sig.gather(1, chosen)
            else:
                top, chosen = topk(sig)
            probs = top / (top.sum(-1, keepdim=True) + 1e-20) if k > 1 else top
            scores = sig / (sig.sum(-1, keepdim=True) + 1e-20) if k > 1 else sig
        else:
            scores = logits.softmax(-1)
            if moe.get("pre_softmax", False):
                probs, chosen = topk(scores)
            else:
                top, chosen = topk(logits)
                probs = top.softmax(-1)
        probs = probs * moe.get("scale", 1.0)
        # The load-balancing counts: the plain top-k of its probabilities (compute_routing_scores_for_aux_loss).
        counted = torch.topk(scores, k, dim=-1)[1] if moe.get("groups") or moe.get("bias") else chosen
        if moe.get("capacity"):
            capacity = min(math.ceil(rows.shape[0] * k / E * moe["capacity"]), rows.shape[0])
            routed = torch.zeros_like(logits).scatter(1, chosen, 1.0)
            if moe.get("drop") == "position":
                keep = routed * (routed.cumsum(0) <= capacity)
            else:
                gates = torch.zeros_like(logits).scatter(1, chosen, probs.detach())
                keep = routed * torch.zeros_like(logits).scatter(0, torch.topk(gates, capacity, dim=0).indices, 1.0)
            probs = probs * keep.gather(1, chosen)
        out = torch.zeros_like(rows)
        for e in range(E):
            tok, slot = (chosen == e).nonzero(as_tuple=True)
            if len(tok):
                out = out.index_add(0, tok, probs[tok, slot].unsqueeze(-1) * mlp(rows[tok], f"{prefix}.experts.{e}"))
        if moe.get("shared"):
            shared = mlp(rows, f"{prefix}.shared_expert", moe.get("shared_clamp", True))
            if moe.get("shared_gate"):  # Qwen-MoE's / SharedExpertMLP's gate: sigmoid(x · w) per token
                shared = torch.sigmoid(rows @ p[f"{prefix}.shared_expert.gate_weight"].t()) * shared
            out = out + shared
        groups = B if moe.get("seq", False) else 1  # rows are [B·T], one sequence after another
        n = rows.shape[0] // groups
        counts = F.one_hot(counted, E).view(groups, n, k, E).sum((1, 2)).double()
        balance = (scores.view(groups, n, E).sum(1) * counts).sum() * E / (k * n * n) / groups
        router_losses.append((balance, torch.logsumexp(logits, -1).pow(2).mean()))
        return out.reshape(h.shape)

    def layer(x, n, i):  # layer i's flags (window, rope, moe), its parameters under n
        a = norm(x, f"{n}.ln1")
        q = linear(a, f"{n}.attention.query").view(B, T, H, D)
        kv = linear(a, f"{n}.attention.key_value")
        k = kv[..., : G * D].reshape(B, T, G, D)
        v = kv[..., G * D:].reshape(B, T, G, D)
        if opts.get("qk_layernorm", False):  # Megatron-Core: per head, before the rotary embedding
            q, k = norm(q, f"{n}.attention.q_layernorm"), norm(k, f"{n}.attention.k_layernorm")
        if rope and not opts.get("nope_layers", [0] * L)[i]:  # Megatron-Core's no_rope_freq skips flagged layers
            scale, interp = opts.get("rope_scaling_factor", 0.0), opts.get("rotary_interpolation", 1.0)
            q = rotary(q, rot_dim, base, interleaved, 0, scale, interp, opts.get("yarn"))
            k = rotary(k, rot_dim, base, interleaved, 0, scale, interp, opts.get("yarn"))
        k, v = k.repeat_interleave(H // G, dim=2), v.repeat_interleave(H // G, dim=2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # [B,H,T,D]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        allowed = causal
        if opts.get("window", -1) >= 0 and opts.get("window_layers", [1] * L)[i]:
            allowed = allowed & torch.ones(T, T, dtype=torch.bool).triu(-opts["window"])
        s = s.masked_fill(~allowed, float("-inf"))
        softmax_type = opts.get("softmax_type", "vanilla")
        if softmax_type == "vanilla":
            probs = s.softmax(-1)
        else:  # the sink's column joins the softmax and leaves the probabilities
            sink = p[f"{n}.attention.softmax_offset"] if softmax_type == "learnable" else torch.zeros(H, dtype=s.dtype)
            probs = torch.cat([s, sink.view(1, H, 1, 1).expand(B, H, T, 1)], -1).softmax(-1)[..., :T]
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, H * D)
        post = opts.get("post_ln_residual", False)
        x = (a if post else x) + linear(ctx, f"{n}.attention.output")
        a2 = norm(x, f"{n}.ln2")
        routed = moe and moe.get("layers", [1] * L)[i]
        return (a2 if post else x) + (mixture(a2, f"{n}.mlp") if routed else mlp(a2, f"{n}.mlp"))

    for i in range(L):
        x = layer(x, f"layers.{i}", i)
    x = norm(x, "final_layernorm")
    head = p["output_layer.weight"] if opts.get("untied", False) else p["embedding.word_embeddings.weight"]

    def lm_loss(h, targets, weights):  # Σ cross-entropy·weights / Σ weights
        logits = h @ head.t()  # padded vocabulary
        losses = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), reduction="none")
        return (losses * weights.reshape(-1)).sum() / weights.sum()

    loss = lm_loss(x, labels, mask)
    objective = loss
    # "mtp": {"layers": D, "scale": λ, "repeated": bool} — Megatron-Core's multi-token prediction: depth d rolls the
    # tokens, positions, labels and loss mask one more place left (zeros rolled in), embeds the
    # tokens with the model's embedding, joins enorm(embedding) and hnorm(previous depth's output)
    # through eh_proj, runs a layer built like the last and its final_layernorm, and adds
    # λ / D · its loss to the objective. "repeated" (mtp_use_repeated_layer): every depth uses depth 0's weights.
    mtp = opts.get("mtp")
    mtp_losses = []
    if mtp:
        def roll(t):
            return torch.cat([t[:, 1:], torch.zeros_like(t[:, :1])], 1)

        tok, pos, lab, msk, h = tokens, torch.arange(T).expand(B, T), labels, mask, x
        for d in range(mtp["layers"]):
            tok, pos, lab, msk = roll(tok), roll(pos), roll(lab), roll(msk)
            e = p["embedding.word_embeddings.weight"][tok]
            if opts.get("positions", "rope" if rope else "learned_absolute") == "learned_absolute":
                e = e + p["embedding.position_embeddings.weight"][pos]
            n = f"mtp.layers.{0 if mtp.get('repeated', False) else d}"
            joined = torch.cat([norm(e, f"{n}.enorm"), norm(h, f"{n}.hnorm")], -1)
            h = norm(layer(F.linear(joined, p[f"{n}.eh_proj.weight"]), n, L - 1), f"{n}.final_layernorm")
            mtp_losses.append(lm_loss(h, lab, msk))
            objective = objective + mtp.get("scale", 0.1) / mtp["layers"] * mtp_losses[-1]
    for balance, z in router_losses:
        objective = objective + moe.get("aux", 0.0) * balance + moe.get("z", 0.0) * z
    objective.backward()
    out = {"loss": loss.detach().reshape(1)}
    for d, value in enumerate(mtp_losses):
        out[f"mtp_{d + 1} loss"] = value.detach().reshape(1)
    if moe:
        balance_name = "seq_load_balancing_loss" if moe.get("seq", False) else "load_balancing_loss"
        out[balance_name] = sum(b for b, _ in router_losses).detach().reshape(1)
        out["z_loss"] = sum(z for _, z in router_losses).detach().reshape(1)
    # An expert no token reached has no gradient in torch; its gradient is zero.
    out.update({f"grad:{k}": v.grad if v.grad is not None else torch.zeros_like(v) for k, v in params.items()})
    reference_io.save(f"{directory}/torch.safetensors", {k: v.float() for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
