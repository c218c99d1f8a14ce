#!/usr/bin/env python3
"""MaskBench on a folder of its files with the PyPI packages `llguidance` and `xgrammar`,
the peers `upg grammar bench` is compared with (docs/BENCHMARKS.md, "Structured output").

Same vocabulary (the default model's, rebuilt with `tokenizers` by
scripts/fixtures/reference_tokenizer.py), same instances (json.dumps of each test's
data, properties in file order), one thread, MaskBench's counting: a schema passes when
it compiles, every valid instance is accepted and every invalid one rejected; an
instance is accepted when every token and then the end-of-sequence token are accepted,
as `upg grammar bench` does. Mask time per token = mask + accept.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install llguidance==1.9.1 tokenizers gguf numpy \\
        pydantic apache-tvm-ffi && /tmp/peers/bin/pip install --no-deps xgrammar==0.2.9
    (xgrammar's Python package imports torch: add CPU torch to that venv for --engine xgr)
    /tmp/peers/bin/python bench/grammar-peers.py models/SmolLM2-135M-Instruct.Q4_1.gguf \\
        tests/fixtures/maskbench [--engine llg|xgr|both] [--xgr-cache]

Not a test dependency: run by hand. xgrammar runs with any_whitespace=True and
strict_mode=False (JSON Schema's defaults, as `upg grammar bench`); llguidance with its
defaults plus flexible whitespace.
"""
import argparse
import glob
import importlib.util
import json
import math
import os
import sys
import time

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "scripts", "fixtures")
sys.path.insert(0, FIXTURES)
from reference_tokenizer import load_reference_tokenizer  # noqa: E402

EOS = 2  # SmolLM2's <|im_end|>; also what `upg grammar bench` takes (the model's first stop id)


def pct(v, q):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


class Llg:
    name = "llguidance"

    def __init__(self, tok):
        import llguidance
        self.llg = llguidance
        vocab = tok.get_vocab()
        tokens = [b""] * (max(vocab.values()) + 1)
        specials = []
        for text, i in vocab.items():
            if i <= 16:  # SmolLM2's control tokens (reference_tokenizer.py)
                specials.append(i)
                tokens[i] = text.encode()
            else:
                tokens[i] = bytes(BYTE_DECODER[c] for c in text)

        class G:
            eos_token_id = EOS
            bos_token_id = None
            special_token_ids = specials

            def __init__(self):
                self.tokens = tokens

            def __call__(self, s):
                return tok.encode(s.decode("utf-8", "replace") if isinstance(s, bytes) else s,
                                  add_special_tokens=False).ids

        self.tok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(G()))

    def compile(self, schema):
        grm = self.llg.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": True})
        err = self.llg.LLMatcher.validate_grammar(grm, self.tok)
        if err:
            raise ValueError(err)
        self.grm = grm

    def matcher(self):
        import numpy as np
        m = self.llg.LLMatcher(self.tok, self.grm)
        mask = np.zeros(((self.tok.vocab_size + 31) // 32,), dtype=np.int32)
        return m, mask

    def step(self, mm, t):
        m, mask = mm
        m.compute_bitmask()  # MaskBench's llg engine: the mask, then consume
        return m.consume_token(t)

    def finish(self, mm):
        m, _ = mm
        return m.consume_token(EOS) and m.is_accepting() or m.is_stopped()


class Xgr:
    name = "xgrammar"

    def __init__(self, tok, vocab_size, cache=False):
        import xgrammar as xgr
        self.xgr = xgr
        if cache:
            self.name = "xgrammar (cache on)"
        vocab = tok.get_vocab()
        enc = [""] * (max(vocab.values()) + 1)
        for text, i in vocab.items():
            enc[i] = text
        info = xgr.TokenizerInfo(enc, xgr.VocabType.BYTE_LEVEL, vocab_size=vocab_size, stop_token_ids=[EOS])
        # Off by default: each schema's cost alone. --xgr-cache: its Python default, which
        # also reuses token masks of rules earlier schemas had.
        self.compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=cache)
        self.vocab_size = vocab_size

    def compile(self, schema):
        self.cg = self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=True, strict_mode=False)

    def matcher(self):
        import numpy as np
        # A numpy array through DLPack: the wheel's torch dependency is not needed for this.
        return self.xgr.GrammarMatcher(self.cg), np.zeros((1, (self.vocab_size + 31) // 32), dtype=np.int32)

    def step(self, mm, t):
        m, mask = mm
        m.fill_next_token_bitmask(mask, 0)
        return m.accept_token(t)

    def finish(self, mm):
        return mm[0].accept_token(EOS)


def load_fixture_module(name):
    """A dashed script of scripts/fixtures/ as a module (its main() is guarded)."""
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(FIXTURES, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# GPT-2's byte-level text -> bytes, from the table the tokenizer fixtures use.
BYTE_DECODER = {c: b for b, c in load_fixture_module("make-tokenizer-fixtures").bytes_to_unicode().items()}


def run(engine, tok, files, time_limit):
    counts = {k: 0 for k in ("passing", "unsupported", "validation_error", "invalidation_error", "crash", "timeout")}
    compile_ms, mask_us = [], []
    for path in files:
        doc = json.load(open(path))
        if "schema" not in doc:
            continue
        t0 = time.perf_counter()
        try:
            engine.compile(doc["schema"])
        except Exception:  # noqa: BLE001  (a refusal is the engine's answer)
            counts["unsupported"] += 1
            continue
        compile_ms.append((time.perf_counter() - t0) * 1e3)
        outcome = "passing"
        for test in doc["tests"]:
            try:
                mm = engine.matcher()
                ok = True
                for t in tok.encode(json.dumps(test["data"], ensure_ascii=False), add_special_tokens=False).ids:
                    t1 = time.perf_counter()
                    ok = engine.step(mm, t)
                    mask_us.append((time.perf_counter() - t1) * 1e6)
                    if not ok:
                        break
                if ok:
                    ok = engine.finish(mm)
            except Exception:  # noqa: BLE001
                outcome = "crash"
                break
            if ok != test["valid"]:
                outcome = "validation_error" if test["valid"] else "invalidation_error"
                break
            if time.perf_counter() - t0 > time_limit:
                outcome = "timeout"
                break
        counts[outcome] += 1
    n = sum(counts.values())
    return {"engine": engine.name, "schemas": n, **counts,
            "compile_ms": {"p50": pct(compile_ms, .5), "p90": pct(compile_ms, .9), "p99": pct(compile_ms, .99)},
            "mask_us": {"p50": pct(mask_us, .5), "p99": pct(mask_us, .99), "max": pct(mask_us, 1.0)},
            "tokens": len(mask_us)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("dir")
    ap.add_argument("--engine", choices=["llg", "xgr", "both"], default="both")
    ap.add_argument("--time-limit", type=float, default=60)
    ap.add_argument("--xgr-cache", action="store_true", help="xgrammar with its cache on (its Python default)")
    args = ap.parse_args()
    tok = load_reference_tokenizer(args.model)
    files = sorted(glob.glob(os.path.join(args.dir, "*.json")))
    engines = []
    if args.engine in ("llg", "both"):
        engines.append(Llg(tok))
    if args.engine in ("xgr", "both"):
        engines.append(Xgr(tok, 49152, cache=args.xgr_cache))
    for e in engines:
        print(json.dumps(run(e, tok, files, args.time_limit)), flush=True)


if __name__ == "__main__":
    main()
