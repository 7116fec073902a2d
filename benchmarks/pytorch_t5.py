"""The T5 of plugins/t5 written plainly in PyTorch, timed as `tessera bench` times Tessera (the
options, precisions and JSON line of pytorch_gpt.py, whose timing loop it shares): one word table
embedding encoder and decoder inputs and tied to the output (plus a per-vocabulary bias), one
position table, pre-LayerNorm encoder layers attending to every token with a final LayerNorm,
decoder layers with causal self-attention, cross-attention on the encoder output and the MLP, a
final LayerNorm; the loss over every decoder position (as Tessera's bench batch). --layers and
--seq are the encoder's, --dec-layers and --dec-seq the decoder's. Run with Debian's /usr/bin/python3.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import pytorch_gpt as base


class Attention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H, self.D = H, C // H
        self.q, self.kv, self.proj = nn.Linear(C, C), nn.Linear(C, 2 * C), nn.Linear(C, C)

    def forward(self, x, memory, causal):
        B, Tq, C = x.shape
        Tk = memory.shape[1]
        q = self.q(x).view(B, Tq, self.H, self.D).transpose(1, 2)
        k, v = self.kv(memory).split(C, dim=-1)
        k = k.reshape(B, Tk, self.H, self.D).transpose(1, 2)
        v = v.reshape(B, Tk, self.H, self.D).transpose(1, 2)
        if x.is_cuda:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.D))
            if causal:
                att = att.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            y = att.softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, Tq, C))


class Layer(nn.Module):
    def __init__(self, C, H, decoder):
        super().__init__()
        self.ln1, self.ln3 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.self_attention = Attention(C, H)
        self.cross = Attention(C, H) if decoder else None
        self.ln2 = nn.LayerNorm(C) if decoder else None
        self.fc1, self.fc2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x, memory=None):
        a = self.ln1(x)
        x = x + self.self_attention(a, a, causal=self.cross is not None)
        if self.cross is not None:
            x = x + self.cross(self.ln2(x), memory, causal=False)
        return x + self.fc2(F.gelu(self.fc1(self.ln3(x)), approximate="tanh"))


class T5(nn.Module):
    def __init__(self, enc_layers, dec_layers, C, H, V, positions):
        super().__init__()
        self.word, self.pos = nn.Embedding(V, C), nn.Embedding(positions, C)
        self.encoder = nn.ModuleList(Layer(C, H, False) for _ in range(enc_layers))
        self.decoder = nn.ModuleList(Layer(C, H, True) for _ in range(dec_layers))
        self.enc_ln, self.dec_ln = nn.LayerNorm(C), nn.LayerNorm(C)
        self.lm_bias = nn.Parameter(torch.zeros(V))

    def forward(self, enc, dec, labels):
        def embed(ids):
            return self.word(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        x = embed(enc)
        for layer in self.encoder:
            x = layer(x)
        memory = self.enc_ln(x)
        y = embed(dec)
        for layer in self.decoder:
            y = layer(y, memory)
        logits = self.dec_ln(y) @ self.word.weight.t() + self.lm_bias
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), labels.view(-1))


def main():
    p = base.arg_parser()
    p.add_argument("--dec-layers", type=int, required=False, help="decoder layers (default: --layers)")
    p.add_argument("--dec-seq", type=int, required=False, help="decoder sequence length (default: --seq)")
    a = base.setup(p)
    if a is None:
        return
    dec_layers, dec_seq = a.dec_layers or a.layers, a.dec_seq or a.seq
    model = T5(a.layers, dec_layers, a.hidden, a.heads, a.vocab, max(a.seq, dec_seq)).to(a.device)
    enc = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    dec = torch.randint(0, a.vocab, (a.batch, dec_seq), device=a.device)
    labels = torch.randint(0, a.vocab, (a.batch, dec_seq), device=a.device)
    base.time_training(a, model, lambda: model(enc, dec, labels))


if __name__ == "__main__":
    main()
