#!/usr/bin/env python3
"""Turns a Google Benchmark JSON file from upg-bench into one self-contained HTML report.

Usage: bench-report.py [BENCH.json] [--baseline OLD.json] [--threshold PCT]
                       [--fail-on-regression PCT] [--peer PEER.json] [-o report.html]

The report holds the machine details, a summary table (median, min, max and coefficient
of variation over the repetitions, plus counters), and the plots whose benchmarks are
present: SpMV per encoding against the dense baselines, the UPG_Scaling fit, end-to-end
tok/s. With --baseline each benchmark is marked faster, slower or unchanged by its median
real time; with --fail-on-regression the exit status is 1 when one is slower by more than
that percentage. With --peer, the JSON of bench/peer/peer-bench.py adds a table of UPG
beside llama.cpp on the same GGUF files (BENCH.json may then be left out). Exit status 2:
unreadable input. Python standard library only, so CI and
users need nothing installed; the HTML has inline CSS and SVG and needs no network or JS.
"""
import argparse
import importlib.util
import json
import math
import os
import re
import statistics
import sys
import tempfile


def _load_sibling(name):
    # The dashed file name (project style) rules out a plain import statement.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_html = _load_sibling("bench-report-html")
_peer = _load_sibling("bench-report-peer")
TIME_TO_NS, UNIT_TEXT, CSS = _html.TIME_TO_NS, _html.UNIT_TEXT, _html.CSS
PALETTE, BASELINE_COLOR = _html.PALETTE, _html.BASELINE_COLOR
esc, fmt_num, fmt_si, fmt_time, fmt_counter = _html.esc, _html.fmt_num, _html.fmt_si, _html.fmt_time, _html.fmt_counter
hbar_chart, scatter_fit_plot, pick_time_unit = _html.hbar_chart, _html.scatter_fit_plot, _html.pick_time_unit

# Fields Google Benchmark writes for every run; any other numeric field is a user counter.
STANDARD_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "aggregate_name", "aggregate_unit", "label", "error_occurred", "error_message", "skipped",
    "skip_message", "big_o", "rms",
}
# Highway target names, to recognise the SIMD target in a benchmark label.
HWY_TARGETS = {"AVX3_SPR", "AVX3_ZEN4", "AVX3_DL", "AVX3", "AVX2", "SSE4", "SSSE3", "SSE2",
               "NEON", "NEON_BF16", "SVE", "SVE2", "SVE_256", "SVE2_128", "WASM", "WASM_EMU256",
               "PPC8", "PPC9", "PPC10", "RVV", "EMU128", "SCALAR"}


class InputError(Exception):
    """A bad input file; main() prints it as one line and exits 2."""


# ---------------------------------------------------------------------------- input

def read_json(path):
    """The JSON document at path; InputError naming the path when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON: {e}")


def load_json(path):
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise InputError(f"{path}: not Google Benchmark JSON (no \"benchmarks\" list)")
    if not isinstance(data.get("context", {}), dict):
        raise InputError(f"{path}: \"context\" is not an object")
    for i, b in enumerate(data["benchmarks"]):
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            raise InputError(f"{path}: benchmarks[{i}] has no \"name\"")
        if is_error(b):
            continue
        for key in ("real_time", "time_unit"):
            if key not in b:
                raise InputError(f"{path}: benchmark {b['name']}: missing \"{key}\"")
        if b["time_unit"] not in TIME_TO_NS:
            raise InputError(f"{path}: benchmark {b['name']}: unknown time_unit {b['time_unit']!r}")
        if not is_number(b["real_time"]):
            raise InputError(f"{path}: benchmark {b['name']}: real_time is not a number")
    return data


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_error(b):
    return bool(b.get("error_occurred")) or bool(b.get("skipped"))


class Bench:
    """One benchmark instance: its repetitions reduced to median / min / max / CV."""

    def __init__(self, run_name):
        self.name = run_name
        self.unit = "ns"
        self.times_ns = []        # real time per repetition
        self.aggregates = {}      # aggregate_name -> row (used when only aggregates were kept)
        self.counter_samples = {}  # counter -> values per repetition
        self.label = ""
        self.error = None

    def add(self, row):
        if is_error(row):
            self.error = row.get("error_message") or row.get("skip_message") or "error"
            return
        self.unit = row["time_unit"]
        if row.get("label"):
            self.label = str(row["label"])
        if row.get("run_type", "iteration") == "aggregate":
            self.aggregates[row.get("aggregate_name", "")] = row
            return
        self.times_ns.append(row["real_time"] * TIME_TO_NS[row["time_unit"]])
        for k, v in row.items():
            if k not in STANDARD_FIELDS and is_number(v):
                self.counter_samples.setdefault(k, []).append(v)

    @property
    def ok(self):
        return self.error is None and (self.times_ns or "median" in self.aggregates
                                       or "mean" in self.aggregates)

    def _aggregate_ns(self, name):
        row = self.aggregates.get(name)
        return row["real_time"] * TIME_TO_NS[row["time_unit"]] if row else None

    @property
    def reps(self):
        if self.times_ns:
            return len(self.times_ns)
        row = self.aggregates.get("median") or self.aggregates.get("mean")
        return row.get("repetitions", 0) if row else 0

    @property
    def median_ns(self):
        if self.times_ns:
            return statistics.median(self.times_ns)
        m = self._aggregate_ns("median")
        return m if m is not None else self._aggregate_ns("mean")

    @property
    def min_ns(self):
        return min(self.times_ns) if self.times_ns else None

    @property
    def max_ns(self):
        return max(self.times_ns) if self.times_ns else None

    @property
    def cv(self):
        """Sample standard deviation over mean, as Google Benchmark's _cv aggregate."""
        if len(self.times_ns) >= 2:
            mean = statistics.fmean(self.times_ns)
            return statistics.stdev(self.times_ns) / mean if mean else None
        row = self.aggregates.get("cv")
        return row["real_time"] if row else None

    def counters(self):
        if self.counter_samples:
            return {k: statistics.median(v) for k, v in sorted(self.counter_samples.items())}
        row = self.aggregates.get("median") or self.aggregates.get("mean") or {}
        return {k: v for k, v in sorted(row.items()) if k not in STANDARD_FIELDS and is_number(v)}

    def counter(self, key):
        return self.counters().get(key)


def collect(data):
    """Benchmarks by run name, in the order of the file."""
    out = {}
    for row in data["benchmarks"]:
        key = row.get("run_name") or row["name"]
        out.setdefault(key, Bench(key)).add(row)
    return out


# ---------------------------------------------------------------------------- analysis

def least_squares(xs, ys):
    """Fit y = intercept + slope * x; returns (slope, intercept, r2)."""
    n = len(xs)
    if n < 2 or n != len(ys):
        raise ValueError("least squares needs at least two (x, y) pairs")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("least squares needs two distinct x values")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / ss_tot if ss_tot else 1.0
    return slope, intercept, r2


def compare(current, baseline, threshold):
    """Per benchmark present in both: (status, change in %) from the median real times."""
    out = {}
    for name, b in current.items():
        old = baseline.get(name)
        if not b.ok or old is None or not old.ok or not old.median_ns:
            continue
        change = (b.median_ns - old.median_ns) / old.median_ns * 100.0
        status = "slower" if change > threshold else "faster" if change < -threshold else "unchanged"
        out[name] = (status, change)
    return out


def regressions(comparison, limit):
    return sorted((n, c) for n, (s, c) in comparison.items() if c > limit)


def short_name(name):
    return name[:-len("/real_time")] if name.endswith("/real_time") else name


def segments(name):
    return short_name(name).split("/")


# ---------------------------------------------------------------------------- sections

def cpu_model_here():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def fmt_bytes(n):
    for factor, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} B"


def simd_target(ctx, benches):
    if ctx.get("simd_target"):
        return str(ctx["simd_target"])
    seen = {}
    for b in benches.values():
        for token in re.findall(r"[A-Z][A-Z0-9_]+", b.label):
            if token in HWY_TARGETS:
                seen[token] = seen.get(token, 0) + 1
    return max(seen, key=seen.get) if seen else None


def bandwidth(benches):
    """Memory read bandwidth from BM_StreamRead-like benchmarks: [(threads text, bytes/s)]."""
    out = []
    for name, b in benches.items():
        if b.ok and "StreamRead" in name and b.counter("bytes_per_second"):
            m = re.search(r"threads:(\d+)", name)
            threads = f"{m.group(1)} thread{'s' if m.group(1) != '1' else ''}" if m else short_name(name)
            out.append((threads, b.counter("bytes_per_second")))
    return out


def machine_section(ctx, benches):
    rows = []
    rows.append(("Host", ctx.get("host_name")))
    rows.append(("Date", ctx.get("date")))
    model = ctx.get("cpu_model")
    if not model:
        here = cpu_model_here()
        model = f"{here} (read where this report was made)" if here else None
    rows.append(("CPU model", model))
    if "num_cpus" in ctx:
        rows.append(("CPUs", ctx["num_cpus"]))
    if "mhz_per_cpu" in ctx:
        scaling = " (frequency scaling on)" if ctx.get("cpu_scaling_enabled") else ""
        rows.append(("MHz per CPU", f"{ctx['mhz_per_cpu']}{scaling}"))
    caches = []
    for c in ctx.get("caches", []) or []:
        if not isinstance(c, dict) or not isinstance(c.get("size"), int):
            continue
        share = c.get("num_sharing")
        text = f"L{c.get('level', '?')} {c.get('type', '')} {fmt_bytes(int(c['size']))}"
        if is_number(share) and share > 1:
            text += f" shared by {share}"
        caches.append(text)
    rows.append(("Caches", ", ".join(caches) or None))
    loads = []
    for key, when in (("load_avg", "at the start"), ("load_avg_end", "at the end")):
        load = ctx.get(key)
        if isinstance(load, list) and load and all(is_number(x) for x in load):
            loads.append(" / ".join(f"{x:.2f}" for x in load) + f" {when}")
    rows.append(("Load average (1, 5, 15 min)", ", ".join(loads) or None))
    rows.append(("UPG build type", ctx.get("upg_build_type")))
    rows.append(("Benchmark library build", ctx.get("library_build_type")))
    rows.append(("SIMD target", simd_target(ctx, benches)))
    bw = bandwidth(benches)
    rows.append(("Memory read bandwidth",
                 ", ".join(f"{fmt_num(v / 1e9)} GB/s ({t})" for t, v in bw) if bw else None))
    rows.append(("Executable", ctx.get("executable")))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    return f'<section><h2>Machine</h2><table class="kv">{body}</table></section>'


def busy_warning(ctx):
    """A warning when the machine was loaded by something else: the timings are wall-clock."""
    cpus = ctx.get("num_cpus")
    if not is_number(cpus) or cpus <= 0:
        return None
    peaks = [load[0] for load in (ctx.get("load_avg"), ctx.get("load_avg_end"))
             if isinstance(load, list) and load and is_number(load[0])]
    if peaks and max(peaks) > cpus * 0.75:
        return (f"The machine was busy (1-minute load average up to {max(peaks):.2f} on {cpus} CPUs): "
                "other work shared the cores, so these timings are pessimistic and noisy.")
    return None


def is_smoke(ctx):
    """bench.sh --smoke marks its runs: they do less work per iteration under the same names."""
    return str(ctx.get("upg_smoke", "")) == "1"


def comparison_section(benches, base, comparison, threshold, fail_limit, smoke_mismatch=False):
    counts = {"faster": 0, "slower": 0, "unchanged": 0}
    for status, _ in comparison.values():
        counts[status] += 1
    new = [n for n, b in benches.items() if b.ok and n not in comparison]
    gone = [n for n, b in base.items() if b.ok and n not in benches]
    parts = [f'<p>Medians of real time against <code>{esc(base.path)}</code>; changes within '
             f'&plusmn;{threshold:g}% count as noise. '
             f'<span class="faster">{counts["faster"]} faster</span>, '
             f'<span class="slower">{counts["slower"]} slower</span>, '
             f'{counts["unchanged"]} unchanged.</p>']
    if smoke_mismatch:
        parts.append('<p class="warn">One of the two runs is a smoke run (<code>--smoke</code>), the other '
                     'is not: benchmarks that shrink their work in smoke runs (UPG_E2E) are not comparable.</p>')
    if fail_limit is not None:
        bad = regressions(comparison, fail_limit)
        if bad:
            items = "".join(f"<li><code>{esc(short_name(n))}</code> {c:+.1f}%</li>" for n, c in bad)
            parts.append(f'<p class="slower"><b>Regression past {fail_limit:g}%:</b></p><ul>{items}</ul>')
        else:
            parts.append(f"<p>No benchmark is slower by more than {fail_limit:g}%.</p>")
    if new:
        parts.append("<p>Not in the baseline: " + ", ".join(f"<code>{esc(short_name(n))}</code>" for n in new) + "</p>")
    if gone:
        parts.append("<p>In the baseline only: " + ", ".join(f"<code>{esc(short_name(n))}</code>" for n in gone) + "</p>")
    return "<section><h2>Against the baseline</h2>" + "".join(parts) + "</section>"


def summary_section(benches, comparison):
    has_base = comparison is not None
    head = ("<tr><th>Benchmark</th><th>Reps</th><th>Median</th><th>Min</th><th>Max</th><th>CV</th>"
            "<th>Counters (median)</th><th>Label</th>" + ("<th>vs baseline</th>" if has_base else "") + "</tr>")
    rows, group = [], None
    ncols = 9 if has_base else 8
    for name, b in benches.items():
        g = segments(name)[0]
        if g != group:
            group = g
            rows.append(f'<tr class="group"><td colspan="{ncols}">{esc(g)}</td></tr>')
        if b.error is not None:
            rows.append(f'<tr><td class="name">{esc(short_name(name))}</td>'
                        f'<td colspan="{ncols - 1}" class="error">error: {esc(b.error)}</td></tr>')
            continue
        if not b.ok:
            continue
        cv = b.cv
        cv_text = "\u2013" if cv is None else f"{cv * 100:.1f}%"
        cv_class = ' class="noisy"' if cv is not None and cv > 0.05 else ""
        counters = "<br>".join(esc(fmt_counter(k, v)) for k, v in b.counters().items())
        cells = [f'<td class="name">{esc(short_name(name))}</td>', f"<td>{b.reps}</td>",
                 f'<td class="num"><b>{fmt_time(b.median_ns, b.unit)}</b></td>',
                 f'<td class="num">{fmt_time(b.min_ns, b.unit)}</td>',
                 f'<td class="num">{fmt_time(b.max_ns, b.unit)}</td>',
                 f'<td class="num"{cv_class}>{cv_text}</td>', f"<td>{counters}</td>",
                 f"<td>{esc(b.label)}</td>"]
        if has_base:
            if name in comparison:
                status, change = comparison[name]
                cells.append(f'<td class="{status}">{status} {change:+.1f}%</td>')
            else:
                cells.append('<td class="muted">new</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<section><h2>All benchmarks</h2><p class=\"note\">Real (wall-clock) time per iteration. "
            "Median, min and max over the repetitions; CV is the standard deviation over the mean "
            "(above 5% is marked). Counters are medians; GB/s is 10<sup>9</sup> bytes per second.</p>"
            f'<table class="summary">{head}{"".join(rows)}</table></section>')


SPMV_NAME = re.compile(r"^([a-z0-9]+)_(.+?)(?:_(\d+))?$")


def spmv_section(benches):
    groups = {}
    for name, b in benches.items():
        seg = segments(name)
        if seg[0] != "UPG_SpMV" or len(seg) < 2 or not b.ok or not b.median_ns > 0:
            continue
        m = SPMV_NAME.match(seg[1])
        backend, encoding, size = (m.group(1), m.group(2), m.group(3)) if m else ("", seg[1], None)
        extra = "/".join(seg[2:])
        title = " ".join(x for x in (backend.upper(), f"{size} x {size}" if size else "", extra) if x)
        groups.setdefault(title, []).append((encoding, b))
    if not groups:
        return ""
    parts = ["<section><h2>SpMV per encoding</h2><p class=\"note\">Median time of one matrix-vector "
             "product; grey bars are the dense baselines of the same run. The ratio is baseline time "
             "over this time: above 1 is faster than that baseline.</p>"]
    for title, items in groups.items():
        unit = pick_time_unit([b.median_ns for _, b in items])
        dense = [(enc, b) for enc, b in items if enc.startswith("dense")]
        rows = []
        for enc, b in items:
            text = fmt_time(b.median_ns, unit)
            ratios = [f"{d.median_ns / b.median_ns:.2f}\u00d7 vs {denc}" for denc, d in dense if d is not b]
            if ratios:
                text += " \u00b7 " + ", ".join(ratios)
            colour = BASELINE_COLOR if enc.startswith("dense") else PALETTE[0]
            rows.append((enc, b.median_ns / TIME_TO_NS[unit], text, colour))
        parts.append(f"<h3>{esc(title)}</h3>" + hbar_chart(rows, f"time per SpMV ({UNIT_TEXT[unit]})"))
    return "".join(parts) + "</section>"


def scaling_section(benches):
    series = {}
    for name, b in benches.items():
        seg = segments(name)
        if seg[0] != "UPG_Scaling" or not b.ok:
            continue
        size_idx = next((i for i, s in enumerate(seg[1:], 1) if re.fullmatch(r"\d+", s)), None)
        if size_idx is None:
            continue
        n = int(seg[size_idx])
        key = "/".join(seg[1:size_idx] + seg[size_idx + 1:]) or "UPG_Scaling"
        entries = b.counter("nnz") or b.counter("entries")
        if not (entries or n) or not b.median_ns > 0:
            continue
        series.setdefault(key, []).append((entries if entries else float(n * n), b.median_ns, str(n),
                                           bool(entries)))
    series = {k: sorted(v) for k, v in series.items() if v}
    if not series:
        return ""
    counted = all(p[3] for pts in series.values() for p in pts)
    x_label = "stored entries (nnz counter)" if counted else "matrix entries (N\u00b2)"
    unit = pick_time_unit([p[1] for pts in series.values() for p in pts])
    plot, lines = [], []
    for i, (key, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        try:
            slope, intercept, r2 = least_squares(xs, ys)
            fit = (slope, intercept)
            lines.append(f'<li><span style="color:{colour}">&#9679;</span> <b>{esc(key)}</b>: '
                         f"slope <b>{fmt_num(slope)} ns per entry</b>, intercept "
                         f"{fmt_time(intercept, unit) if intercept >= 0 else '-' + fmt_time(-intercept, unit)}, "
                         f"R\u00b2 = <b>{r2:.4f}</b> ({len(pts)} sizes)</li>")
        except ValueError as e:
            fit = None
            lines.append(f"<li><b>{esc(key)}</b>: no fit ({esc(e)})</li>")
        plot.append((key, [(x, y, f"N={lbl}") for x, y, lbl, _ in pts], fit, colour))
    svg = scatter_fit_plot(plot, x_label, f"median time ({UNIT_TEXT[unit]})", TIME_TO_NS[unit])
    # Per-size cost, since the small sizes crowd the origin of a linear plot.
    table = "".join(f"<tr><td>{esc(key)}</td><td class=\"num\">{lbl}</td><td class=\"num\">{fmt_si(x)}</td>"
                    f"<td class=\"num\">{fmt_time(y, unit)}</td><td class=\"num\">{fmt_num(y / x)}</td></tr>"
                    for key, pts in series.items() for x, y, lbl, _ in pts)
    return ("<section><h2>Scaling with matrix size</h2><p class=\"note\">Median time against entry count "
            "with the least-squares line (dashed). O(nnz) work shows as R\u00b2 near 1; sizes past "
            "the last-level cache bend towards the memory-bandwidth limit.</p>"
            f"{svg}<ul class=\"fits\">{''.join(lines)}</ul>"
            "<table class=\"summary narrow\"><tr><th>Series</th><th>N</th><th>Entries</th><th>Median</th>"
            f"<th>ns per entry</th></tr>{table}</table></section>")


def e2e_section(benches, base):
    items = [(name, b) for name, b in benches.items() if segments(name)[0] in ("UPG_E2E", "UPG_E2E_Long") and b.ok]
    if not items:
        return ""
    parts = ["<section><h2>End to end: tokens per second</h2><p class=\"note\">Default model, fixed "
             "prompt, greedy decoding; higher is better.</p>"]
    for key, title in (("prompt_tok_s", "Prompt (prefill)"), ("decode_tok_s", "Decode")):
        rows = []
        for i, (name, b) in enumerate(items):
            v = b.counter(key)
            if v is None:
                continue
            seg = segments(name)
            text = f"{fmt_num(v, 4)} tok/s"
            old = base.get(name) if base else None
            if old is not None and old.ok and old.counter(key):
                ov = old.counter(key)
                text += f" (was {fmt_num(ov, 4)}, {(v - ov) / ov * 100:+.1f}%)"
            # UPG_E2E/<variant>, or UPG_E2E_Long/<variant>/<cache> labelled "<variant> <cache>, long"
            label = seg[1] if len(seg) > 1 else name
            if seg[0] == "UPG_E2E_Long" and len(seg) > 2:
                label = f"{seg[1]} {seg[2]}, long"
            rows.append((label, v, text, PALETTE[1 if key == "decode_tok_s" else 0]))
        if rows:
            parts.append(f"<h3>{title}</h3>" + hbar_chart(rows, f"{title.split()[0].lower()} tok/s"))
    return "".join(parts) + "</section>" if len(parts) > 1 else ""



def load_peer(path):
    data = read_json(path)
    problem = _peer.check(data, path)
    if problem:
        raise InputError(problem)
    return data


def render(data, path, base_data=None, base_path=None, threshold=5.0, fail_limit=None, peer=None,
           peer_path=None):
    """The report as an HTML string, and the comparison (None without a baseline). data is
    None for a report of the peer file alone."""
    if data is None:
        ctx = dict(peer.get("machine") or {})
        body = [f"<h1>UPG beside llama.cpp</h1><p class=\"muted\">{esc(ctx.get('date', ''))}</p>"]
        busy = busy_warning(ctx)
        if busy:
            body.append(f'<p class="warn">{esc(busy)}</p>')
        body += [machine_section(ctx, {}), _peer.section(peer, peer_path, standalone=True)]
        return page_html(ctx, body), None
    benches = collect(data)
    base = None
    comparison = None
    if base_data is not None:
        base = BaselineDict(collect(base_data), base_path or "baseline", base_data.get("context", {}))
        comparison = compare(benches, base, threshold)
    ctx = data.get("context", {})
    ok = sum(1 for b in benches.values() if b.ok)
    failed = sum(1 for b in benches.values() if b.error is not None)
    sub = f"{ok} benchmark{'' if ok == 1 else 's'}" + (f", {failed} with errors" if failed else "") + f" from <code>{esc(path)}</code>"
    if benches and max((b.reps for b in benches.values() if b.ok), default=0) == 1:
        sub += " &middot; one repetition each (smoke run): no spread, timings indicative only"
    body = [f"<h1>UPG benchmark report</h1><p class=\"muted\">{esc(ctx.get('date', ''))} &middot; {sub}</p>"]
    busy = busy_warning(ctx)
    if busy:
        body.append(f'<p class="warn">{esc(busy)}</p>')
    body.append(machine_section(ctx, benches))
    if comparison is not None:
        body.append(comparison_section(benches, base, comparison, threshold, fail_limit,
                                       smoke_mismatch=is_smoke(ctx) != is_smoke(base.context)))
    body += [spmv_section(benches), scaling_section(benches), e2e_section(benches, base)]
    if peer is not None:
        body.append(_peer.section(peer, peer_path))
    body.append(summary_section(benches, comparison))
    return page_html(ctx, body), comparison


def page_html(ctx, body):
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>UPG benchmark report {esc(ctx.get('date', ''))}</title><style>{CSS}</style></head>"
            "<body>\n" + "\n".join(s for s in body if s) + "\n</body></html>\n")


class BaselineDict(dict):
    """The baseline's benchmarks, remembering which file they came from."""

    def __init__(self, items, path, context):
        super().__init__(items)
        self.path = path
        self.context = context


def write_atomic(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench-report-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv=None):
    p = argparse.ArgumentParser(description="HTML report (and regression check) from upg-bench JSON.")
    p.add_argument("bench_json", nargs="?", help="Google Benchmark JSON (--benchmark_out_format=json)")
    p.add_argument("--baseline", help="an earlier JSON to compare against")
    p.add_argument("--threshold", type=float, default=5.0,
                   help="noise threshold in %%: smaller median changes count as unchanged (default 5)")
    p.add_argument("--fail-on-regression", type=float, metavar="PCT",
                   help="exit 1 when a benchmark's median is slower than the baseline by more than PCT%%")
    p.add_argument("--peer", help="peer JSON of bench/peer/peer-bench.py: UPG beside llama.cpp")
    p.add_argument("-o", "--output", help="HTML file to write (default: BENCH.json, else PEER.json, with .html)")
    args = p.parse_args(argv)
    if not args.bench_json and not args.peer:
        p.error("give BENCH.json, --peer PEER.json or both")
    if args.baseline and not args.bench_json:
        p.error("--baseline needs BENCH.json")
    if args.threshold < 0 or (args.fail_on_regression is not None and args.fail_on_regression < 0):
        p.error("thresholds must not be negative")
    if args.fail_on_regression is not None and not args.baseline:
        p.error("--fail-on-regression needs --baseline")
    out = args.output or os.path.splitext(args.bench_json or args.peer)[0] + ".html"
    try:
        data = load_json(args.bench_json) if args.bench_json else None
        base_data = load_json(args.baseline) if args.baseline else None
        peer = load_peer(args.peer) if args.peer else None
    except InputError as e:
        print(f"bench-report: {e}", file=sys.stderr)
        return 2
    page, comparison = render(data, args.bench_json, base_data, args.baseline, args.threshold,
                              args.fail_on_regression, peer, args.peer)
    try:
        write_atomic(out, page)
    except OSError as e:
        print(f"bench-report: {out}: cannot write: {e.strerror}", file=sys.stderr)
        return 2
    summary = ""
    if comparison is not None:
        n = {s: sum(1 for st, _ in comparison.values() if st == s) for s in ("faster", "slower", "unchanged")}
        summary = f" ({n['faster']} faster, {n['slower']} slower, {n['unchanged']} unchanged)"
    print(f"bench-report: wrote {out}{summary}")
    if args.fail_on_regression is not None:
        bad = regressions(comparison, args.fail_on_regression)
        if bad:
            print(f"bench-report: {len(bad)} benchmark(s) slower than the baseline by more than "
                  f"{args.fail_on_regression:g}%:", file=sys.stderr)
            for name, change in bad:
                print(f"  {short_name(name)}: {change:+.1f}%", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
