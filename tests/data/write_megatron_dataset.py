"""Writes a Megatron MMIDIDX .bin/.idx pair with struct and numpy only, following the documented
layout (not Tessera's writer), plus a JSON file with the documents, so the test can check that
Tessera's reader reads data prepared by other tools.

usage: write_megatron_dataset.py PREFIX DTYPE_CODE   (8 = uint16, 4 = int32)
"""
import json
import struct
import sys

import numpy as np

prefix, code = sys.argv[1], int(sys.argv[2])
dtype = {8: np.uint16, 4: np.int32}[code]
high = 65535 if code == 8 else 200000
rng = np.random.RandomState(7)
docs = []  # each document: a list of sequences
for d in range(23):
    docs.append([rng.randint(0, high, size=rng.randint(0, 40)).tolist() for _ in range(rng.randint(1, 4))])

sizes, pointers, doc_idx = [], [], [0]
with open(prefix + ".bin", "wb") as f:
    offset = 0
    for doc in docs:
        for seq in doc:
            arr = np.array(seq, dtype=dtype)
            f.write(arr.tobytes(order="C"))
            sizes.append(len(seq))
            pointers.append(offset)
            offset += arr.nbytes
        doc_idx.append(len(sizes))

with open(prefix + ".idx", "wb") as f:
    f.write(b"MMIDIDX\x00\x00")
    f.write(struct.pack("<Q", 1))
    f.write(struct.pack("<B", code))
    f.write(struct.pack("<Q", len(sizes)))
    f.write(struct.pack("<Q", len(doc_idx)))
    f.write(np.array(sizes, dtype="<i4").tobytes())
    f.write(np.array(pointers, dtype="<i8").tobytes())
    f.write(np.array(doc_idx, dtype="<i8").tobytes())

with open(prefix + ".json", "w") as f:
    json.dump({"docs": docs}, f)
