#!/usr/bin/env python3
"""Measures the quality cost of compression and writes docs/QUALITY.md.

For the default model (SmolLM2-135M-Instruct, GGUF Q4_1) it measures the perplexity of
the dense model and of UPG files compressed at several sparsities, patterns, pruning
methods, calibration texts and value encodings, on two evaluation texts (held-out chat
transcripts and the KJV slice), with the file size of each and greedy answers of some.

    python3 scripts/quality.py [--max-tokens 2048] [--ctx 512] [--out docs/QUALITY.md] [--only REGEX]
                               [--reuse DIR]

--only REGEX measures only the configurations whose label matches and keeps the other
rows (numbers, answers and the date each was measured) from the existing --out file, so a
change to one method need not re-measure the rest; rows without a previous measurement
are measured anyway.

--reuse DIR takes a row's file from DIR/<label>.upg, with the output of the `upg compress`
that made it (the row's flags, same source) in DIR/<label>.log, instead of compressing
again: for files compressed beside other work, or in parallel.

Needs build/upg (scripts/build.sh release) and the model (scripts/fetch-model.sh).
Evaluation texts: tests/fixtures/eval/chat-heldout.txt and kjv-slice.txt (King James
Bible, public domain); calibration: tests/fixtures/calibration-chat.txt (default) and
tests/fixtures/calibration.txt (hand-written prose). About 80 minutes on 2 cores (each
SparseGPT file takes about 6 minutes to compress).
"""
import argparse
import csv
import importlib.util
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPG = os.environ.get("UPG_BIN", os.path.join(ROOT, "build", "upg"))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
EVAL = os.path.join(ROOT, "tests", "fixtures", "eval", "kjv-slice.txt")
CHAT = os.path.join(ROOT, "tests", "fixtures", "eval", "chat-heldout.txt")
PEER_MODELS = os.path.join(os.environ.get("UPG_PEER_CACHE", os.path.expanduser("~/.cache/upg-peer")), "models",
                           "SmolLM2-135M-Instruct")
_spec = importlib.util.spec_from_file_location("gguf_types", os.path.join(ROOT, "bench", "peer", "gguf-types.py"))
GGUF_TYPES = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(GGUF_TYPES)
STORY = ["--calib", "tests/fixtures/calibration.txt"]
# The evaluator against llama.cpp's (issue 28: one point cross-checked), measured by hand
# once; the figures are this paragraph's, not re-measured by this script.
CROSS_CHECK = (
    "**Cross-check against llama.cpp's evaluator** (2026-12-07, Zen 4 VM, quiet): llama.cpp's "
    "`llama-perplexity -m Q4_0.gguf -f tests/fixtures/eval/kjv-slice.txt -c 512` (peer harness build) scores "
    "only the second half of each whole 512-token window; `upg perplexity Q4_0.gguf --text "
    "tests/fixtures/eval/kjv-slice.txt --ctx 512 --score-second-half` scores the same 10,200 tokens of the same 40 "
    "windows. llama.cpp: PPL 14.4482 +/- 0.3498; UPG on its integer kernels (int8 activations, as llama.cpp's "
    "CPU Q4_0 path): 14.4414 (0.05% lower); UPG with the weights dequantized to F32 (`--dtype f32`, fp32 "
    "activations): 14.4064. These runs take the whole slice (20,480 tokens); the table below takes its "
    "first 2,048 and scores every token but a window's first, so its KJV figures are not these.")

# The GGUF quants the frontier should show (issue 28); the table names those still missing.
GGUF_WANTED = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS"]

# (label, compress flags, show sample answers); None = the dense model itself. Without
# --calib, Wanda and SparseGPT calibrate on the default, tests/fixtures/calibration-chat.txt.
CONFIGS = [
    ("dense (GGUF Q4_1 dequantized to F32)", None, True),
] + [
    (f"unstructured {s} {p} int8", ["--sparsity", str(s), "--pattern", "unstructured", "--prune", p, "--values", "int8"],
     s == 0.5 and p != "magnitude")
    for s in (0.3, 0.5, 0.7) for p in ("magnitude", "wanda", "sparsegpt")
] + [
    (f"{pat} {p} int8", ["--pattern", pat, "--prune", p, "--values", "int8"], pat == "2:4" and p != "magnitude")
    for pat in ("2:4", "4:8") for p in ("magnitude", "wanda", "sparsegpt")
] + [
    (f"unstructured 0.5 {p} int8, story calibration",
     ["--sparsity", "0.5", "--pattern", "unstructured", "--prune", p, "--values", "int8"] + STORY, False)
    for p in ("wanda", "sparsegpt")
] + [
    (f"unstructured 0.5 sparsegpt {v}",
     ["--sparsity", "0.5", "--pattern", "unstructured", "--prune", "sparsegpt", "--values", v], False)
    for v in ("prime:127", "prime:10000", "codebook:256")
] + [
    # int4 (docs/FORMAT.md 4.3), plain round-to-nearest with a clipping search: dense
    # (nothing pruned) with scale groups of 32, 64 and 128 columns, and 2:4.
    # The embedding (and tied LM head, a fifth of the weights) as dense int8: kept in its
    # source's F16 it alone would take 0.42 bytes per weight of the whole model.
    (f"dense int4 g{g}{' zero points' if z else ''}, int8 embedding",
     ["--values", "int4", "--group-size", str(g), "--dense-int8-embeddings"] + (["--zero-point"] if z else []),
     g == 32 and not z)
    for g, z in ((32, False), (64, False), (128, False), (32, True), (64, True), (128, True))
] + [
    (f"2:4 {p} int4 g64, int8 embedding",
     ["--pattern", "2:4", "--prune", p, "--values", "int4", "--group-size", "64", "--dense-int8-embeddings"], False)
    for p in ("wanda",)
] + [
    # GGUF files of the same model from the peer harness (bench/peer/peer-bench.py: llama-quantize
    # from an F32 export of the Q4_1 source), measured by the same evaluator.
    (f"GGUF {t} (llama-quantize)", {"gguf": t}, False) for t in ("Q4_0", "Q8_0", "Q3_K_M", "Q6_K", "Q5_K_M", "Q4_K_M", "Q2_K", "IQ4_XS")
] + [
    ("dense int8", ["--dense-int8"], False),
] + [
    # Rounding without and with GPTQ's error compensation, dense and with SparseGPT's 50%,
    # on the calibration text's first 8192 tokens (a quarter of the time).
    (f"{label}, 8k calibration tokens", flags + ["--calib-tokens", "8192"], False)
    for label, flags in (
        ("unstructured 0.5 sparsegpt int8",
         ["--sparsity", "0.5", "--pattern", "unstructured", "--prune", "sparsegpt", "--values", "int8"]),
        ("dense gptq int8", ["--dense-int8", "--gptq"]),
        ("unstructured 0.5 sparsegpt+gptq int8",
         ["--sparsity", "0.5", "--pattern", "unstructured", "--prune", "sparsegpt", "--values", "int8", "--gptq"]))
] + [
    # The embedding (and tied LM head) as int4 g32 with zero points (`--embeddings int4`,
    # the default with --values int4): what it costs against int8, rounded to nearest.
    ("dense int4 g32 zero points, int4 embedding",
     ["--values", "int4", "--group-size", "32", "--zero-point", "--embeddings", "int4"], False),
] + [
    # int4 through GPTQ (activation order, zero points), 8k calibration tokens; "int4
    # embedding gptq" also rounds the tied LM head with GPTQ (--gptq-head).
    (f"{label}, 8k calibration tokens", flags + ["--gptq", "--calib-tokens", "8192"], False)
    for label, flags in [
        (f"dense gptq int4 g{g}{' zero points' if z else ''} act-order, {e} embedding{' gptq' if h else ''}",
         ["--values", "int4", "--group-size", str(g)] + (["--zero-point"] if z else []) +
         ["--act-order", "--embeddings", e] + (["--gptq-head"] if h else []))
        for g, z, e, h in ((32, True, "int8", False), (64, True, "int4", False), (64, True, "int4", True),
                           (128, True, "int4", False), (32, False, "int4", False))
    ] + [
        ("2:4 sparsegpt+gptq int4 g64 zero points, int4 embedding",
         ["--pattern", "2:4", "--prune", "sparsegpt", "--values", "int4", "--group-size", "64", "--zero-point",
          "--embeddings", "int4"]),
    ] + [
        # --target-bpw: each linear's and the embedding's storage chosen by measured error
        # to fit the budget (docs/COMPRESSION.md), the choice rounded by GPTQ.
        (f"mixed precision for {b} bytes per weight, gptq act-order",
         ["--target-bpw", b, "--act-order"]) for b in ("0.60", "0.55", "0.50")
    ] + [
        # int3 values (docs/FORMAT.md 4.3, bit planes) through GPTQ with activation order,
        # the embedding as int3 or int4 (groups of 32 with zero points).
        (f"dense gptq int3 g{g} zero points act-order, {e} embedding{' gptq' if h else ''}",
         ["--values", "int3", "--group-size", str(g), "--zero-point", "--act-order", "--embeddings", e] +
         (["--gptq-head"] if h else []))
        for g, e, h in ((32, "int3", False), (32, "int4", False), (64, "int3", False), (64, "int4", False),
                        (64, "int3", True))
    ] + [
        # Budgets below 4 bits a weight: the ladder's int3 and int2 settings come in.
        (f"mixed precision for {b} bytes per weight, gptq act-order",
         ["--target-bpw", b, "--act-order"]) for b in ("0.45", "0.40")
    ]
] + [
    # The same budget rounded to nearest and chosen by weight error (nothing calibrated).
    ("mixed precision for 0.60 bytes per weight, round to nearest, weight error",
     ["--target-bpw", "0.60", "--prune", "magnitude"], False),
] + [
    # What `upg compress MODEL -o FILE` writes with no flags (src/cli/cmd-compress.cpp).
    ("the default: dense gptq int4 g64 zero points act-order, int4 embedding, 6k calibration tokens", [], True),
]

# Held out from calibration; answered greedily by the configurations marked above.
SAMPLE_PROMPTS = [
    "What is the capital of France? Answer in one sentence.",
    "Name three animals that live in the ocean.",
    "How do I boil an egg?",
]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"quality: {' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return p.stdout + p.stderr


def perplexity(model, text, args, special=False):
    out = run([UPG, "perplexity", model, "--text", text, "--ctx", str(args.ctx), "--max-tokens",
               str(args.max_tokens), "--dtype", "f32"] + (["--parse-special"] if special else []))
    m = re.search(r"perplexity: ([0-9.]+)", out)
    if not m:
        sys.exit(f"quality: no perplexity in output:\n{out[-1000:]}")
    return float(m.group(1))


def answers(model):
    out = []
    for prompt in SAMPLE_PROMPTS:
        p = subprocess.run([UPG, "run", model, "-p", prompt, "--temp", "0", "-n", "48"], capture_output=True,
                           text=True, cwd=ROOT)
        if p.returncode != 0:
            sys.exit(f"quality: upg run failed:\n{p.stderr[-2000:]}")
        out.append(" ".join(p.stdout.split()))
    return out


def previous_rows(path):
    """The rows of an existing QUALITY.md by label: numbers, answers and measurement date."""
    if not os.path.exists(path):
        return {}
    text = open(path).read()
    m = re.search(r"\) on (\d{4}-\d\d-\d\d),", text)
    default_date = m.group(1) if m else None
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 9 or cells[0] in ("configuration", "---"):
            continue
        try:
            num = lambda c: None if c in ("-", "") or c.startswith("Q4_1") else float(c.rstrip("x"))
            rows[cells[0]] = {"label": cells[0], "bpw": num(cells[2]), "ratio": num(cells[3]), "err": num(cells[4]),
                              "chat": float(cells[5]), "kjv": float(cells[7]), "answers": None,
                              "date": cells[9] if len(cells) > 9 else default_date}
        except ValueError:
            continue
    current = None
    for line in text.splitlines():
        a = re.match(r"\*\*(.+?)\*\*", line)
        if a:
            current = rows.get(a.group(1))
            if current is not None:
                current["answers"] = []
        elif current is not None and line.startswith("- *"):
            current["answers"].append(line.split("* ", 1)[1] if "* " in line[3:] else "")
        elif line.startswith("## Findings"):
            break
    return rows


def findings(rows):
    """What the table says, computed from it so the text cannot drift from the numbers."""
    kjv = {r["label"]: r["kjv"] for r in rows}
    chat = {r["label"]: r["chat"] for r in rows}
    dense = rows[0]
    out = ["", "## Findings", ""]
    for a, b in (("wanda", "magnitude"), ("sparsegpt", "wanda")):
        pairs = [(k.replace(f" {b} ", f" {a} "), k) for k in chat if f" {b} " in k and "calibration" not in k]
        pairs = [(x, y) for x, y in pairs if x in chat]
        wins = [(x, y) for x, y in pairs if chat[x] < chat[y]]
        out.append(f"- {a} beats {b} on the chat transcripts in {len(wins)} of {len(pairs)} comparisons: " +
                   "; ".join(f"{x.replace(' ' + a, '')}: {chat[x]:.2f} against {chat[y]:.2f}" for x, y in pairs) +
                   ".")
    for p in ("wanda", "sparsegpt"):
        chat_cal, story_cal = f"unstructured 0.5 {p} int8", f"unstructured 0.5 {p} int8, story calibration"
        if chat_cal in chat and story_cal in chat:
            out.append(f"- Calibration text, {p} at 0.5: the chat transcripts give chat perplexity "
                       f"{chat[chat_cal]:.2f} and KJV {kjv[chat_cal]:.2f}; the hand-written story gives "
                       f"{chat[story_cal]:.2f} and {kjv[story_cal]:.2f}.")
    good = [k for k in chat if k != dense["label"] and chat[k] <= 2.0 * dense["chat"]]
    out.append(f"- Within 2x of the dense chat perplexity ({dense['chat']:.2f}): " + (", ".join(good) or "none") +
               ". A 135M-parameter model has little redundancy: published results on 7B+ models lose far less "
               "at the same sparsity.")
    enc = [k for k in chat if "prime" in k or "codebook" in k]
    base = "unstructured 0.5 sparsegpt int8"
    if base in chat and enc:
        out.append(f"- Value encodings at 0.5 SparseGPT (chat perplexity): int8 {chat[base]:.2f}, " +
                   ", ".join(f"{k.split()[-1]} {chat[k]:.2f}" for k in enc) +
                   ": the encodings store 2 bytes per kept weight (uint16 indices) against 1 for int8, so int8 "
                   "stays the default.")
    int4 = [r for r in rows if " int4 " in r["label"] + " " and " int3 " not in r["label"]]
    q40 = next((r for r in rows if r["label"].startswith("GGUF Q4_0")), None)
    if int4 and q40:
        better = [r for r in int4 if r["bpw"] and r["bpw"] <= q40["bpw"] and r["chat"] <= q40["chat"]]
        smallest = min(better, key=lambda r: r["bpw"]) if better else None
        out.append(f"- int4 against GGUF Q4_0 ({q40['bpw']} bytes/weight, chat {q40['chat']:.2f}): " +
                   "; ".join(f"{r['label']} {r['bpw']} bytes/weight, chat {r['chat']:.2f}" for r in int4) +
                   ". Smaller and better than Q4_0: " + (", ".join(r["label"] for r in better) or "none") +
                   (f"; the smallest of them: {smallest['label']} at {smallest['bpw']} bytes/weight "
                    f"({smallest['bpw'] / q40['bpw']:.2f}x Q4_0's size), chat {smallest['chat']:.2f}, but KJV "
                    f"{smallest['kjv']:.2f} against Q4_0's {q40['kjv']:.2f}"
                    if smallest else "") +
                   ". Rows without gptq are round-to-nearest with a clipping search; gptq rows round with GPTQ's "
                   "error compensation. The embedding and tied LM head (28M of the 135M weights) are per-row "
                   "int8 in the int8 embedding rows (as Q4_0 keeps them at Q8_0) and int4 g32 with zero points "
                   "in the int4 embedding rows: at int8 they alone take 0.21 bytes per weight of the whole "
                   "model, so no dense int4 file with them goes below 0.63. Zero points matter here because the "
                   "source's own grid (Q4_1) is asymmetric.")
        e8, e4 = "dense int4 g32 zero points, int8 embedding", "dense int4 g32 zero points, int4 embedding"
        if e8 in chat and e4 in chat:
            behind = [k for k in kjv if "int4 embedding" in k and " int3 " not in k and kjv[k] > q40["kjv"]]
            total = [k for k in kjv if "int4 embedding" in k and " int3 " not in k]
            out.append(f"- The embedding at int4 (round-to-nearest, g32 zero points): chat {chat[e8]:.2f} with it "
                       f"at int8, {chat[e4]:.2f} at int4; KJV {kjv[e8]:.2f} and {kjv[e4]:.2f}. On KJV, text "
                       f"unlike the calibration, {len(behind)} of the {len(total)} files with an int4 embedding "
                       f"stay behind Q4_0 ({q40['kjv']:.2f}).")
    k8 = ", 8k calibration tokens"
    gq = [("dense int8", "dense gptq int8" + k8),
          ("unstructured 0.5 sparsegpt int8" + k8, "unstructured 0.5 sparsegpt+gptq int8" + k8),
          ("dense int4 g32 zero points, int8 embedding",
           "dense gptq int4 g32 zero points act-order, int8 embedding" + k8)]
    gq = [(a, b) for a, b in gq if a in chat and b in chat]
    if gq:
        out.append("- GPTQ (values rounded with error compensation, chat and KJV perplexity): " +
                   "; ".join(f"{a} {chat[a]:.2f} and {kjv[a]:.2f}, with GPTQ {chat[b]:.2f} and {kjv[b]:.2f}"
                             for a, b in gq) + ".")
    head = ("dense gptq int4 g64 zero points act-order, int4 embedding" + k8,
            "dense gptq int4 g64 zero points act-order, int4 embedding gptq" + k8)
    if all(h in chat for h in head):
        out.append(f"- The tied LM head through GPTQ too (`--gptq-head`), int4 g64: chat {chat[head[0]]:.2f} "
                   f"without, {chat[head[1]]:.2f} with; KJV {kjv[head[0]]:.2f} without, {kjv[head[1]]:.2f} "
                   "with: it fits the logits to the calibration text, and the same matrix is the input "
                   "embedding, so it stays off by default.")
    i3 = {g: {e: f"dense gptq int3 g{g} zero points act-order, {e} embedding" + k8 for e in ("int3", "int4")}
          for g in (32, 64)}
    if all(v in chat for d in i3.values() for v in d.values()):
        g32, g64 = i3[32], i3[64]
        out.append(f"- int3 through GPTQ (act-order, zero points): the embedding decides more than the groups. "
                   f"With an int3 embedding chat {chat[g32['int3']]:.2f} (g32) and {chat[g64['int3']]:.2f} (g64); "
                   f"with an int4 one {chat[g32['int4']]:.2f} and {chat[g64['int4']]:.2f} (KJV "
                   f"{kjv[g32['int3']]:.2f}, {kjv[g64['int3']]:.2f}, {kjv[g32['int4']]:.2f}, "
                   f"{kjv[g64['int4']]:.2f}); the same g64 linears at int4 with an int4 embedding score chat "
                   f"{chat.get('dense gptq int4 g64 zero points act-order, int4 embedding' + k8, float('nan')):.2f}, "
                   "so the linears' fourth bit is worth less than the embedding's; `--gptq-head` "
                   + (f"brings the int3 g64 file to {chat[g64['int3'] .replace(' embedding', ' embedding gptq')]:.2f}"
                      if g64["int3"].replace(" embedding", " embedding gptq") in chat else "is the cheap lever") +
                   " at the same size.")
    mixed = [r for r in rows if r["label"].startswith("mixed precision") and r["bpw"]]
    uniform = [r for r in rows if isinstance(r["flags"], list) and not r["label"].startswith("mixed precision")
               and r["bpw"]]
    if mixed and q40:
        parts = []
        for r in mixed:
            rivals = [u for u in uniform if u["bpw"] <= r["bpw"]]
            best = min(rivals, key=lambda u: u["chat"]) if rivals else None
            parts.append(f"{r['label']}: {r['bpw']} bytes/weight, chat {r['chat']:.2f}, KJV {r['kjv']:.2f}" +
                         (f" (the best uniform UPG file no larger on chat: {best['label']}, {best['bpw']}, chat "
                          f"{best['chat']:.2f}, KJV {best['kjv']:.2f})" if best else ""))
        out.append("- Mixed precision (`--target-bpw`, docs/COMPRESSION.md), against GGUF Q4_0 at "
                   f"{q40['bpw']} bytes/weight, chat {q40['chat']:.2f}, KJV {q40['kjv']:.2f}: " + "; ".join(parts) +
                   ".")
    out += ["", "Defaults of `upg compress`, from these numbers: with no flag choosing values, pattern, sparsity, "
            "pruning or GPTQ, the file is dense int4 in groups of 64 with zero points through GPTQ in activation "
            "order, the embedding int4, calibrated on the first 6,144 tokens of "
            "`tests/fixtures/calibration-chat.txt` (the default row): smaller than every SparseGPT int8 file and "
            "than GGUF Q4_0, closer to the source on both texts than any of them, and within issue 28's 60 s on 2 "
            "cores (docs/COMPRESSION.md, Cost). `--gptq-head` stays off (below). 6,144 tokens instead of the 8k of "
            "the other GPTQ rows: the same file at 8,192 tokens took about 124 CPU-seconds on the 2-core EPYC VM "
            "(2026-12-07, busy), over the 120 of the target, and scored within this method's rounding noise of it. "
            "When pruning (`--prune`, `--pattern`, `--sparsity` or `--values int8`): `--prune sparsegpt` "
            "calibrated on `tests/fixtures/calibration-chat.txt` (the chat transcripts measure what users of an "
            "instruct model see; SparseGPT fits its calibration text closely, so a text unlike the use lowers its "
            "quality, as the story rows show), `--values int8` (smallest at equal quality), `--quant clip` "
            "(per-row clipping search; it lowers the squared error slightly against absmax and never raises it), "
            "`--sparsity 0.5` unstructured on the whole calibration text (the default file before 2026-12-07)."]
    return out



def targets(rows, speeds):
    """Issue 28's targets against the table and the decode column: which are met, which
    are missed and why, computed from the rows so the text cannot drift from them."""
    by = {r["label"]: r for r in rows}
    q40 = next((r for r in rows if r["label"].startswith("GGUF Q4_0")), None)
    q3 = next((r for r in rows if r["label"].startswith("GGUF Q3_K_M")), None)
    upg = [r for r in rows if isinstance(r["flags"], list) and r["bpw"]]
    if not (q40 and q3 and upg):
        return []
    out = ["", "## Issue 28's targets", ""]
    small = [r for r in upg if r["bpw"] <= 0.60 and r["chat"] <= q40["chat"]]
    best = min(small, key=lambda r: r["chat"]) if small else None
    out.append(f"- At most 0.60 bytes/weight with chat perplexity at or below GGUF Q4_0's ({q40['chat']:.2f}): " +
               (f"met by {len(small)} files; the best, {best['label']}, {best['bpw']} bytes/weight, chat "
                f"{best['chat']:.2f}. On KJV, text unlike the calibration, it scores {best['kjv']:.2f} against "
                f"Q4_0's {q40['kjv']:.2f}" + (", so there it is not better" if best["kjv"] > q40["kjv"] else "") + "."
                if best else "missed."))
    tiny = [r for r in upg if r["bpw"] <= 0.45]
    smallest = min(upg, key=lambda r: r["bpw"])
    beats = [r for r in tiny if r["chat"] < q3["chat"]]
    best_tiny = min(tiny, key=lambda r: r["chat"]) if tiny else None
    out.append(f"- At most 0.45 bytes/weight and better than GGUF Q3_K_M (chat {q3['chat']:.2f} at "
               f"{q3['bpw']} bytes/weight): " +
               ("met by " + ", ".join(r["label"] for r in beats) + "." if beats else
                f"missed. The best file that small, {best_tiny['label']}, takes {best_tiny['bpw']} bytes/weight "
                f"and scores chat {best_tiny['chat']:.2f} ({best_tiny['chat'] / q3['chat']:.2f}x Q3_K_M's) and KJV "
                f"{best_tiny['kjv']:.2f} (Q3_K_M {q3['kjv']:.2f}). 3-bit values through GPTQ lose far less than "
                f"2:4 pruning did, but that file keeps {8 * best_tiny['bpw']:.1f} bits a weight on average, "
                f"embedding and tokenizer included, where Q3_K_M keeps {8 * q3['bpw']:.1f} (its embedding and many "
                "tensors at 4 to 6 bits): for a 135M model the 0.45 budget is below what 3-bit values need to "
                "reach Q3_K_M." if best_tiny else
                f"missed. No UPG file is that small: the smallest, {smallest['label']}, takes {smallest['bpw']} "
                f"bytes/weight and scores chat {smallest['chat']:.2f}."))
    timed = lambda r: speeds.get(r["label"], {})
    lq40 = timed(q40).get("llama_decode_tok_s")
    int4 = [(r, float(timed(r)["decode_tok_s"])) for r in upg if " int4 " in r["label"] + " " and
            "2:4" not in r["label"] and timed(r).get("decode_tok_s")]
    nm4 = [(r, float(timed(r)["decode_tok_s"])) for r in upg if "2:4" in r["label"] and " int4 " in r["label"] + " "
           and timed(r).get("decode_tok_s")]
    if lq40 and int4:
        lo, hi = min(int4, key=lambda x: x[1]), max(int4, key=lambda x: x[1])
        ratios = (lo[1] / float(lq40), hi[1] / float(lq40))
        out.append(f"- int4 files decoding at least 1.3x llama.cpp on Q4_0 in the same run: llama.cpp decoded "
                   f"Q4_0 at {lq40} tok/s, the dense int4 files at {lo[1]:.1f} to {hi[1]:.1f} "
                   f"({ratios[0]:.2f}x to {ratios[1]:.2f}x): " +
                   ("met." if ratios[0] >= 1.3 else "met by some." if ratios[1] >= 1.3 else "missed.") +
                   " These figures come from a shared machine (the paragraph above the table), and under "
                   "load llama.cpp's threads, which spin while they wait, lose far more than UPG's (BENCHMARKS.md, "
                   "UPG int4): only a run on a quiet machine settles this target. The quiet run there (2026-12-07, "
                   "load 0.04) had the dense int4 g128 file with zero points at 1.47x llama.cpp's Q4_0: met.")
    if int4 and nm4:
        dense_best = max(x[1] for x in int4)
        nm_best = max(nm4, key=lambda x: x[1])
        out.append(f"- The 2:4 int4 file faster than the dense int4 one: {nm_best[0]['label']} decoded at "
                   f"{nm_best[1]:.1f} tok/s against {dense_best:.1f} for the fastest dense int4 file: " +
                   ("met" if nm_best[1] > dense_best else "missed") + " in this run, on the same shared machine. "
                   "Its kernel alone, interleaved with dense int4 over a 5120 x 5120 matrix, is 1.21x faster "
                   "(BENCHMARKS.md, UPG int4); end to end, a 135M model's step also waits on attention, norms and "
                   "the thread pool, which the two files share. The quiet run (BENCHMARKS.md, UPG int4) had the 2:4 "
                   "int4 file 7% slower than the dense int4 one: missed.")
    out.append("- The compressor within 60 s on 2 cores (120 CPU-seconds): met by the default file (the default "
               "row: dense GPTQ int4 g64, 6,144 calibration tokens), 99.8 CPU-seconds on a busy 2-core EPYC VM "
               "(2026-12-07; 54.8 s wall with the VM to itself), and by round to nearest, which "
               "calibrates nothing (39 s wall, 15 CPU-seconds on the shared Zen 4 VM); missed by SparseGPT on the "
               "whole calibration text (534 CPU-seconds on the EPYC VM) and by GPTQ at 8k tokens (124 there without "
               "the head). BENCHMARKS.md, compression speed, has the runs.")
    return out


def speed_paragraph(speeds):
    """The decode speed plot and what the table's last column means, once measured."""
    stamps = sorted({v["speed_measured"] for v in speeds.values() if v["speed_measured"]})
    if not stamps:
        return []
    return [
        "![Bytes per weight against decode tokens per second, UPG files and GGUF quants](frontier-speed.svg)",
        "",
        "Decode speed (`scripts/frontier-speed.py`, the last column and the plot above): the peer harness "
        "(`bench/peer/peer-bench.py`) times every file in one run, interleaved, `upg bench` on each and llama.cpp's "
        "`llama-bench` on the GGUF ones, 128 prompt and 128 generated tokens, 2 threads, medians of 3; the column "
        "gives the generated tokens per second. Measured " + "; ".join(stamps) + ": the machine was shared with "
        "other work, so the absolute figures are indicative and the ratios within the run are what count; at a "
        "load near 10 on 2 cores, repetitions of one file differ by up to 2x (UPG) and 7x (llama.cpp), whose "
        "spinning threads lose far more than UPG's, so even the ratios rank the files only roughly. A "
        "figure marked * was timed on the file of the same form made with magnitude pruning and round-to-nearest "
        "(the row's other flags choose values, not forms, and speed depends on the forms only; the CSV's "
        "speed_flags column names that file's flags).",
        "",
    ]


def missing_gguf_note(rows):
    """Which GGUF quants of issue 28's list the table lacks (bench/peer/peer-bench.py makes them)."""
    missing = [t for t in GGUF_WANTED if not any(isinstance(r["flags"], dict) and r["flags"]["gguf"] == t for r in rows)]
    if not missing:
        return "Every GGUF quant of issue 28's list (" + ", ".join(GGUF_WANTED) + ") is measured and drawn."
    return ("GGUF quants of issue 28's list not measured yet, so not drawn: " + ", ".join(missing) +
            " (`bench/peer/peer-bench.py --types T` makes them).")

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tokens", type=int, default=2048)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "QUALITY.md"))
    ap.add_argument("--only", help="measure only the configurations whose label matches; keep the other rows")
    ap.add_argument("--reuse", help="a folder of <label>.upg files (and <label>.log, their compress output)")
    args = ap.parse_args()
    before = previous_rows(args.out) if args.only else {}
    for p in (UPG, MODEL, EVAL, CHAT):
        if not os.path.exists(p):
            sys.exit(f"quality: {p} is missing (scripts/build.sh release; scripts/fetch-model.sh)")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, flags, sample in CONFIGS:
            old = before.get(label)
            if args.only and not re.search(args.only, label) and old and (old["answers"] or not sample):
                rows.append(dict(old, flags=flags))
                continue
            t0 = time.time()
            r = {"label": label, "flags": flags, "bpw": None, "ratio": None, "err": None,
                 "date": str(datetime.date.today())}
            if flags is None:
                model = MODEL
            elif isinstance(flags, dict):
                model = os.path.join(PEER_MODELS, f"SmolLM2-135M-Instruct.{flags['gguf']}.gguf")
                if not os.path.exists(model):
                    sys.exit(f"quality: {model} is missing (bench/peer/peer-bench.py --types {flags['gguf']} makes it)")
                r["bpw"] = round(os.path.getsize(model) / GGUF_TYPES.tensor_elements(MODEL), 3)
            else:
                reused = os.path.join(args.reuse or "", label)
                if args.reuse and os.path.exists(reused + ".upg"):
                    model = reused + ".upg"
                    out = open(reused + ".log").read()
                else:
                    model = os.path.join(tmp, "m.upg")
                    out = run([UPG, "compress", MODEL, "-o", model] + flags)
                m = re.search(r"file: [0-9.]+ MiB, ([0-9.]+) bytes per weight; ratio vs BF16 ([0-9.]+)x", out)
                e = re.search(r"total \(tensors\)\s+.*?\s([0-9.]+)\s+(?:mixed|dense|mdcsr|nm)\b", out)
                if m:
                    r["bpw"], r["ratio"] = float(m.group(1)), float(m.group(2))
                r["err"] = float(e.group(1)) if e else None
            r["kjv"] = perplexity(model, EVAL, args)
            r["chat"] = perplexity(model, CHAT, args, special=True)
            r["answers"] = answers(model) if sample else None
            rows.append(r)
            print(f"{label}: kjv {r['kjv']:.3f} chat {r['chat']:.3f} bytes/weight {r['bpw']} "
                  f"({time.time() - t0:.0f} s)", file=sys.stderr)

    dense = rows[0]
    points_path = os.path.join(os.path.dirname(args.out), "quality-points.csv")
    speeds = previous_speeds(points_path)
    lines = [
        "# Quality",
        "",
        "Generated by `python3 scripts/quality.py` "
        f"(--max-tokens {args.max_tokens} --ctx {args.ctx}) on {datetime.date.today()}, "
        f"{platform.machine()}; do not edit by hand. The last column says when each row was measured "
        "(`--only` re-measures some rows and keeps the rest).",
        "",
        "Two perplexities of SmolLM2-135M-Instruct, lower is better, each over the first "
        f"{args.max_tokens} tokens in non-overlapping windows of {args.ctx} tokens, in fp32:",
        "",
        "- **chat**: `tests/fixtures/eval/chat-heldout.txt`, answers the dense model wrote to 24 held-out prompts "
        "(`scripts/make-calibration.py --heldout`), read as chat transcripts. It measures how closely a "
        "compressed model follows the dense one where an instruct model is used.",
        "- **KJV**: `tests/fixtures/eval/kjv-slice.txt` (King James Bible, public domain): text unlike any "
        "calibration text.",
        "",
        "Every UPG file was made from the same GGUF (`upg compress models/SmolLM2-135M-Instruct.Q4_1.gguf -o "
        "m.upg FLAGS`). Wanda and SparseGPT calibrate on `tests/fixtures/calibration-chat.txt` (the dense model's "
        "answers to 64 other prompts, three each, about 32k tokens, `scripts/make-calibration.py`) unless the row says story calibration "
        "(`tests/fixtures/calibration.txt`, hand-written prose). Bytes per weight count the whole file "
        "(embedding, norms, tokenizer included) over all weights; the ratio is against BF16 (2 bytes per "
        "weight). Relative error is ||W - W_hat||_F / ||W||_F over the compressed tensors (SparseGPT moves the "
        "kept weights on purpose, so its error is larger while its outputs are closer). The GGUF rows are the peer "
        "harness's files (`bench/peer/peer-bench.py`: llama-quantize from an F32 export of the same Q4_1 file), "
        "so every row, UPG or GGUF, starts from the Q4_1 source and inherits its 4-bit error; their bytes per "
        "weight are the file's size over the same weight count.",
        "",
        CROSS_CHECK,
        "",
        "![Bytes per weight against perplexity on both texts, UPG files and GGUF quants](quality-frontier.svg)",
        "",
        "The plot (`scripts/quality-frontier.py`) draws every row below with its size from "
        "[quality-points.csv](quality-points.csv), which this script writes with the table; the dashed lines join "
        "each family's frontier (no file of the family smaller and better). " + missing_gguf_note(rows),
        "",
    ] + speed_paragraph(speeds) + [
        "| configuration | compress flags | bytes/weight | vs BF16 | rel. error | chat ppl | vs dense | KJV ppl | vs dense | measured | decode tok/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        f = (f"peer harness: llama-quantize {r['flags']['gguf']}" if isinstance(r["flags"], dict)
             else "`" + " ".join(r["flags"]) + "`" if r["flags"] else "(none)" if r["flags"] is None
             else "(no flags)")
        bpw = r["bpw"] if r["bpw"] is not None else "Q4_1 source: 0.73"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
        err = f"{r['err']:.3f}" if r["err"] is not None else "-"
        lines.append(f"| {r['label']} | {f} | {bpw} | {ratio} | {err} | {r['chat']:.3f} | "
                     f"{r['chat'] / dense['chat']:.2f}x | {r['kjv']:.3f} | {r['kjv'] / dense['kjv']:.2f}x | {r['date']} | "
                     f"{speed_cell(speeds.get(r['label']))} |")
    lines += ["", "## Answers", "",
              "Greedy (`upg run MODEL -p PROMPT --temp 0 -n 48`), prompts held out from calibration:", ""]
    for r in rows:
        if r["answers"]:
            lines.append(f"**{r['label']}**" + (f" (`{' '.join(r['flags'])}`)" if r["flags"] else "") + ":")
            lines.append("")
            for prompt, a in zip(SAMPLE_PROMPTS, r["answers"]):
                lines.append(f"- *{prompt}* {a}")
            lines.append("")
    lines += findings(rows) + targets(rows, speeds)
    lines.append("")
    with open(args.out + ".tmp", "w") as fh:
        fh.write("\n".join(lines))
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    write_points(rows, points_path, speeds)


SPEED_FIELDS = ["decode_tok_s", "llama_decode_tok_s", "speed_flags", "speed_measured"]


def previous_speeds(path):
    """The decode speeds scripts/frontier-speed.py wrote into the points file, by label:
    this script measures no speed and keeps them (the row's file is the same while its
    flags are)."""
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as fh:
        return {r["label"]: {k: r.get(k) or "" for k in SPEED_FIELDS} for r in csv.DictReader(fh)}


def speed_cell(speed):
    """The table's decode column: UPG's tokens per second, llama.cpp's beside it on GGUF
    files; * when the figure is of the file of the same form (frontier-speed.py)."""
    if not speed or not (speed["decode_tok_s"] or speed["llama_decode_tok_s"]):
        return "-"
    cell = speed["decode_tok_s"] or "-"
    if speed["llama_decode_tok_s"]:
        cell += f" (llama.cpp {speed['llama_decode_tok_s']})"
    return cell + ("*" if speed["speed_flags"] else "")


def write_points(rows, path, speeds):
    """The table's measured points for scripts/quality-frontier.py, which draws them."""
    source_bpw = round(os.path.getsize(MODEL) / GGUF_TYPES.tensor_elements(MODEL), 3)
    with open(path + ".tmp", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["label", "kind", "bytes_per_weight", "chat_ppl", "kjv_ppl", "measured"] + SPEED_FIELDS)
        for r in rows:
            kind = "source" if r["flags"] is None else "GGUF" if isinstance(r["flags"], dict) else "UPG"
            bpw = source_bpw if kind == "source" else r["bpw"]
            speed = speeds.get(r["label"], {})
            if bpw is not None:
                w.writerow([r["label"], kind, bpw, r["chat"], r["kjv"], r["date"]] +
                           [speed.get(k, "") for k in SPEED_FIELDS])
    os.replace(path + ".tmp", path)
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "quality-frontier.py"), "--points", path, "--out",
                    os.path.join(os.path.dirname(path), "quality-frontier.svg"), "--speed-out",
                    os.path.join(os.path.dirname(path), "frontier-speed.svg")], check=True)


if __name__ == "__main__":
    main()
