"""SentencePiece models and their reference encodings for tests/tokenizer/test_sentencepiece.cpp.

usage: sentencepiece_reference.py OUTDIR TEXTS.json

Trains two small models on Debian's Apache-2.0 licence text with Google's own library (Debian's
python3-sentencepiece, the library the plugin links): OUTDIR/bpe.model (BPE with byte fallback, as
Llama 2's) and OUTDIR/unigram.model (unigram, no byte fallback: text outside it becomes <unk>). Then
writes OUTDIR/reference.json: for each model its vocabulary size, bos and eos ids, and for each
text of TEXTS.json (a list of strings) the ids sp.encode gives (what Megatron-LM's
GPTSentencePieceTokenizer.tokenize returns; Llama2Tokenizer puts bos before them) and the text
sp.decode gives back for them.
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


def main():
    out, texts_path = sys.argv[1], sys.argv[2]
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    os.makedirs(out, exist_ok=True)
    train(os.path.join(out, "bpe"), "bpe", 400, True)
    train(os.path.join(out, "unigram"), "unigram", 300, False)
    reference = {}
    for name in ("bpe", "unigram"):
        sp = spm.SentencePieceProcessor(model_file=os.path.join(out, name + ".model"))
        cases = []
        for text in texts:
            ids = sp.encode(text)
            cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
        reference[name] = {"vocab_size": sp.get_piece_size(), "bos": sp.bos_id(), "eos": sp.eos_id(), "cases": cases}
    with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
