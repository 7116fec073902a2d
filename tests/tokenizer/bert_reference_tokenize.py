#!/usr/bin/python3
"""Reference ids for the bert_wordpiece tests: a plain transcription of Google's BERT tokenization.py
(BasicTokenizer + WordpieceTokenizer, which Megatron-LM copies as bert_tokenization.py), written out
here so the test needs nothing but /usr/bin/python3.

  bert_reference_tokenize.py VOCAB_TXT LOWER_CASE(0|1) STRIP_ACCENTS(0|1) FILE...

Prints one JSON list of ids per FILE (read as UTF-8, undecodable bytes replaced by U+FFFD as Python
does when a corpus is decoded with errors="replace")."""
import json
import sys
import unicodedata


def load_vocab(path):
    vocab = {}
    with open(path, encoding="utf-8") as f:
        while True:
            line = f.readline()
            if not line:
                break
            vocab[line.strip()] = len(vocab)
    return vocab


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text, lower_case, strip_accents):
    cleaned = []
    for ch in text:
        if ord(ch) in (0, 0xFFFD) or is_control(ch):
            continue
        cleaned.append(" " if is_whitespace(ch) else ch)
    spaced = "".join(" %s " % ch if is_cjk(ord(ch)) else ch for ch in cleaned)
    words = []
    for token in spaced.split():
        if lower_case:
            token = token.lower()
        if strip_accents:
            token = "".join(ch for ch in unicodedata.normalize("NFD", token) if unicodedata.category(ch) != "Mn")
        pieces, new_word = [], True
        for ch in token:
            if is_punctuation(ch):
                pieces.append(ch)
                new_word = True
            else:
                if new_word:
                    pieces.append("")
                new_word = False
                pieces[-1] += ch
        words.extend(pieces)
    return " ".join(words).split()


def wordpiece(word, vocab, max_chars=200):
    if len(word) > max_chars:
        return ["[UNK]"]
    out, start = [], 0
    while start < len(word):
        end, piece = len(word), None
        while start < end:
            candidate = ("##" if start > 0 else "") + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return ["[UNK]"]
        out.append(piece)
        start = end
    return out


def main():
    vocab_path, lower_case, strip_accents = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    vocab = load_vocab(vocab_path)
    for path in sys.argv[4:]:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            text = f.read()
        ids = [vocab[p] for w in basic_tokenize(text, lower_case, strip_accents) for p in wordpiece(w, vocab)]
        print(json.dumps(ids))


if __name__ == "__main__":
    main()
