#!/usr/bin/env python3
"""The default model as a compressed-tensors checkpoint, written by the PyPI package (what
llm-compressor does, with min/max round to nearest instead of GPTQ), to measure UPG on
a real-size checkpoint of that format (docs/BENCHMARKS.md, "compressed-tensors").

    python3 scripts/make-compressed-tensors-model.py SCHEME OUT_DIR [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]

SCHEME: w4a16-g64 (pack-quantized int4, groups of 64, symmetric), w4a16-g32-asym
(groups of 32 with zero points), w8a8 (int-quantized int8 per channel, dynamic per-token
activations) or sparse24-w8 (2:4 magnitude pruning, int8, sparse-24-bitmask). The
GGUF is dequantized by transformers (bf16), every linear layer but lm_head (tied to the
embedding) is quantized, and the tokenizer is saved beside it. Needs torch, transformers,
gguf, accelerate and compressed-tensors==0.14.0.1 (see scripts/fixtures/README.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.config import Sparse24BitMaskConfig
from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from ct_schemes import DYNAMIC_TOKENS, calibrate, group, linears, prune, weights  # noqa: E402

SCHEMES = {
    "w4a16-g64": dict(groups={"group_0": group(["Linear"], weights(4, True, "group", 64), "pack-quantized")}),
    "w4a16-g32-asym": dict(groups={"group_0": group(["Linear"], weights(4, False, "group", 32), "pack-quantized")}),
    "w8a8": dict(groups={"group_0": group(["Linear"], weights(8, True, "channel"), "int-quantized", DYNAMIC_TOKENS)}),
    "sparse24-w8": dict(groups={"group_0": group(["Linear"], weights(8, True, "channel"), "int-quantized")},
                        prune="2:4"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scheme", choices=sorted(SCHEMES))
    ap.add_argument("out")
    ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    a = ap.parse_args()
    spec = SCHEMES[a.scheme]
    gguf = Path(a.gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if "prune" in spec:
        prune(model, spec["prune"])
    fmt = spec["groups"]["group_0"]["format"]
    q = QuantizationConfig.model_validate({"config_groups": spec["groups"], "format": fmt, "ignore": ["lm_head"],
                                           "quantization_status": "frozen"})
    apply_quantization_config(model, q)
    calibrate(model)
    sparse = Sparse24BitMaskConfig(targets=["Linear"], ignore=["lm_head"]) if "prune" in spec else None
    compressor = ModelCompressor(quantization_config=q, sparsity_config=sparse)
    state = compressor.compress(model)
    state.pop("lm_head.weight", None)  # tied to the embedding
    model.hf_quantizer = None  # the GGUF loader's: transformers refuses to save through it
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(a.out, state_dict=state)
    compressor.update_config(a.out)
    tok.save_pretrained(a.out)
    print(f"wrote {a.out} ({a.scheme})")


if __name__ == "__main__":
    main()
