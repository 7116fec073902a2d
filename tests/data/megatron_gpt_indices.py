"""Megatron-LM's GPTDataset index building (_build_index_mappings, _num_epochs, _build_doc_idx,
_build_shuffle_idx, and helpers.cpp build_sample_idx ported line by line), written with numpy so the
test can compare Tessera's C++ indices with what Megatron would cache for the same inputs.

usage: megatron_gpt_indices.py SIZES_FILE DOC_BEGIN DOC_END NUM_SAMPLES SEQ_LENGTH SEED OUT_PREFIX
SIZES_FILE: int32 sizes of every sequence, raw little-endian. Writes OUT_PREFIX.{doc,sample,shuffle}
as raw int64 arrays and prints "num_epochs separate_last_epoch".
"""
import sys

import numpy as np


def num_epochs_(tokens_per_epoch, seq_length, num_samples):
    num_epochs = 0
    total_tokens = 0
    while True:
        num_epochs += 1
        total_tokens += tokens_per_epoch
        if ((total_tokens - 1) // seq_length) >= num_samples:
            return num_epochs


def build_doc_idx(documents, num_epochs, np_rng, separate_last_epoch):
    if not separate_last_epoch or num_epochs == 1:
        doc_idx = np.mgrid[0:num_epochs, 0:len(documents)][1]
        doc_idx[:] = documents
        doc_idx = doc_idx.reshape(-1)
        doc_idx = doc_idx.astype(np.int32)
        np_rng.shuffle(doc_idx)
        return doc_idx
    doc_idx_first = build_doc_idx(documents, num_epochs - 1, np_rng, False)
    doc_idx_last = build_doc_idx(documents, 1, np_rng, False)
    return np.concatenate((doc_idx_first, doc_idx_last))


def build_sample_idx(sizes, doc_idx, seq_length, num_epochs, tokens_per_epoch):
    num_samples = (num_epochs * tokens_per_epoch - 1) // seq_length
    sample_idx = np.zeros((num_samples + 1, 2), dtype=np.int64)
    sample_index = 0
    doc_idx_index = 0
    doc_offset = 0
    sample_idx[sample_index] = (doc_idx_index, doc_offset)
    sample_index += 1
    while sample_index <= num_samples:
        remaining_seq_length = seq_length + 1
        while remaining_seq_length != 0:
            doc_id = doc_idx[doc_idx_index]
            doc_length = int(sizes[doc_id]) - doc_offset
            remaining_seq_length -= doc_length
            if remaining_seq_length <= 0:
                doc_offset += remaining_seq_length + doc_length - 1
                remaining_seq_length = 0
            else:
                doc_idx_index += 1
                doc_offset = 0
        sample_idx[sample_index] = (doc_idx_index, doc_offset)
        sample_index += 1
    return sample_idx


def build_shuffle_idx(num_samples, total_size, np_rng):
    dtype_ = np.uint32
    if total_size >= (np.iinfo(np.uint32).max - 1):
        dtype_ = np.int64
    shuffle_idx_first = np.arange(start=0, stop=num_samples, step=1, dtype=dtype_)
    np_rng.shuffle(shuffle_idx_first)
    if num_samples == total_size:
        return shuffle_idx_first
    shuffle_idx_last = np.arange(start=num_samples, stop=total_size, step=1, dtype=dtype_)
    np_rng.shuffle(shuffle_idx_last)
    return np.concatenate((shuffle_idx_first, shuffle_idx_last))


def main():
    sizes_file, begin, end, num_samples, seq_length, seed, out = sys.argv[1:8]
    begin, end, num_samples, seq_length, seed = map(int, (begin, end, num_samples, seq_length, seed))
    sizes = np.fromfile(sizes_file, dtype="<i4")
    documents = np.arange(start=begin, stop=end, step=1, dtype=np.int32)
    tokens_per_epoch = int(np.sum(sizes[documents]))
    num_epochs = num_epochs_(tokens_per_epoch, seq_length, num_samples)
    np_rng = np.random.RandomState(seed=seed)
    if num_epochs == 1:
        separate_last_epoch = False
    else:
        num_samples_from_epochs_minus_one = ((num_epochs - 1) * tokens_per_epoch - 1) // seq_length
        last_epoch_num_samples = num_samples - num_samples_from_epochs_minus_one
        assert last_epoch_num_samples >= 0
        num_samples_per_epoch = (tokens_per_epoch - 1) // seq_length
        assert last_epoch_num_samples < (num_samples_per_epoch + 1)
        separate_last_epoch = last_epoch_num_samples < int(0.80 * num_samples_per_epoch)
    doc_idx = build_doc_idx(documents, num_epochs, np_rng, separate_last_epoch)
    sample_idx = build_sample_idx(sizes, doc_idx, seq_length, num_epochs, tokens_per_epoch)
    if separate_last_epoch:
        num_samples_ = num_samples_from_epochs_minus_one
    else:
        num_samples_ = sample_idx.shape[0] - 1
    shuffle_idx = build_shuffle_idx(num_samples_, sample_idx.shape[0] - 1, np_rng)
    doc_idx.astype("<i8").tofile(out + ".doc")
    sample_idx.astype("<i8").tofile(out + ".sample")
    shuffle_idx.astype("<i8").tofile(out + ".shuffle")
    print(num_epochs, int(separate_last_epoch))


if __name__ == "__main__":
    main()
