#!/usr/bin/env python3
"""Writes reproducers of the known crashes that are being fixed (fuzz/README.md, "Known
crashes"), one file per crash, into DIR (default build-fuzz/known-crashes):

  upg-reader-fuzz-deep-entries   a UPG file whose upg.tensors entry has "entries" nested
                                 20,000 arrays deep: load_upg copies the value (a
                                 nlohmann::json copy recurses per level) -> stack overflow
  tokenizer-json-fuzz-deep-sequence
                                 a tokenizer.json with 5,000 nested Sequence
                                 pre-tokenizers: parse_tokenizer_json recurses per level

Run one with its harness, e.g. build-fuzz/upg-reader-fuzz DIR/upg-reader-fuzz-deep-entries.
They are generated rather than committed because they are large (40 KB and 200 KB); once a
crash is fixed, move its reproducer into fuzz/corpus/<harness>/ as a regression input
(at a depth a little above the new limit, to keep it small) and drop it from here.
Standard library only.
"""
import json
import os
import struct
import sys

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
          "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
          "num_key_value_heads": 1, "vocab_size": 3, "max_position_embeddings": 64,
          "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 1}


def safetensors(header: dict) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h


def deep_entries(depth: int = 20000) -> bytes:
    deep = "[" * depth + "]" * depth
    tensors = ('{"w":{"layout":"mdcsr","encoding":"int8","shape":[1,1],"entries":' + deep + "}}")
    meta = {"upg.version": "2", "upg.config": json.dumps(CONFIG), "upg.tensors": tensors}
    return safetensors({"__metadata__": meta})


def deep_sequence(depth: int = 5000) -> bytes:
    pt = '{"type":"ByteLevel","add_prefix_space":false}'
    for _ in range(depth):
        pt = '{"type":"Sequence","pretokenizers":[' + pt + "]}"
    return ('{"model":{"vocab":{"a":0},"merges":[]},"pre_tokenizer":' + pt +
            ',"decoder":{"type":"ByteLevel"}}').encode()


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "build-fuzz/known-crashes"
    os.makedirs(out, exist_ok=True)
    for name, data in (("upg-reader-fuzz-deep-entries", deep_entries()),
                       ("tokenizer-json-fuzz-deep-sequence", deep_sequence())):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(os.path.join(out, name), len(data), "bytes")


if __name__ == "__main__":
    main()
