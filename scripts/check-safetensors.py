#!/usr/bin/env python3
"""Checks that Python's `safetensors` opens files written by upg's SafetensorsWriter.

Run manually (the C++ tests do not need Python):
  UPG_SAFETENSORS_OUT=/tmp/upg-all.safetensors build/test-io --gtest_filter='SafetensorsWriter.RoundTrip*'
  python3 scripts/check-safetensors.py /tmp/upg-all.safetensors

Every file is opened with safe_open (which validates the header, offsets and that the
data exactly fills the file) and listed. Files whose metadata says upg.test=all-dtypes
(written by src/io/safetensors-writer-test.cpp) also have every tensor's bytes compared
with the pattern the test wrote.
"""
import sys

import torch
from safetensors import safe_open

# Same order as all_dtype_entries() in src/io/safetensors-writer-test.cpp.
ALL_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL"]
EXPECTED = [(f"t_{d}", [3, 5]) for d in ALL_DTYPES] + [("scalar_f32", []), ("empty_bf16", [0, 7])]
TORCH_NAME = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64, "BOOL": torch.bool}


def pattern(index, n):
    return bytes((index * 31 + i * 7 + 1) & 0xFF for i in range(n))


def raw_bytes(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def check(path):
    failures = 0
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        names = list(f.keys())
        print(f"{path}: {len(names)} tensors, metadata {meta}")
        for name in names:
            t = f.get_tensor(name)
            print(f"  {name}: {t.dtype} {list(t.shape)}")
        if meta.get("upg.test") == "all-dtypes":
            if sorted(names) != sorted(n for n, _ in EXPECTED):
                print(f"  FAIL: tensor names {sorted(names)}")
                failures += 1
            for i, (name, shape) in enumerate(EXPECTED):
                if name not in names:
                    continue
                t = f.get_tensor(name)
                dtype = name[2:] if name.startswith("t_") else {"scalar_f32": "F32", "empty_bf16": "BF16"}[name]
                want = pattern(i, t.numel() * t.element_size())
                if list(t.shape) != shape or t.dtype != TORCH_NAME[dtype] or raw_bytes(t) != want:
                    print(f"  FAIL: {name} is {t.dtype} {list(t.shape)}, expected {dtype} {shape} with the test pattern")
                    failures += 1
            print(f"  all-dtypes check: {'OK' if failures == 0 else f'{failures} failures'}")
    return failures


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(1 if sum(check(p) for p in sys.argv[1:]) else 0)
