#!/usr/bin/env python3
"""UPG and llama.cpp side by side on the same GGUF files (issue 24's peer harness).

Builds the llama.cpp peer (build-llama-cpp.sh beside this file) and UPG's `upg`, makes
requantized variants of the default model with llama-quantize, then, interleaved, for
each repetition and each file: llama-bench once (pp and tg tests, -r 1), `upg bench`
once. Medians over the repetitions go to a table on stdout and a JSON file that
scripts/bench-report.py shows (--peer). llama-batched-bench runs on the Q8_0 and the
shipped file in the same loop; UPG has no batched engine, so that table has no UPG side.

Usage: bench/peer/peer-bench.py [--model GGUF] [--types Q8_0,Q4_0,...] [--reps 3]
                                [-p 128] [-n 128] [-t 2] [--out bench-results/peer.json]
                                [--upg PATH] [--no-batched] [--cache DIR] [--version V]
                                [--llama-bin DIR] [--upg-arg ARG] [--timeout S]

A benchmark, not a test: it takes minutes (the first run builds llama.cpp: much longer),
and its numbers mean something only on an otherwise idle machine. Exit status: 0 when it
ran (a file that one engine cannot load is recorded as an error for that file, not a
failure), 2 on bad arguments, 1 when a build or the variants could not be made.
"""
import argparse
import datetime
import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_VERSION = "0.3.36"
# Every type llama-quantize makes for issue 24, so each GGUF type UPG reads runs on a
# real model. From an F32 export of the shipped file: see variants().
DEFAULT_TYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS"]
# llama-batched-bench runs on these (the shipped file is always one).
BATCHED_TYPES = ["Q8_0"]
BATCHED_NPL = [1, 8, 32]
# Issue 24's targets, as UPG / llama.cpp ratios (peak memory: at most this ratio) and
# seconds; the table marks each measured value against them.
TARGETS = {
    "shipped": {"pp": 2.0, "tg": 1.5, "peak_rss": 1.0},
    "Q8_0": {"tg": 1.3}, "Q4_0": {"tg": 1.3}, "Q4_K_M": {"tg": 1.3}, "Q6_K": {"tg": 1.3},
}
LOAD_TARGET_S = 0.5
# Fastest over slowest repetition past which the table calls a median noisy.
NOISY_SPREAD = 1.2
# The instruction sets the llama.cpp build turns on when /proc/cpuinfo lists them.
ISA_FLAGS = ["sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512cd", "avx512vl",
             "avx512dq", "avx512bw", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]


def _load_sibling(name):
    # The dashed file name (project style) rules out a plain import statement.
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gguf_types = _load_sibling("gguf-types")


def log(msg):
    print(f"peer-bench: {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    """A step the run cannot go on without (a build, the variants)."""


# ---------------------------------------------------------------------------- processes

def run_measured(cmd, timeout):
    """Runs cmd; returns (exit code, stdout, stderr, peak RSS in MiB). The peak comes from
    wait4's rusage of that one child, so both engines are measured the same way."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                usage.ru_maxrss / 1024.0)


def failure_text(rc, err):
    """One line for the JSON: the exit status and the last non-empty line of stderr."""
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    why = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
    return f"{why}: {lines[-1]}" if lines else why


def json_lines(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


# ---------------------------------------------------------------------------- builds

def build_llama_cpp(args):
    if args.llama_bin:
        for tool in ("llama-bench", "llama-batched-bench", "llama-quantize"):
            if not os.access(os.path.join(args.llama_bin, tool), os.X_OK):
                raise Failure(f"--llama-bin: no {tool} in {args.llama_bin}")
        return os.path.abspath(args.llama_bin), "prebuilt (--llama-bin)"
    cmd = [os.path.join(HERE, "build-llama-cpp.sh"), "--version", args.version, "--cache", args.cache]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise Failure(f"building llama.cpp failed (exit {p.returncode})")
    bin_dir = p.stdout.strip().splitlines()[-1]
    stamp = os.path.join(os.path.dirname(bin_dir), "upg-peer-stamp")
    with open(stamp, encoding="utf-8") as f:
        flags = f.read().strip()
    return bin_dir, flags


def build_upg(args):
    if args.upg:
        if not os.access(args.upg, os.X_OK):
            raise Failure(f"{args.upg}: not an executable")
        return args.upg
    # The configuration of scripts/build.sh release; only the CLI target, so a library
    # layer whose tests are mid-edit does not block a benchmark run.
    build = os.environ.get("UPG_BUILD_DIR", os.path.join(ROOT, "build"))
    jobs = os.environ.get("UPG_JOBS", str(os.cpu_count() or 1))
    for cmd in (["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", build, "--target", "upg-cli", "-j", jobs]):
        if subprocess.run(cmd, stdout=subprocess.DEVNULL if cmd[1] == "-S" else None).returncode != 0:
            raise Failure(f"building UPG failed: {' '.join(cmd)}")
    return os.path.join(build, "upg")


# ---------------------------------------------------------------------------- variants

def source_type(path):
    """The GGUF type in a file name like SmolLM2-135M-Instruct.Q4_1.gguf ("Q4_1")."""
    m = re.search(r"[.-]((?:IQ|Q|F|BF)[0-9][0-9A-Z_]*)\.gguf$", os.path.basename(path), re.IGNORECASE)
    return m.group(1).upper() if m else "?"


def variants(args, bin_dir):
    """The requantized files, made once and kept in the cache: an F32 export of the source
    first (llama-quantize --allow-requantize ... F32 dequantizes every tensor), then each
    type from that export. The source is Q4_1 already: every variant carries its 4-bit
    error, and the F32 export holds no more information than the Q4_1 file."""
    src = os.path.abspath(args.model)
    st = os.stat(src)
    stem = re.sub(r"\.(?:IQ|Q|F|BF)[0-9][0-9A-Z_]*$", "", os.path.basename(src)[:-len(".gguf")], flags=re.I)
    folder = os.path.join(args.cache, "models", stem)
    key = {"source": src, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "llama_cpp_python": args.version}
    key_path = os.path.join(folder, "source.json")
    try:
        with open(key_path, encoding="utf-8") as f:
            if json.load(f) != key:
                log(f"{src} or the llama.cpp version changed: remaking {folder}")
                shutil.rmtree(folder)
    except (OSError, ValueError):
        pass
    os.makedirs(folder, exist_ok=True)
    with open(key_path, "w", encoding="utf-8") as f:
        json.dump(key, f)
    quantize = os.path.join(bin_dir, "llama-quantize")

    def make(inp, out, qtype, extra=()):
        if os.path.exists(out):
            return None
        tmp = out + ".tmp"
        log(f"llama-quantize {os.path.basename(inp)} -> {os.path.basename(out)}")
        p = subprocess.run([quantize, *extra, inp, tmp, qtype], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        if p.returncode != 0:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return failure_text(p.returncode, p.stderr + p.stdout)
        os.replace(tmp, out)  # only a finished file gets the name
        return None

    f32 = os.path.join(folder, f"{stem}.F32.gguf")
    err = make(src, f32, "F32", ["--allow-requantize"])
    if err:
        raise Failure(f"F32 export of {src} failed: {err}")
    files = []
    for qtype in args.types:
        out = os.path.join(folder, f"{stem}.{qtype}.gguf")
        err = make(f32, out, qtype)
        files.append({"path": out, "type": qtype, "shipped": False, "quantize_error": err})
        if err:
            log(f"{qtype}: llama-quantize failed: {err}")
    return files


# ---------------------------------------------------------------------------- runs

def depth_args(args):
    """-d D for both engines' pp and tg tests (left out at 0, so builds without -d still run)."""
    return ["-d", str(args.n_depth)] if args.n_depth else []


def run_llama_bench(args, bin_dir, path):
    cmd = [os.path.join(bin_dir, "llama-bench"), "-m", path, "-p", str(args.n_prompt), "-n", str(args.n_gen),
           "-t", str(args.threads), "-r", "1", "-o", "jsonl", *depth_args(args)]
    rc, out, err, rss = run_measured(cmd, args.timeout)
    rows = json_lines(out)
    if rc != 0 or not rows:
        return {"error": failure_text(rc, err)}
    res = {"peak_rss_mib": rss, "info": {k: rows[0].get(k) for k in (
        "build_commit", "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch", "type_k", "type_v",
        "flash_attn", "use_mmap", "cpu_info")}}
    for r in rows:
        if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0:
            res["pp"] = r["avg_ts"]
        elif r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0:
            res["tg"] = r["avg_ts"]
    return res


def run_upg_bench(args, upg, path):
    cmd = [upg, "bench", path, "-p", str(args.n_prompt), "-n", str(args.n_gen), "-t", str(args.threads), "-r", "1",
           "--json", *depth_args(args), *args.upg_arg]
    rc, out, err, rss = run_measured(cmd, args.timeout)
    rows = json_lines(out)
    if rc != 0 or not rows:
        return {"error": failure_text(rc, err)}
    res = {"peak_rss_mib": rss, "load_s": rows[0]["load_s"],
           "info": {k: rows[0].get(k) for k in ("backend", "dtype", "file_bytes")}}
    for r in rows:
        res["pp" if r["test"].startswith("pp") else "tg"] = r["avg_ts"]
    return res


def run_batched(args, bin_dir, path):
    npl = ",".join(str(n) for n in BATCHED_NPL)
    # The context holds every sequence of the largest batch at once.
    ctx = max(BATCHED_NPL) * (args.n_prompt + args.n_gen)
    cmd = [os.path.join(bin_dir, "llama-batched-bench"), "-m", path, "-c", str(ctx), "-npp", str(args.n_prompt),
           "-ntg", str(args.n_gen), "-npl", npl, "-t", str(args.threads), "--output-format", "jsonl"]
    rc, out, err, rss = run_measured(cmd, args.timeout * 4)
    rows = json_lines(out + "\n" + err)  # LOG() writes to stdout in this version; stderr in some
    if rc != 0 or not rows:
        return {"error": failure_text(rc, err)}
    return {"peak_rss_mib": rss, "rows": rows}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(samples):
    """Per-repetition results of one engine on one file -> medians (and the samples)."""
    ok = [s for s in samples if "error" not in s]
    out = {}
    if not ok:
        out["error"] = samples[0]["error"] if samples else "not run"
        return out
    for key in ("pp", "tg", "peak_rss_mib", "load_s"):
        vals = [s.get(key) for s in ok if s.get(key) is not None]
        if vals:
            out[key] = median(vals)
            out[key + "_samples"] = vals
            if key in ("pp", "tg") and len(vals) > 1 and min(vals) > 0:
                out[key + "_spread"] = max(vals) / min(vals)  # fastest over slowest repetition
    out["info"] = ok[0].get("info", {})
    errors = [s["error"] for s in samples if "error" in s]
    if errors:
        out["errors"] = errors  # some repetitions failed, others did not
    return out


def ratio(a, b):
    return a / b if a is not None and b else None


def machine():
    info = {"host_name": socket.gethostname(), "num_cpus": os.cpu_count(),
            "date": datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")}
    flags = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key == "model name" and "cpu_model" not in info:
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                elif key == "flags" and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    info["isa"] = [f for f in ISA_FLAGS if f in flags]
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return info


def upg_commit():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


# ---------------------------------------------------------------------------- output

def cell(v, fmt="{:.1f}"):
    return "-" if v is None else fmt.format(v)


def mark(value, target, at_most=False):
    """'1.62x' with '(>=1.5 ok)' or '(>=1.5 MISSED)' when the file has that target."""
    if value is None:
        return "-"
    text = f"{value:.2f}x"
    if target is None:
        return text
    ok = value <= target if at_most else value >= target
    return f"{text} ({'<=' if at_most else '>='}{target:g} {'ok' if ok else 'MISSED'})"


def print_tables(result):
    s = result["settings"]
    at = f" @ d{s['n_depth']}" if s.get("n_depth") else ""
    pp, tg = f"pp{s['n_prompt']}{at}", f"tg{s['n_gen']}{at}"
    head = ["file", "type", "MiB", f"llama {pp}", f"llama {tg}", f"UPG {pp}", f"UPG {tg}", f"{pp} UPG/llama",
            f"{tg} UPG/llama", "RSS llama", "RSS UPG", "UPG load s"]
    rows = []
    for f in result["files"]:
        lc, up, t = f["llama_cpp"], f["upg"], f.get("targets", {})
        load = up.get("load_s")
        load_text = "-" if load is None else f"{load:.3f}" + ("" if load <= LOAD_TARGET_S else " (>0.5)")
        rows.append([os.path.basename(f["path"]), f["type"] + (" (shipped)" if f["shipped"] else ""),
                     cell(f["size_bytes"] / 2**20 if f.get("size_bytes") else None),
                     cell(lc.get("pp")), cell(lc.get("tg")), cell(up.get("pp")), cell(up.get("tg")),
                     mark(f["ratio"]["pp"], t.get("pp")), mark(f["ratio"]["tg"], t.get("tg")),
                     cell(lc.get("peak_rss_mib"), "{:.0f}"),
                     cell(up.get("peak_rss_mib"), "{:.0f}") + (
                         "" if "peak_rss" not in t or f["ratio"]["peak_rss"] is None else
                         f" ({f['ratio']['peak_rss']:.2f}x {'ok' if f['ratio']['peak_rss'] <= t['peak_rss'] else 'MISSED'})"),
                     load_text])
    m = result["machine"]
    print(f"{m.get('cpu_model', '?')}, {m.get('num_cpus', '?')} CPUs; load average {m.get('load_avg')} at the start, "
          f"{m.get('load_avg_end')} at the end")
    busiest = max(m.get("load_avg", [0])[0], m.get("load_avg_end", [0])[0])
    if m.get("num_cpus") and busiest > 0.75 * m["num_cpus"]:
        print("warning: the machine was busy (other work shared the cores): these timings are noisy and low")
    print()
    print_markdown(head, rows)
    print("\ntensor types (llama-quantize falls back where a type does not fit a tensor's rows):")
    for f in result["files"]:
        types = f.get("tensor_types") or {}
        print(f"  {os.path.basename(f['path'])}: " + ", ".join(f"{k} {v}" for k, v in types.items()))
    noisy = [f"{f['type']} {name} {t} {f[who][t + '_spread']:.2f}" for f in result["files"]
             for who, name in (("llama_cpp", "llama.cpp"), ("upg", "UPG")) for t in ("pp", "tg")
             if f[who].get(t + "_spread", 1) > NOISY_SPREAD]
    if noisy:
        print(f"\nnoisy (fastest over slowest repetition above {NOISY_SPREAD}): " + ", ".join(noisy))
    errors = [(f, who) for f in result["files"] for who in ("llama_cpp", "upg") if "error" in f[who]]
    if errors:
        print("\nerrors (the file is left out for that engine):")
    for f, who in errors:
        print(f"  {os.path.basename(f['path'])}: {'llama.cpp' if who == 'llama_cpp' else 'UPG'}: {f[who]['error']}")
    if result.get("upg_files"):
        a = result["upg_files"][0]["against"]
        print(f"\nUPG files beside llama.cpp on {a['file'] or a['type'] + ' (not run)'} (same repetitions):")
        rows = [[u["file"], cell(u["size_bytes"] / 2**20), cell(u["upg"].get("pp")), cell(u["upg"].get("tg")),
                 mark(u["ratio"]["pp"], None), mark(u["ratio"]["tg"], None),
                 u["upg"].get("error", "")] for u in result["upg_files"]]
        print_markdown(["UPG file", "MiB", f"UPG {pp}", f"UPG {tg}", f"{pp} / llama {a['type']}",
                        f"{tg} / llama {a['type']}", "error"], rows)
    if result.get("batched"):
        print(f"\nllama-batched-bench (-npp {s['n_prompt']} -ntg {s['n_gen']} -t {s['threads']}), the repetition with "
              "the median S; UPG has no batched engine yet, so no UPG column:")
        rows = []
        for b in result["batched"]:
            if "error" in b["llama_cpp"]:
                rows.append([os.path.basename(b["path"]), b["type"], "-", "error: " + b["llama_cpp"]["error"], "", ""])
                continue
            for r in b["llama_cpp"]["rows"]:
                rows.append([os.path.basename(b["path"]), b["type"], str(r["pl"]), cell(r["speed_pp"]),
                             cell(r["speed_tg"]), cell(r["speed"])])
        print_markdown(["file", "type", "B", "S_PP t/s", "S_TG t/s", "S t/s"], rows)


def print_markdown(head, rows):
    width = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, width)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in width) + "|")
    for r in rows:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, width)) + " |")


def write_atomic(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="UPG and llama.cpp side by side on the same GGUF files.")
    p.add_argument("--model", default=DEFAULT_MODEL, help="the shipped GGUF (default: the default model)")
    p.add_argument("--types", default=",".join(DEFAULT_TYPES),
                   help="llama-quantize types to make from it, comma-separated ('' for none)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions; medians over them (default 3)")
    p.add_argument("-p", "--n-prompt", type=int, default=128, help="prompt tokens (default 128)")
    p.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens (default 128)")
    p.add_argument("-d", "--n-depth", type=int, default=0,
                   help="tokens of context before each pp and tg test, llama-bench's -d (default 0; "
                        "llama-batched-bench runs without it)")
    p.add_argument("-t", "--threads", type=int, default=2, help="threads for both engines (default 2)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench-results", "peer.json"), help="JSON to write")
    p.add_argument("--upg", help="the upg binary to run (default: build build/upg)")
    p.add_argument("--llama-bin", help="a folder with llama-bench, llama-batched-bench and llama-quantize to use "
                   "instead of building them")
    p.add_argument("--upg-arg", action="append", default=[], help="extra argument for `upg bench` (repeatable)")
    p.add_argument("--no-batched", action="store_true", help="skip llama-batched-bench")
    p.add_argument("--upg-file", action="append", default=[],
                   help="a UPG file to time with `upg bench` in each repetition beside the GGUF files (repeatable)")
    p.add_argument("--against", default="Q4_0",
                   help="the GGUF type (of --types or the shipped file) the --upg-file speeds are set beside "
                        "(default Q4_0)")
    p.add_argument("--cache", default=os.environ.get("UPG_PEER_CACHE", os.path.expanduser("~/.cache/upg-peer")),
                   help="where the llama.cpp build and the variants are kept (default ~/.cache/upg-peer)")
    p.add_argument("--version", default=os.environ.get("UPG_PEER_LLAMA_VERSION", DEFAULT_VERSION),
                   help=f"llama-cpp-python version whose vendor/llama.cpp is built (default {DEFAULT_VERSION})")
    p.add_argument("--timeout", type=int, default=600, help="seconds one benchmark process may take (default 600)")
    args = p.parse_args(argv)
    if args.reps < 1 or args.n_prompt < 1 or args.n_gen < 1 or args.threads < 1 or args.timeout < 1:
        p.error("--reps, -p, -n, -t and --timeout must be at least 1")
    if args.n_depth < 0:
        p.error("-d/--n-depth must be at least 0")
    args.types = [t.strip().upper() for t in args.types.split(",") if t.strip()]
    bad = [t for t in args.types if not re.fullmatch(r"[A-Z0-9_]+", t)]
    if bad:
        p.error(f"--types: not a type name: {', '.join(bad)}")
    if not os.path.isfile(args.model):
        if os.path.abspath(args.model) != DEFAULT_MODEL:
            p.error(f"--model: {args.model}: no such file")
        if subprocess.run([os.path.join(ROOT, "scripts", "fetch-model.sh")]).returncode != 0:
            p.error(f"{args.model}: missing and scripts/fetch-model.sh could not fetch it")
    if args.reps < 3:
        log(f"--reps {args.reps}: fewer than 3, the medians are indicative only")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        bin_dir, llama_flags = build_llama_cpp(args)
        upg = build_upg(args)
        files = [{"path": os.path.abspath(args.model), "type": source_type(args.model), "shipped": True,
                  "quantize_error": None}] + variants(args, bin_dir)
        upg_files = [{"path": os.path.abspath(p)} for p in args.upg_file]
        for u in upg_files:
            if not os.path.isfile(u["path"]):
                raise Failure(f"--upg-file {u['path']}: no such file")
    except Failure as e:
        log(str(e))
        return 1
    batched = [] if args.no_batched else [
        f for f in files if f["shipped"] or (f["type"] in BATCHED_TYPES and not f["quantize_error"])]
    info = machine()
    log(f"{len(files)} files, {args.reps} interleaved repetitions; load average {info['load_avg']}")
    samples = {id(f): {"llama_cpp": [], "upg": []} for f in files}
    upg_samples = {id(u): [] for u in upg_files}
    batched_samples = {id(f): [] for f in batched}
    for rep in range(args.reps):
        for f in files:
            name = os.path.basename(f["path"])
            if f["quantize_error"]:
                continue
            # A file an engine failed on once is not run again by it: the error is kept.
            for who, fn in (("llama_cpp", lambda: run_llama_bench(args, bin_dir, f["path"])),
                            ("upg", lambda: run_upg_bench(args, upg, f["path"]))):
                done = samples[id(f)][who]
                if done and all("error" in s for s in done):
                    continue
                r = fn()
                done.append(r)
                what = r.get("error") or f"pp {cell(r.get('pp'))} tg {cell(r.get('tg'))} t/s"
                log(f"rep {rep + 1}/{args.reps} {name} {'llama.cpp' if who == 'llama_cpp' else 'UPG'}: {what}")
        for u in upg_files:
            done = upg_samples[id(u)]
            if done and all("error" in s for s in done):
                continue
            r = run_upg_bench(args, upg, u["path"])
            done.append(r)
            what = r.get("error") or f"pp {cell(r.get('pp'))} tg {cell(r.get('tg'))} t/s"
            log(f"rep {rep + 1}/{args.reps} {os.path.basename(u['path'])} UPG: {what}")
        for f in batched:
            done = batched_samples[id(f)]
            if done and all("error" in s for s in done):
                continue
            log(f"rep {rep + 1}/{args.reps} {os.path.basename(f['path'])} llama-batched-bench")
            done.append(run_batched(args, bin_dir, f["path"]))
    info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]

    out_files = []
    for f in files:
        lc = summarize(samples[id(f)]["llama_cpp"]) if not f["quantize_error"] else {"error": f["quantize_error"]}
        up = summarize(samples[id(f)]["upg"]) if not f["quantize_error"] else {"error": "not made"}
        targets = TARGETS["shipped"] if f["shipped"] else TARGETS.get(f["type"], {})
        try:
            types = gguf_types.tensor_types(f["path"]) if os.path.exists(f["path"]) else None
        except (OSError, ValueError) as e:
            types = {"error": str(e)}
        out_files.append({
            "path": f["path"], "file": os.path.basename(f["path"]), "type": f["type"], "shipped": f["shipped"],
            "size_bytes": os.path.getsize(f["path"]) if os.path.exists(f["path"]) else None,
            "tensor_types": types,
            "llama_cpp": lc, "upg": up,
            "ratio": {"pp": ratio(up.get("pp"), lc.get("pp")), "tg": ratio(up.get("tg"), lc.get("tg")),
                      "peak_rss": ratio(up.get("peak_rss_mib"), lc.get("peak_rss_mib"))},
            "targets": dict(targets, load_s=LOAD_TARGET_S)})
    out_batched = []
    for f in batched:
        runs = [r for r in batched_samples[id(f)] if "error" not in r]
        entry = {"path": f["path"], "file": os.path.basename(f["path"]), "type": f["type"],
                 "upg": None, "upg_note": "UPG has no batched engine yet"}
        if not runs:
            entry["llama_cpp"] = {"error": batched_samples[id(f)][0]["error"] if batched_samples[id(f)] else "not run"}
        else:
            rows = []
            for i in range(len(runs[0]["rows"])):
                # The whole row of the repetition with the median overall speed, so its
                # prompt, generation and overall figures belong together.
                ranked = sorted((r["rows"][i] for r in runs if i < len(r["rows"])), key=lambda row: row["speed"])
                row = ranked[(len(ranked) - 1) // 2]
                rows.append({k: row.get(k) for k in ("pp", "tg", "pl", "n_kv", "speed_pp", "speed_tg", "speed",
                                                     "t_pp", "t_tg", "t")})
            entry["llama_cpp"] = {"rows": rows, "peak_rss_mib": median(r["peak_rss_mib"] for r in runs),
                                  "repetitions": len(runs)}
        out_batched.append(entry)
    # UPG's own files beside llama.cpp on the --against file, same repetitions.
    against = next((f for f in out_files if f["type"] == args.against), None)
    out_upg = []
    for u in upg_files:
        up = summarize(upg_samples[id(u)])
        lc = against["llama_cpp"] if against else {}
        out_upg.append({"path": u["path"], "file": os.path.basename(u["path"]),
                        "size_bytes": os.path.getsize(u["path"]), "upg": up,
                        "against": {"type": args.against, "file": against["file"] if against else None,
                                    "llama_cpp_pp": lc.get("pp"), "llama_cpp_tg": lc.get("tg")},
                        "ratio": {"pp": ratio(up.get("pp"), lc.get("pp")), "tg": ratio(up.get("tg"), lc.get("tg"))}})
    build_commit = next((f["llama_cpp"].get("info", {}).get("build_commit") for f in out_files
                         if f["llama_cpp"].get("info")), None)
    result = {
        "kind": "upg-peer-bench", "version": 1, "machine": info,
        "settings": {"n_prompt": args.n_prompt, "n_gen": args.n_gen, "n_depth": args.n_depth, "threads": args.threads,
                     "repetitions": args.reps, "upg_args": args.upg_arg, "batched_npl": BATCHED_NPL},
        "source": {"path": os.path.abspath(args.model), "type": source_type(args.model),
                   "note": "the requantized files are made from an F32 export of this file, so each carries its "
                           "quantization error too"},
        "llama_cpp": {"package": "llama-cpp-python", "version": args.version, "build_commit": build_commit,
                      "build": llama_flags, "bin": bin_dir},
        "upg": {"commit": upg_commit(), "binary": upg},
        "files": out_files, "batched": out_batched, "upg_files": out_upg,
    }
    write_atomic(args.out, result)
    print_tables(result)
    log(f"wrote {args.out}; the HTML report: python3 scripts/bench-report.py --peer {args.out} -o peer.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
