"""Megatron-LM's BERT and T5 sample building, transcribed plainly for the tests of
plugins/bert_t5_indexed: helpers.cpp build_mapping (with pure-Python MT19937 and MT19937-64, the
generators std::mt19937 and std::mt19937_64 define), dataset_utils.py get_a_and_b_segments,
truncate_segments, create_tokens_and_tokentypes, create_masked_lm_predictions and
pad_and_convert_to_numpy, bert_dataset.py build_training_sample and t5_dataset.py
build_training_sample, driven by numpy's np.random.RandomState(seed + idx) as Megatron drives them.

usage: megatron_bert_t5_reference.py IN.json OUT.json
IN: {"mode": "mapping"|"bert"|"t5", "sizes", "doc_idx" (whole dataset), "sentences" (token lists),
     "doc_begin", "doc_end", "num_samples", "max_seq_length", "max_seq_length_dec", "short_seq_prob",
     "seed", "binary_head", "masked_lm_prob", "vocab" (id -> text), "cls", "sep", "mask", "pad",
     "bos", "eos", "sentinels", "indices" (samples to build)}
OUT: {"mapping": [[start, end, target], ...], "samples": [{field: list}, ...]}
"""
import collections
import json
import math
import sys

import numpy as np

LONG_SENTENCE_LEN = 512
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


class MT19937:
    def __init__(self, seed):
        self.mt = [seed & M32]
        for i in range(1, 624):
            prev = self.mt[-1]
            self.mt.append((1812433253 * (prev ^ (prev >> 30)) + i) & M32)
        self.index = 624

    def __call__(self):
        if self.index >= 624:
            for i in range(624):
                y = (self.mt[i] & 0x80000000) | (self.mt[(i + 1) % 624] & 0x7FFFFFFF)
                self.mt[i] = self.mt[(i + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            self.index = 0
        y = self.mt[self.index]
        self.index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y & M32


class MT19937_64:
    def __init__(self, seed):
        self.mt = [seed & M64]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & M64)
        self.index = 312

    def __call__(self):
        if self.index >= 312:
            for i in range(312):
                x = (self.mt[i] & 0xFFFFFFFF80000000) | (self.mt[(i + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                self.mt[i] = self.mt[(i + 156) % 312] ^ xa
            self.index = 0
        x = self.mt[self.index]
        self.index += 1
        x ^= (x >> 29) & 0x5555555555555555
        x ^= (x << 17) & 0x71D67FFFEDA60000
        x ^= (x << 37) & 0xFFF7EEE000000000
        x ^= x >> 43
        return x & M64


# ---- helpers.cpp ---------------------------------------------------------------------------------

def c_round(x):
    """C's round(): half away from zero."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def get_target_sample_len(short_seq_ratio, max_length, rand32_gen):
    if short_seq_ratio == 0:
        return max_length
    random_number = rand32_gen()
    if (random_number % short_seq_ratio) == 0:
        return 2 + random_number % (max_length - 1)
    return max_length


def build_mapping(docs, sizes, num_epochs, max_num_samples, max_seq_length, short_seq_prob, seed, min_num_sent):
    short_seq_ratio = 0
    if short_seq_prob > 0:
        short_seq_ratio = int(c_round(1.0 / short_seq_prob))  # C's round()
    maps = []
    rand32_gen = MT19937(seed)  # one generator for the (single, appending) pass
    map_index = 0
    for epoch in range(num_epochs):
        if map_index >= max_num_samples:
            break
        if epoch > 0 and map_index == 0:
            break  # Megatron would loop 2^31 empty epochs here; the result is the same empty mapping
        for doc in range(len(docs) - 1):
            sent_index_first = docs[doc]
            sent_index_last = docs[doc + 1]
            prev_start_index = sent_index_first
            num_remain_sent = sent_index_last - sent_index_first
            contains_long_sentence = False
            if num_remain_sent > 1:
                for sent_index in range(sent_index_first, sent_index_last):
                    if sizes[sent_index] > LONG_SENTENCE_LEN:
                        contains_long_sentence = True
                        break
            if num_remain_sent >= min_num_sent and not contains_long_sentence:
                seq_len = 0
                num_sent = 0
                target_seq_len = get_target_sample_len(short_seq_ratio, max_seq_length, rand32_gen)
                for sent_index in range(sent_index_first, sent_index_last):
                    seq_len += sizes[sent_index]
                    num_sent += 1
                    num_remain_sent -= 1
                    if ((seq_len >= target_seq_len) and (num_remain_sent > 1) and (num_sent >= min_num_sent)) \
                            or (num_remain_sent == 0):
                        maps.append([prev_start_index, sent_index + 1, target_seq_len])
                        map_index += 1
                        prev_start_index = sent_index + 1
                        target_seq_len = get_target_sample_len(short_seq_ratio, max_seq_length, rand32_gen)
                        seq_len = 0
                        num_sent = 0
    rand64_gen = MT19937_64(seed + 1)
    num_samples = len(maps)
    for i in range(num_samples - 1, 0, -1):
        j = rand64_gen() % (i + 1)
        maps[i], maps[j] = maps[j], maps[i]
    return maps


# ---- dataset_utils.py ----------------------------------------------------------------------------

def get_a_and_b_segments(sample, np_rng):
    n_sentences = len(sample)
    assert n_sentences > 1
    a_end = 1
    if n_sentences >= 3:
        a_end = np_rng.randint(1, n_sentences)
    tokens_a = []
    for j in range(a_end):
        tokens_a.extend(sample[j])
    tokens_b = []
    for j in range(a_end, n_sentences):
        tokens_b.extend(sample[j])
    is_next_random = False
    if np_rng.random() < 0.5:
        is_next_random = True
        tokens_a, tokens_b = tokens_b, tokens_a
    return tokens_a, tokens_b, is_next_random


def truncate_segments(tokens_a, tokens_b, len_a, len_b, max_num_tokens, np_rng):
    assert len_a > 0
    if len_a + len_b <= max_num_tokens:
        return False
    while len_a + len_b > max_num_tokens:
        if len_a > len_b:
            len_a -= 1
            tokens = tokens_a
        else:
            len_b -= 1
            tokens = tokens_b
        if np_rng.random() < 0.5:
            del tokens[0]
        else:
            tokens.pop()
    return True


def create_tokens_and_tokentypes(tokens_a, tokens_b, cls_id, sep_id):
    tokens = [cls_id] + list(tokens_a) + [sep_id]
    tokentypes = [0] * len(tokens)
    for token in tokens_b:
        tokens.append(token)
        tokentypes.append(1)
    if tokens_b:
        tokens.append(sep_id)
        tokentypes.append(1)
    return tokens, tokentypes


MaskedLmInstance = collections.namedtuple("MaskedLmInstance", ["index", "label"])


def is_start_piece(piece):
    return not piece.startswith("##")


def create_masked_lm_predictions(tokens, vocab_id_list, vocab_id_to_token_dict, masked_lm_prob, cls_id, sep_id,
                                 mask_id, max_predictions_per_seq, np_rng, max_ngrams=3, do_whole_word_mask=True,
                                 favor_longer_ngram=False, geometric_dist=False, masking_style="bert"):
    cand_indexes = []
    for (i, token) in enumerate(tokens):
        if token == cls_id or token == sep_id:
            continue
        if (do_whole_word_mask and len(cand_indexes) >= 1 and not is_start_piece(vocab_id_to_token_dict[token])):
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
    output_tokens = list(tokens)
    if masked_lm_prob == 0:
        return output_tokens, [], [], []
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    ngrams = np.arange(1, max_ngrams + 1, dtype=np.int64)
    if not geometric_dist:
        pvals = 1. / np.arange(1, max_ngrams + 1)
        pvals /= pvals.sum(keepdims=True)
        if favor_longer_ngram:
            pvals = pvals[::-1]
    ngram_indexes = []
    for idx in range(len(cand_indexes)):
        ngram_index = []
        for n in ngrams:
            ngram_index.append(cand_indexes[idx:idx + n])
        ngram_indexes.append(ngram_index)
    np_rng.shuffle(ngram_indexes)

    (masked_lms, masked_spans) = ([], [])
    covered_indexes = set()
    for cand_index_set in ngram_indexes:
        if len(masked_lms) >= num_to_predict:
            break
        if not cand_index_set:
            continue
        if not geometric_dist:
            n = np_rng.choice(ngrams[:len(cand_index_set)],
                              p=pvals[:len(cand_index_set)] / pvals[:len(cand_index_set)].sum(keepdims=True))
        else:
            n = min(np_rng.geometric(0.2), max_ngrams)
        index_set = sum(cand_index_set[n - 1], [])
        n -= 1
        while len(masked_lms) + len(index_set) > num_to_predict:
            if n == 0:
                break
            index_set = sum(cand_index_set[n - 1], [])
            n -= 1
        if len(masked_lms) + len(index_set) > num_to_predict:
            continue
        is_any_index_covered = False
        for index in index_set:
            if index in covered_indexes:
                is_any_index_covered = True
                break
        if is_any_index_covered:
            continue
        for index in index_set:
            covered_indexes.add(index)
            if masking_style == "bert":
                if np_rng.random() < 0.8:
                    masked_token = mask_id
                else:
                    if np_rng.random() < 0.5:
                        masked_token = tokens[index]
                    else:
                        masked_token = vocab_id_list[np_rng.randint(0, len(vocab_id_list))]
            else:
                masked_token = mask_id
            output_tokens[index] = masked_token
            masked_lms.append(MaskedLmInstance(index=index, label=tokens[index]))
        masked_spans.append(MaskedLmInstance(index=index_set, label=[tokens[index] for index in index_set]))
    assert len(masked_lms) <= num_to_predict
    np_rng.shuffle(ngram_indexes)
    masked_lms = sorted(masked_lms, key=lambda x: x.index)
    masked_spans = sorted(masked_spans, key=lambda x: x.index[0])
    return (output_tokens, [p.index for p in masked_lms], [p.label for p in masked_lms], masked_spans)


def bert_pad_and_convert(tokens, tokentypes, masked_positions, masked_labels, pad_id, max_seq_length):
    num_tokens = len(tokens)
    padding_length = max_seq_length - num_tokens
    assert padding_length >= 0
    filler = [pad_id] * padding_length
    labels = [-1] * max_seq_length
    loss_mask = [0] * max_seq_length
    for i in range(len(masked_positions)):
        labels[masked_positions[i]] = masked_labels[i]
        loss_mask[masked_positions[i]] = 1
    return tokens + filler, tokentypes + filler, labels, [1] * num_tokens + [0] * padding_length, loss_mask


# ---- bert_dataset.py -----------------------------------------------------------------------------

def bert_training_sample(sample, target_seq_length, max_seq_length, vocab_id_list, vocab_id_to_token_dict, cls_id,
                         sep_id, mask_id, pad_id, masked_lm_prob, np_rng, binary_head):
    if binary_head:
        tokens_a, tokens_b, is_next_random = get_a_and_b_segments(sample, np_rng)
    else:
        tokens_a = [t for s in sample for t in s]
        tokens_b = []
        is_next_random = False
    max_num_tokens = target_seq_length
    truncate_segments(tokens_a, tokens_b, len(tokens_a), len(tokens_b), max_num_tokens, np_rng)
    tokens, tokentypes = create_tokens_and_tokentypes(tokens_a, tokens_b, cls_id, sep_id)
    max_predictions_per_seq = masked_lm_prob * max_num_tokens
    tokens, masked_positions, masked_labels, _ = create_masked_lm_predictions(
        tokens, vocab_id_list, vocab_id_to_token_dict, masked_lm_prob, cls_id, sep_id, mask_id,
        max_predictions_per_seq, np_rng)
    text, types, labels, padding_mask, loss_mask = bert_pad_and_convert(
        tokens, tokentypes, masked_positions, masked_labels, pad_id, max_seq_length)
    return {"tokens": text, "types": types, "labels": labels, "loss_mask": loss_mask, "padding_mask": padding_mask,
            "is_random": [int(is_next_random)]}


# ---- t5_dataset.py -------------------------------------------------------------------------------

def t5_training_sample(sample, target_seq_length, max_seq_length, max_seq_length_dec, vocab_id_list,
                       vocab_id_to_token_dict, cls_id, sep_id, mask_id, pad_id, masked_lm_prob, np_rng, bos_id,
                       eos_id, sentinel_tokens):
    tokens = [token for sentence in sample for token in sentence]
    max_num_tokens = target_seq_length
    tokens = tokens[:max_num_tokens]
    max_predictions_per_seq = masked_lm_prob * max_num_tokens
    (tokens, masked_positions, masked_labels, masked_spans) = create_masked_lm_predictions(
        tokens, vocab_id_list, vocab_id_to_token_dict, masked_lm_prob, cls_id, sep_id, mask_id,
        max_predictions_per_seq, np_rng, max_ngrams=10, geometric_dist=True, masking_style="t5")

    sentinel_tokens = collections.deque(sentinel_tokens)
    t5_input = []
    (t5_decoder_in, t5_decoder_out) = ([bos_id], [])
    (start_index, end_index) = (0, None)
    for span in masked_spans:
        flag = sentinel_tokens.popleft()
        t5_decoder_in.append(flag)
        t5_decoder_in.extend(span.label)
        t5_decoder_out.append(flag)
        t5_decoder_out.extend(span.label)
        end_index = span.index[0]
        t5_input.extend(tokens[start_index:end_index])
        t5_input.append(flag)
        start_index = span.index[-1] + 1
    t5_decoder_out.append(eos_id)
    t5_input.extend(tokens[start_index:])

    num_tokens = len(t5_input)
    padding_length = max_seq_length - num_tokens
    assert padding_length >= 0
    num_tokens_dec = len(t5_decoder_in)
    padding_length_dec = max_seq_length_dec - num_tokens_dec
    assert padding_length_dec >= 0
    tokens_enc = t5_input + [pad_id] * padding_length
    tokens_dec_in = t5_decoder_in + [pad_id] * padding_length_dec
    labels = t5_decoder_out + [-1] * padding_length_dec
    loss_mask = [1] * num_tokens_dec + [0] * padding_length_dec
    # make_attention_mask's padding rows, as 1-D masks (pad_id is 0 in the test vocabulary)
    return {"enc_tokens": tokens_enc, "dec_tokens": tokens_dec_in, "labels": labels, "loss_mask": loss_mask,
            "enc_padding_mask": [int(t >= 1) for t in tokens_enc],
            "dec_padding_mask": [int(t >= 1) for t in tokens_dec_in]}


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    mode = cfg["mode"]
    sizes = cfg["sizes"]
    doc_idx = cfg["doc_idx"]
    docs = doc_idx[cfg["doc_begin"]:cfg["doc_end"] + 1]
    seq = cfg["max_seq_length"]
    binary_head = cfg.get("binary_head", False)
    if mode == "mapping":
        max_target = cfg["max_target"]
        min_num_sent = cfg["min_num_sent"]
    elif mode == "bert":
        max_target = seq - 3
        min_num_sent = 2 if binary_head else 1
    else:
        max_target = seq - 2
        min_num_sent = 1
    mapping = build_mapping(docs, sizes, np.iinfo(np.int32).max - 1, cfg["num_samples"], max_target,
                            cfg["short_seq_prob"], cfg["seed"], min_num_sent)
    out = {"mapping": mapping, "samples": []}
    if mode != "mapping":
        vocab = cfg["vocab"]
        inv_vocab = {i: t for i, t in enumerate(vocab)}
        vocab_id_list = list(inv_vocab.keys())
        sentences = cfg["sentences"]
        for idx in cfg["indices"]:
            start, end, target = mapping[idx]
            sample = [list(sentences[i]) for i in range(start, end)]
            np_rng = np.random.RandomState(seed=((cfg["seed"] + idx) % 2**32))
            if mode == "bert":
                s = bert_training_sample(sample, target, seq, vocab_id_list, inv_vocab, cfg["cls"], cfg["sep"],
                                         cfg["mask"], cfg["pad"], cfg["masked_lm_prob"], np_rng, binary_head)
            else:
                s = t5_training_sample(sample, target, seq, cfg["max_seq_length_dec"], vocab_id_list, inv_vocab,
                                       cfg["cls"], cfg["sep"], cfg["mask"], cfg["pad"], cfg["masked_lm_prob"], np_rng,
                                       cfg["bos"], cfg["eos"], cfg["sentinels"])
            out["samples"].append({k: [int(x) for x in v] for k, v in s.items()})
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
