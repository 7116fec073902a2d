"""The BERT of plugins/bert written plainly in PyTorch, timed as `tessera bench` times Tessera (the
options, precisions and JSON line of pytorch_gpt.py, whose layer and timing loop it shares):
word + position (+ token-type) embeddings, pre-LayerNorm layers attending to every token, a final
LayerNorm, the LM head (dense → GELU → LayerNorm → tied logits + bias) over every position as
Tessera's bench batch predicts every position, and with --binary-head 1 the pooler and the
sentence-order head. Run with Debian's /usr/bin/python3 (python3-torch).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import pytorch_gpt as base


class BERT(nn.Module):
    def __init__(self, L, C, H, V, T, binary_head):
        super().__init__()
        self.word, self.pos = nn.Embedding(V, C), nn.Embedding(T, C)
        self.types = nn.Embedding(2, C) if binary_head else None
        self.blocks = nn.ModuleList(base.Block(C, H, H, causal=False) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.lm_dense, self.lm_norm = nn.Linear(C, C), nn.LayerNorm(C)
        self.lm_bias = nn.Parameter(torch.zeros(V))
        self.pooler = nn.Linear(C, C) if binary_head else None
        self.binary = nn.Linear(C, 2) if binary_head else None

    def forward(self, idx, types, labels, order):
        T = idx.shape[1]
        x = self.word(idx) + self.pos(torch.arange(T, device=idx.device))
        if self.types is not None:
            x = x + self.types(types)
        for b in self.blocks:
            x = b(x, None)
        x = self.ln_f(x)
        # .float(): PyTorch 1.13's CPU autocast leaves layer_norm to its input's dtype, and a bf16
        # input with f32 weights fails (on CUDA autocast runs layer_norm in f32, as this does).
        h = self.lm_norm(F.gelu(self.lm_dense(x)).float())  # exact GELU, as Megatron's BertLMHead
        logits = h @ self.word.weight.t() + self.lm_bias
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), labels.view(-1))
        if self.pooler is not None:
            order_logits = self.binary(torch.tanh(self.pooler(x[:, 0])))
            loss = loss + F.cross_entropy(order_logits.float(), order)
        return loss


def main():
    p = base.arg_parser()
    p.add_argument("--binary-head", type=int, default=1, help="the pooler and sentence-order head (bert_binary_head)")
    a = base.setup(p)
    if a is None:
        return
    model = BERT(a.layers, a.hidden, a.heads, a.vocab, a.seq, a.binary_head).to(a.device)
    x = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    y = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    types = (torch.arange(a.seq, device=a.device) >= a.seq // 2).long().expand(a.batch, a.seq)
    order = torch.randint(0, 2, (a.batch,), device=a.device)
    base.time_training(a, model, lambda: model(x, types, y, order))


if __name__ == "__main__":
    main()
