"""Counts the tensor types of a GGUF file from its header (standard library only).

llama-quantize does not give every tensor the type it is asked for: K-quants and IQ4_XS
need rows of a multiple of 256 columns, and where they are not (SmolLM2-135M's hidden
size is 576) it falls back to another type; the _M mixes raise some tensors. From the
default model, the "Q6_K" file is mostly Q8_0, "Q4_K_M" mostly Q5_0, "IQ4_XS" mostly
IQ4_NL and "Q2_K" mostly Q4_0. The peer JSON records what each file really holds, so a
speed or an error can be read against it."""
import struct

# ggml_type ids (ggml.h) to names.
GGML_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
    19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
    27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}
# Fixed sizes of the metadata value types; 8 (string) and 9 (array) are read apart.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class _Reader:
    def __init__(self, f):
        self.f = f

    def take(self, n):
        b = self.f.read(n)
        if len(b) != n:
            raise ValueError("truncated GGUF header")
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        n = self.u64()
        if n > 1 << 20:
            raise ValueError("GGUF string longer than 1 MiB")
        return self.take(n).decode("utf-8", "replace")

    def skip_value(self, vtype):
        if vtype in _FIXED:
            self.f.seek(_FIXED[vtype], 1)
        elif vtype == 8:
            self.f.seek(self.u64(), 1)
        elif vtype == 9:
            inner, n = self.u32(), self.u64()
            if inner in _FIXED:
                self.f.seek(_FIXED[inner] * n, 1)
            else:
                for _ in range(n):
                    self.skip_value(inner)
        else:
            raise ValueError(f"unknown GGUF value type {vtype}")


def _tensors(path):
    """(dims, type name) of every tensor of a GGUF file. Raises ValueError (or OSError)
    for a file that is not GGUF v2 or v3."""
    with open(path, "rb") as f:
        r = _Reader(f)
        if r.take(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        if r.u32() not in (2, 3):
            raise ValueError("unsupported GGUF version")
        n_tensors, n_kv = r.u64(), r.u64()
        for _ in range(n_kv):
            r.string()
            r.skip_value(r.u32())
        out = []
        for _ in range(n_tensors):
            r.string()
            dims = [r.u64() for _ in range(r.u32())]
            name = GGML_TYPES.get(r.u32()) or "unknown"
            r.u64()  # offset
            out.append((dims, name))
    return out


def tensor_types(path):
    """{type name: tensor count} of a GGUF file, most tensors first."""
    counts = {}
    for _, name in _tensors(path):
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def tensor_elements(path):
    """The number of weights of a GGUF file (every tensor's elements)."""
    total = 0
    for dims, _ in _tensors(path):
        n = 1
        for d in dims:
            n *= d
        total += n
    return total
