#!/usr/bin/env python3
"""Megatron-LM's training samplers (megatron/training/datasets/data_samplers.py:
MegatronPretrainingSampler for --dataloader-type single, MegatronPretrainingRandomSampler for
cyclic, behind build_pretraining_data_loader's cyclic_iter), transcribed with torch.

Usage: megatron_sampler_reference.py [TYPE TOTAL MICRO DP RANK CONSUMED SHARDING STEPS]...
prints for each case the dataset indices of each of the rank's next STEPS microbatches, one line
each, then a line "-".
"""
import sys

import torch


def single(total, consumed, micro, rank, dp):
    batch = []
    for idx in range(consumed, total):
        batch.append(idx)
        if len(batch) == micro * dp:
            yield batch[rank * micro:(rank + 1) * micro]
            batch = []


class RandomSampler:
    def __init__(self, total, consumed, micro, rank, dp, sharding):
        self.total, self.consumed, self.micro, self.rank, self.dp = total, consumed, micro, rank, dp
        self.sharding = sharding
        self.block = micro * dp
        self.last_batch_size = total % self.block

    def __iter__(self):
        active_total = self.total - self.last_batch_size
        epoch = self.consumed // active_total
        current = self.consumed % active_total
        assert current % self.block == 0
        g = torch.Generator()
        g.manual_seed(epoch)
        if self.sharding:
            bucket_size = (self.total // self.block) * self.micro
            start = self.rank * bucket_size
            order = torch.randperm(bucket_size, generator=g).tolist()
            idx_range = [start + x for x in order[current // self.dp:]]
        else:
            full = (self.total // self.micro) * self.micro
            order = torch.randperm(full, generator=g).tolist()
            idx_range = order[current:][self.rank::self.dp]
        batch = []
        for idx in idx_range:  # an incomplete last batch is dropped
            batch.append(idx)
            if len(batch) == self.micro:
                self.consumed += self.block
                yield batch
                batch = []


def cyclic_iter(sampler):
    while True:
        for x in sampler:
            yield x


def main():
    args = sys.argv[1:]
    for at in range(0, len(args), 8):
        kind = args[at]
        total, micro, dp, rank, consumed, sharding, steps = (int(a) for a in args[at + 1:at + 8])
        it = single(total, consumed, micro, rank, dp) if kind == "single" else cyclic_iter(
            RandomSampler(total, consumed, micro, rank, dp, bool(sharding)))
        for _ in range(steps):
            print(" ".join(str(i) for i in next(it)))
        print("-")


if __name__ == "__main__":
    main()
