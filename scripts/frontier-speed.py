#!/usr/bin/env python3
"""Decode speed of every point of the quality frontier (docs/quality-points.csv).

For each row of the CSV (the rows of docs/QUALITY.md) it finds the file: the Q4_1 source,
the GGUF quants the peer harness made with llama-quantize (its cache), or a UPG file made
with `upg compress` from the row's flags (kept in --files, made when missing). Then the
peer harness (bench/peer/peer-bench.py) times them all in one run, interleaved: `upg
bench` on every file, llama.cpp's llama-bench on the GGUF ones, 128 prompt and 128
generated tokens, 2 threads, medians of 3 repetitions. The decode figures (tokens per
second of the generated tokens) go into the CSV's decode_tok_s (UPG) and
llama_decode_tok_s (llama.cpp) columns, with the load average and date, and the plots
and QUALITY.md are drawn again (scripts/quality-frontier.py, scripts/quality.py
--only '^$', which re-measures nothing).

    python3 scripts/frontier-speed.py [--files DIR] [--reps 3] [--threads 2] [--only REGEX]

Decode speed depends on each tensor's stored form (layout, encoding, group size,
sparsity), not on how its values were chosen. So a row whose flags only choose values
(--prune wanda or sparsegpt, --gptq, --act-order, --gptq-head, --calib, --calib-tokens)
is timed on the file of the same form made with magnitude pruning and round-to-nearest,
which takes seconds instead of minutes; rows that share a form share that file and its
figure, and the CSV's speed_flags column names the flags of the file timed. --target-bpw
rows keep their flags: their choice of forms depends on the method.

A benchmark: the figures mean something only on an otherwise idle machine. The load
average before and after is recorded beside them; ratios within one run are what count.
"""
import argparse
import csv
import datetime
import importlib.util
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "bench", "peer", "peer-bench.py")
POINTS = os.path.join(ROOT, "docs", "quality-points.csv")
# Flags that choose values only (never a form), and whether each takes a value.
VALUE_FLAGS = {"--gptq": False, "--act-order": False, "--gptq-head": False, "--calib": True, "--calib-tokens": True,
               "--prune": True}
GGUF_TYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS"]


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speed_flags(flags):
    """The flags of the file whose speed stands for this row's (see the docstring)."""
    if "--target-bpw" in flags:
        return list(flags)
    out, i = [], 0
    while i < len(flags):
        f = flags[i]
        if f in VALUE_FLAGS:
            i += 2 if VALUE_FLAGS[f] else 1
            continue
        out.append(f)
        i += 1
    return out + ["--prune", "magnitude"]


def file_name(flags):
    return re.sub(r"[^A-Za-z0-9.]+", "_", " ".join(flags)).strip("_") + ".upg"


def make(quality, flags, folder):
    path = os.path.join(folder, file_name(flags))
    if not os.path.exists(path):
        print(f"frontier-speed: upg compress {' '.join(flags)}", file=sys.stderr, flush=True)
        tmp = path + ".tmp.upg"
        p = subprocess.run([quality.UPG, "compress", quality.MODEL, "-o", tmp] + flags, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"frontier-speed: upg compress {' '.join(flags)} failed:\n{p.stderr[-2000:]}")
        os.replace(tmp, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", default=POINTS)
    ap.add_argument("--files", default=os.path.join(os.path.expanduser("~"), ".cache", "upg-frontier"),
                    help="where the UPG files are kept (made when missing)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("--only", help="time only the rows whose label matches; keep the others' figures")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results", "frontier-peer.json"))
    ap.add_argument("--no-docs", action="store_true", help="update the CSV only")
    args = ap.parse_args()

    quality = load("quality", os.path.join(ROOT, "scripts", "quality.py"))
    configs = {label: flags for label, flags, _ in quality.CONFIGS}
    with open(args.points, newline="") as fh:
        rows = list(csv.DictReader(fh))
    os.makedirs(args.files, exist_ok=True)
    chosen = [r for r in rows if not args.only or re.search(args.only, r["label"])]
    upg_files = {}  # path -> speed flags
    for r in chosen:
        flags = configs.get(r["label"])
        if isinstance(flags, list):
            sf = speed_flags(flags)
            r["_file"] = make(quality, sf, args.files)
            r["speed_flags"] = " ".join(sf) if sf != flags else ""
            upg_files[r["_file"]] = sf
        elif isinstance(flags, dict) or flags is None:
            r["speed_flags"] = ""
        else:
            sys.exit(f"frontier-speed: {r['label']}: not a configuration of scripts/quality.py")

    types = [t for t in GGUF_TYPES if any(isinstance(configs.get(r["label"]), dict) and
                                          configs[r["label"]]["gguf"] == t for r in chosen)]
    # The real path: the harness keys its cache of GGUF quants by the source's path.
    cmd = [sys.executable, PEER, "--model", os.path.realpath(quality.MODEL), "--types", ",".join(types), "--reps", str(args.reps),
           "-n", str(args.n_gen), "-t", str(args.threads), "--no-batched", "--upg", quality.UPG, "--out", args.out,
           "--cache", os.path.dirname(os.path.dirname(quality.PEER_MODELS))]
    prebuilt = os.path.join(os.path.dirname(os.path.dirname(quality.PEER_MODELS)), "llama-cpp-python-0.3.36",
                            "build", "bin")
    if os.path.exists(os.path.join(prebuilt, "llama-bench")):
        cmd += ["--llama-bin", prebuilt]
    for f in upg_files:
        cmd += ["--upg-file", f]
    print(f"frontier-speed: {len(types) + 1} GGUF files and {len(upg_files)} UPG files, {args.reps} repetitions",
          file=sys.stderr, flush=True)
    if subprocess.run(cmd).returncode != 0:
        sys.exit("frontier-speed: the peer harness failed")
    result = json.load(open(args.out))
    by_path = {os.path.realpath(f["path"]): f for f in result["files"] + result["upg_files"]}
    load_avg = result["machine"].get("load_avg"), result["machine"].get("load_avg_end")
    stamp = (f"{datetime.date.today()}, load {'/'.join(str(x) for x in load_avg[0] or [])} before, "
             f"{'/'.join(str(x) for x in load_avg[1] or [])} after")
    for r in chosen:
        flags = configs[r["label"]]
        path = (r["_file"] if isinstance(flags, list) else quality.MODEL if flags is None else
                os.path.join(quality.PEER_MODELS, f"SmolLM2-135M-Instruct.{flags['gguf']}.gguf"))
        entry = by_path.get(os.path.realpath(path), {})
        tg = lambda who: entry.get(who, {}).get("tg")
        r["decode_tok_s"] = f"{tg('upg'):.1f}" if tg("upg") else ""
        r["llama_decode_tok_s"] = f"{tg('llama_cpp'):.1f}" if tg("llama_cpp") else ""
        r["speed_measured"] = stamp
    fields = ["label", "kind", "bytes_per_weight", "chat_ppl", "kjv_ppl", "measured", "decode_tok_s",
              "llama_decode_tok_s", "speed_flags", "speed_measured"]
    with open(args.points + ".tmp", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    os.replace(args.points + ".tmp", args.points)
    print(f"frontier-speed: wrote {args.points}", file=sys.stderr)
    if not args.no_docs:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "quality.py"), "--only", "^$"], check=True)


if __name__ == "__main__":
    main()
