#!/usr/bin/env python3
"""Checks that `transformers` loads a directory written by `upg decompress`.

Run manually (CI has no torch; the C++ tests check the bytes, this checks the ecosystem):
  UPG_KEEP_DECOMPRESSED=/tmp/upg-dec build/test-cli --gtest_filter='CliUpg.RealModel*'
  python3 scripts/check-decompressed.py /tmp/upg-dec/hf --upg /tmp/upg-dec/smollm2.upg
or on any UPG file:
  build/upg decompress model.upg -o /tmp/model-hf && python3 scripts/check-decompressed.py /tmp/model-hf

Steps, each fatal on failure (exit status 1):
  1. AutoConfig, AutoTokenizer and AutoModelForCausalLM load DIR offline (local files only).
  2. The tokenizer round-trips a sentence and, when a chat template is present, renders one.
  3. A forward pass over a short prompt gives finite logits of shape [1, tokens, vocab];
     the greedy continuation is printed for a human to judge.
  4. With --upg FILE: Python's `safetensors` opens the UPG file itself (it must be a
     valid safetensors container), its metadata says upg.version 2, and every weight in
     DIR is either stored dense in FILE or listed in its upg.tensors.
"""
import argparse
import json
import math
import sys


def fail(msg):
    print(f"check-decompressed: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check_upg(upg_path, model_dir):
    from safetensors import safe_open

    with safe_open(upg_path, framework="numpy") as f:
        meta = f.metadata() or {}
        names = set(f.keys())
    if meta.get("upg.version") != "2":
        fail(f"{upg_path}: upg.version is {meta.get('upg.version')!r}, expected '2'")
    for key in ("upg.config", "upg.compression", "upg.tensors"):
        try:
            json.loads(meta[key])
        except (KeyError, ValueError) as e:
            fail(f"{upg_path}: metadata {key} is missing or not JSON ({e})")
    compressed = json.loads(meta["upg.tensors"])
    with safe_open(f"{model_dir}/model.safetensors", framework="numpy") as f:
        dense_names = set(f.keys())
    for name in dense_names:
        if name not in names and name not in compressed and f"{name}.qweight" not in names:
            fail(f"{model_dir}: weight {name} is neither dense nor compressed in {upg_path}")
    print(f"safetensors opens {upg_path}: {len(names)} tensors, {len(compressed)} compressed weights")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="directory written by `upg decompress`")
    ap.add_argument("--upg", help="the UPG file DIR came from (also checked with Python's safetensors)")
    ap.add_argument("--prompt", default="The capital of France is")
    ap.add_argument("--new-tokens", type=int, default=12)
    args = ap.parse_args()

    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        fail(f"needs torch and transformers: {e}")

    if args.upg:
        check_upg(args.upg, args.dir)

    try:
        config = AutoConfig.from_pretrained(args.dir, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(args.dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(args.dir, local_files_only=True, dtype=torch.float32)
    except Exception as e:  # any loader error is the failure being checked for
        fail(f"{args.dir}: transformers cannot load it: {type(e).__name__}: {e}")
    model.eval()
    print(f"loaded {type(model).__name__} ({config.num_hidden_layers} layers, vocab {config.vocab_size})")

    text = "Hello world, 12345 tokens!"
    ids = tok(text)["input_ids"]
    if tok.decode(ids, skip_special_tokens=True) != text:
        fail(f"tokenizer does not round-trip {text!r}: {ids} -> {tok.decode(ids)!r}")
    if tok.chat_template:
        tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)

    enc = tok(args.prompt, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    n = enc["input_ids"].shape[1]
    if tuple(logits.shape) != (1, n, config.vocab_size):
        fail(f"logits have shape {tuple(logits.shape)}, expected (1, {n}, {config.vocab_size})")
    if not torch.isfinite(logits).all():
        fail("logits are not all finite")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=args.new_tokens, do_sample=False)
    cont = tok.decode(out[0, n:], skip_special_tokens=True)
    top = logits[0, -1].float().softmax(-1).max().item()
    print(f"forward ok: {n} prompt tokens, top next-token probability {top:.3f}")
    print(f"greedy: {args.prompt!r} -> {cont!r}")
    if math.isnan(top):
        fail("softmax is NaN")
    print("check-decompressed: OK")


if __name__ == "__main__":
    main()
