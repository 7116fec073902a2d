"""SentencePiece models and their reference encodings for tests/tokenizer/test_sentencepiece.cpp.

usage: sentencepiece_reference.py OUTDIR TEXTS.json

Trains two small models on Debian's Apache-2.0 licence text with Google's own library (Debian's
python3-sentencepiece, the library the plugin links): OUTDIR/bpe.model (BPE with byte fallback, as
Llama 2's) and OUTDIR/unigram.model (unigram, no byte fallback: text outside it becomes <unk>). Then
writes OUTDIR/reference.json: for each model its vocabulary size, bos and eos ids, and for each
text of TEXTS.json (a list of strings) the ids sp.encode gives (what Megatron-LM's
GPTSentencePieceTokenizer.tokenize returns; Llama2Tokenizer puts bos before them) and the text
sp.decode gives back for them.

Under "megatron": Megatron-LM's SentencePieceTokenizer (megatron/training/tokenizer/tokenizer.py,
_SentencePieceTokenizer, with vocab_extra_ids = 12), written out below from its Python, for the two
models and a third, OUTDIR/specials.model (BPE with a pad piece and <MASK> as a user-defined
symbol, so that two of the special tokens are the model's own pieces): its special tokens' ids and
vocabulary size, and for each text of TEXTS.json and of SPECIAL_TEXTS its tokenize and detokenize.
"""
import json
import os
import sys

import sentencepiece as spm

LICENCE = "/usr/share/common-licenses/Apache-2.0"


def train(prefix, model_type, vocab_size, byte_fallback):
    spm.SentencePieceTrainer.train(input=LICENCE, model_prefix=prefix, model_type=model_type, vocab_size=vocab_size,
                                   byte_fallback=byte_fallback, character_coverage=1.0, num_threads=1,
                                   minloglevel=2)


# Texts with special tokens: between words, at the ends, adjacent, the model's own pieces (<s>,
# </s>), two-digit sentinels, and look-alikes that are not special (wrong case, unclosed, a 13th
# sentinel).
SPECIAL_TEXTS = [
    "Licensed <CLS> under the<MASK>License <SEP>",
    "<EOD><EOD>text<PAD>",
    "<s>begin and end</s>",
    "<extra_id_0> x <extra_id_11> y <extra_id_10>",
    "<CLS",
    "<cls> <EXTRA_ID_0> <extra_id_12>",
    "",
]


class MegatronSentencePiece:
    """Megatron-LM's _SentencePieceTokenizer: special tokens after the model's pieces."""

    def __init__(self, sp, vocab_extra_ids):
        self.sp = sp
        self.vocab = {sp.id_to_piece(i): i for i in range(len(sp))}
        self.special = {}  # text -> id, in the order added
        self.inv_special = {}

        def piece_or(pid, fallback):
            try:
                return sp.id_to_piece(pid)
            except IndexError:
                return fallback

        names = ["<CLS>", "<SEP>", "<EOD>", "<MASK>", piece_or(sp.pad_id(), "<PAD>"), piece_or(sp.bos_id(), "<BOS>"),
                 piece_or(sp.eos_id(), "<EOS>")] + [f"<extra_id_{i}>" for i in range(vocab_extra_ids)]
        self.ids = []
        for t in names:
            if t not in self.vocab:
                self.vocab[t] = len(self.vocab)
            self.special[t] = self.vocab[t]
            self.inv_special[self.vocab[t]] = t
            self.ids.append(self.vocab[t])

    def tokenize(self, text):
        ids, idx = [], 0
        while True:
            found = {t: text[idx:].index(t) for t in self.special if t in text[idx:]}
            if not found:
                break
            token = min(found, key=found.get)
            at = idx + found[token]
            ids.extend(self.sp.encode_as_ids(text[idx:at]))
            ids.append(self.special[token])
            idx = at + len(token)
        return ids + self.sp.encode_as_ids(text[idx:])

    def detokenize(self, ids):
        text, last = "", 0
        for i, t in enumerate(ids):
            if t in self.inv_special:
                text += self.sp.decode_ids(ids[last:i]) + " " + self.inv_special[t] + " "
                last = i + 1
        return text + self.sp.decode_ids(ids[last:])


def main():
    out, texts_path = sys.argv[1], sys.argv[2]
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    os.makedirs(out, exist_ok=True)
    train(os.path.join(out, "bpe"), "bpe", 400, True)
    train(os.path.join(out, "unigram"), "unigram", 300, False)
    spm.SentencePieceTrainer.train(input=LICENCE, model_prefix=os.path.join(out, "specials"), model_type="bpe",
                                   vocab_size=350, pad_id=3, user_defined_symbols=["<MASK>"], character_coverage=1.0,
                                   num_threads=1, minloglevel=2)
    reference = {}
    for name in ("bpe", "unigram"):
        sp = spm.SentencePieceProcessor(model_file=os.path.join(out, name + ".model"))
        cases = []
        for text in texts:
            ids = sp.encode(text)
            cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
        reference[name] = {"vocab_size": sp.get_piece_size(), "bos": sp.bos_id(), "eos": sp.eos_id(), "cases": cases}
    reference["megatron"] = {}
    for name in ("bpe", "unigram", "specials"):
        m = MegatronSentencePiece(spm.SentencePieceProcessor(model_file=os.path.join(out, name + ".model")), 12)
        cases = []
        for text in texts + SPECIAL_TEXTS:
            ids = m.tokenize(text)
            cases.append({"text": text, "ids": ids, "decoded": m.detokenize(ids)})
        roles = dict(zip(["cls", "sep", "eod", "mask", "pad", "bos", "eos"], m.ids))
        reference["megatron"][name] = {"vocab_size": len(m.vocab), "sentinels": m.ids[7:], "cases": cases, **roles}
    with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
