#!/usr/bin/env python3
"""Megatron-LM's blending indices (megatron/data/helpers.cpp build_blending_indices, called by
BlendableDataset with weights normalised by numpy), transcribed in Python.

Usage: megatron_blending_reference.py SIZE W0 W1 ...   prints the dataset index of each sample,
then the dataset sample index of each sample, one line each, and the samples each dataset is asked
for (ceil(w * SIZE * 1.005), get_datasets_weights_and_num_samples).
"""
import math
import sys

import numpy as np


def build_blending_indices(weights, size):
    num_datasets = len(weights)
    dataset_index = np.zeros(size, dtype=np.uint8)
    dataset_sample_index = np.zeros(size, dtype=np.int64)
    current_samples = [0] * num_datasets
    for sample_idx in range(size):
        sample_idx_double = max(float(sample_idx), 1.0)
        max_error_index = 0
        max_error = weights[0] * sample_idx_double - float(current_samples[0])
        for dataset_idx in range(1, num_datasets):
            error = weights[dataset_idx] * sample_idx_double - float(current_samples[dataset_idx])
            if error > max_error:
                max_error = error
                max_error_index = dataset_idx
        dataset_index[sample_idx] = max_error_index
        dataset_sample_index[sample_idx] = current_samples[max_error_index]
        current_samples[max_error_index] += 1
    return dataset_index, dataset_sample_index


def main():
    size = int(sys.argv[1])
    weights = np.array([float(w) for w in sys.argv[2:]], dtype=np.float64)
    weights /= np.sum(weights)
    di, dsi = build_blending_indices([float(w) for w in weights], size)
    print(" ".join(map(str, di)))
    print(" ".join(map(str, dsi)))
    print(" ".join(str(int(math.ceil(size * float(w) * 1.005))) for w in weights))


if __name__ == "__main__":
    main()
