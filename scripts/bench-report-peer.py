"""The peer section of bench-report.py: UPG beside llama.cpp on the same GGUF files, from
the JSON that bench/peer/peer-bench.py writes (kind "upg-peer-bench"). Standard library
only; check() names what is wrong with a file, section() renders it."""
import html
import math


def esc(s):
    return html.escape(str(s), quote=True)


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check(data, path):
    """None when data is a peer file the report can show, else one line saying why not."""
    if not isinstance(data, dict) or data.get("kind") != "upg-peer-bench":
        return f"{path}: not a peer benchmark file (no \"kind\": \"upg-peer-bench\")"
    if not isinstance(data.get("files"), list) or not isinstance(data.get("settings"), dict):
        return f"{path}: no \"files\" list or \"settings\" object"
    for i, f in enumerate(data["files"]):
        if not isinstance(f, dict) or not isinstance(f.get("file"), str):
            return f"{path}: files[{i}] has no \"file\""
        for who in ("llama_cpp", "upg"):
            if not isinstance(f.get(who), dict):
                return f"{path}: files[{i}] has no \"{who}\" object"
    if not isinstance(data.get("batched", []), list):
        return f"{path}: \"batched\" is not a list"
    return None


def _tps(v):
    return f"{v:,.1f}" if _num(v) else "\u2013"


def _ratio(v, target=None, at_most=False):
    """'1.62×', coloured, with the target below it when the file has one."""
    if not _num(v):
        return "\u2013"
    text = f"{v:.2f}\u00d7"
    if not _num(target):
        return text
    ok = v <= target if at_most else v >= target
    rel = "\u2264" if at_most else "\u2265"
    return (f'<span class="{"faster" if ok else "slower"}">{text}</span>'
            f'<br><span class="muted">target {rel}{target:g}</span>')


def section(data, path, standalone=False):
    """The peer section; standalone when the page has no benchmark run beside it, so the
    machine section above already shows the peer run's machine and load."""
    s = data["settings"]
    pp, tg = f"pp{s.get('n_prompt', '?')}", f"tg{s.get('n_gen', '?')}"
    lc_meta, upg_meta, m = data.get("llama_cpp", {}) or {}, data.get("upg", {}) or {}, data.get("machine", {}) or {}
    loads = ", ".join(" / ".join(f"{x:.2f}" for x in m[k]) + f" {w}" for k, w in
                      (("load_avg", "at the start"), ("load_avg_end", "at the end"))
                      if isinstance(m.get(k), list) and all(_num(x) for x in m[k]))
    facts = [
        ("llama.cpp", f"{lc_meta.get('package', 'llama-cpp-python')} {lc_meta.get('version', '?')} "
                      f"(its vendor/llama.cpp, build {lc_meta.get('build_commit') or '?'})"),
        ("llama.cpp build", lc_meta.get("build")),
        ("UPG", f"{upg_meta.get('commit') or '?'}" + (f", upg bench {' '.join(s['upg_args'])}"
                                                        if s.get("upg_args") else "")),
        ("Instruction sets", " ".join(m.get("isa", [])) if standalone else
         f"{m.get('cpu_model', '?')}, {m.get('num_cpus', '?')} CPUs: {' '.join(m.get('isa', []))}"),
        ("Load average", None if standalone else loads),
        ("Settings", f"{pp}, {tg}, {s.get('threads', '?')} threads, medians of {s.get('repetitions', '?')} "
                     "interleaved repetitions (each engine one process per file and repetition)"),
        ("Source", (data.get("source") or {}).get("path")),
    ]
    kv = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts if v)
    rows, errors = [], []
    for f in data["files"]:
        lc, up = f["llama_cpp"], f["upg"]
        r, t = f.get("ratio") or {}, f.get("targets") or {}
        load = up.get("load_s")
        load_cell = "\u2013" if not _num(load) else (
            f"{load:.3f}" if not _num(t.get("load_s")) else
            f'<span class="{"faster" if load <= t["load_s"] else "slower"}">{load:.3f}</span>')
        size = f.get("size_bytes")
        types = f.get("tensor_types") if isinstance(f.get("tensor_types"), dict) else {}
        num = '<td class="num">{}</td>'.format
        shipped = '<br><span class="muted">shipped</span>' if f.get("shipped") else ""
        rows.append(
            f"<tr><td title=\"{esc(f['file'])}\"><b>{esc(f.get('type', ''))}</b>"
            f"{shipped}</td>"
            f"<td class=\"types\">{'<br>'.join(esc(f'{k} {v}') for k, v in types.items())}</td>"
            + num(f"{size / 2**20:.1f}" if _num(size) else "&ndash;")
            + num(_tps(lc.get("pp"))) + num(_tps(up.get("pp"))) + num(_ratio(r.get("pp"), t.get("pp")))
            + num(_tps(lc.get("tg"))) + num(_tps(up.get("tg"))) + num(_ratio(r.get("tg"), t.get("tg")))
            + num(_tps(lc.get("peak_rss_mib"))) + num(_tps(up.get("peak_rss_mib")))
            + num(_ratio(r.get("peak_rss"), t.get("peak_rss"), at_most=True)) + num(load_cell) + "</tr>")
        for who, name in (("llama_cpp", "llama.cpp"), ("upg", "UPG")):
            if f[who].get("error"):
                errors.append(f"<li><b>{esc(f.get('type', ''))}</b> <code>{esc(f['file'])}</code>: {name}: "
                              f"<span class=\"error\">{esc(f[who]['error'])}</span></li>")
    sub = "<th>llama.cpp</th><th>UPG</th><th>UPG/llama</th>"
    table = ("<table class=\"summary peer\"><tr><th rowspan=\"2\">Type</th><th rowspan=\"2\">Tensors</th>"
             f"<th rowspan=\"2\">MiB</th><th colspan=\"3\">{pp} tok/s</th><th colspan=\"3\">{tg} tok/s</th>"
             "<th colspan=\"3\">peak memory MiB</th><th>UPG load</th></tr>"
             f"<tr>{sub}{sub}{sub}<th>s</th></tr>" + "".join(rows) + "</table>")
    parts = [f"<section><h2>Beside llama.cpp</h2><p class=\"note\">From <code>{esc(path)}</code> "
             "(<code>bench/peer/peer-bench.py</code>): tok/s of llama-bench and <code>upg bench</code> on the "
             "same files, and each process's peak resident memory. Ratios are UPG over llama.cpp: above 1 is "
             "faster (memory: below 1 is smaller). The requantized files come from an F32 export of the "
             "shipped one, so they carry its quantization error too; Tensors counts each file's tensor "
             "types, which llama-quantize changes where a type does not fit a tensor's rows.</p>",
             f"<table class=\"kv\">{kv}</table>", table]
    if errors:
        parts.append(f"<h3>Errors</h3><ul>{''.join(errors)}</ul>")
    batched = [b for b in data.get("batched", []) if isinstance(b, dict)]
    if batched:
        brows = []
        for b in batched:
            lc = b.get("llama_cpp") or {}
            if lc.get("error"):
                brows.append(f"<tr><td class=\"name\">{esc(b.get('file', ''))}</td><td>{esc(b.get('type', ''))}</td>"
                             f"<td colspan=\"5\" class=\"error\">{esc(lc['error'])}</td></tr>")
                continue
            for r in lc.get("rows", []):
                brows.append(f"<tr><td class=\"name\">{esc(b.get('file', ''))}</td><td>{esc(b.get('type', ''))}</td>"
                             f"<td class=\"num\">{esc(r.get('pl', ''))}</td><td class=\"num\">{_tps(r.get('speed_pp'))}"
                             f"</td><td class=\"num\">{_tps(r.get('speed_tg'))}</td><td class=\"num\">"
                             f"{_tps(r.get('speed'))}</td><td>{esc(b.get('upg_note') or '')}</td></tr>")
        parts.append("<h3>Batched decoding (llama-batched-bench)</h3><p class=\"note\">B sequences of "
                     f"{esc(s.get('n_prompt', '?'))} prompt and {esc(s.get('n_gen', '?'))} generated tokens at once; "
                     "S_PP, S_TG and S are prompt, generation and overall tok/s across the batch, from the "
                     "repetition with the median S.</p>"
                     "<table class=\"summary narrow\"><tr><th>File</th><th>Type</th><th>B</th><th>S_PP t/s</th>"
                     "<th>S_TG t/s</th><th>S t/s</th><th>UPG</th></tr>" + "".join(brows) + "</table>")
    return "".join(parts) + "</section>"
