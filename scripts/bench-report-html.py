"""HTML building blocks of bench-report.py: number formatting, inline SVG charts (horizontal
bars; scatter with a fitted line) and the style sheet. Standard library only; the charts
are plain SVG elements so the report needs no JS, fonts or network."""
import html
import math


TIME_TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
UNIT_TEXT = {"ns": "ns", "us": "\u00b5s", "ms": "ms", "s": "s"}


# ---------------------------------------------------------------------------- formatting

def fmt_num(v, digits=3):
    if v is None:
        return "\u2013"
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag >= digits - 1:
        return f"{v:,.0f}"
    return f"{v:.{digits - 1 - mag}f}"


def fmt_si(v, digits=3):
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return fmt_num(v / factor, digits) + prefix
    return fmt_num(v, digits)


def fmt_tick(v):
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:g}{prefix}"
    return f"{v:g}"


def fmt_time(ns, unit):
    return "\u2013" if ns is None else f"{fmt_num(ns / TIME_TO_NS[unit])} {UNIT_TEXT[unit]}"


def fmt_counter(key, v):
    if key == "bytes_per_second":
        return f"{fmt_num(v / 1e9)} GB/s"
    if key == "items_per_second":
        return f"{fmt_si(v)} items/s"
    if key.endswith("_tok_s"):
        return f"{key[:-len('_tok_s')]} {fmt_num(v, 4)} tok/s"
    return f"{key} {fmt_si(v)}"


def esc(s):
    return html.escape(str(s), quote=True)


# ---------------------------------------------------------------------------- SVG

PALETTE = ["#3867d6", "#20bf6b", "#fa8231", "#8854d0", "#eb3b5a", "#0fb9b1", "#f7b731"]
BASELINE_COLOR = "#8a8f98"


def nice_ticks(lo, hi, count=5):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def hbar_chart(rows, axis_label):
    """rows: (label, value, text beside the bar, colour). Horizontal bars from zero."""
    label_w, bar_w, text_w, row_h, top = 200, 440, 340, 26, 44
    width = label_w + bar_w + text_w
    height = top + row_h * len(rows) + 12
    vmax = max((v for _, v, _, _ in rows), default=1) or 1
    ticks = nice_ticks(0, vmax)
    scale = bar_w / ticks[-1]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(axis_label)}">',
           f'<text x="{label_w + bar_w / 2}" y="13" class="axis" text-anchor="middle">{esc(axis_label)}</text>']
    for t in ticks:
        x = label_w + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 8}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{top - 12}" class="tick" text-anchor="middle">{fmt_tick(t)}</text>')
    for i, (label, value, text, colour) in enumerate(rows):
        y = top + i * row_h
        w = max(value * scale, 1.0)
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" class="lbl" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}"/>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" class="val">{esc(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def scatter_fit_plot(series, x_label, y_label, y_unit_ns):
    """series: (name, [(x, y_ns, point label)], (slope, intercept) or None, colour)."""
    width, height = 860, 420
    left, right, top, bottom = 80, 30, 20, 50
    pw, ph = width - left - right, height - top - bottom
    xs = [p[0] for _, pts, _, _ in series for p in pts]
    ys = [p[1] / y_unit_ns for _, pts, _, _ in series for p in pts]
    xt, yt = nice_ticks(0, max(xs)), nice_ticks(0, max(ys))

    def px(x):
        return left + x / xt[-1] * pw

    def py(y):
        return top + ph - y / yt[-1] * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(y_label)} against {esc(x_label)}">']
    for t in xt:
        out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{top + ph}" class="grid"/>')
        out.append(f'<text x="{px(t):.1f}" y="{top + ph + 16}" class="tick" text-anchor="middle">{fmt_tick(t)}</text>')
    for t in yt:
        out.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + pw}" y2="{py(t):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{py(t) + 4:.1f}" class="tick" text-anchor="end">{fmt_tick(t)}</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axisline"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="axisline"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" class="axis" text-anchor="middle">{esc(x_label)}</text>')
    out.append(f'<text x="16" y="{top + ph / 2}" class="axis" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + ph / 2})">{esc(y_label)}</text>')
    for name, pts, fit, colour in series:
        if fit:
            slope, intercept = fit
            x0, x1 = 0.0, xt[-1]
            y0, y1 = (intercept + slope * x0) / y_unit_ns, (intercept + slope * x1) / y_unit_ns
            out.append(f'<line x1="{px(x0):.1f}" y1="{py(y0):.1f}" x2="{px(x1):.1f}" y2="{py(y1):.1f}" '
                       f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="6 4" class="fit"/>')
        for x, y, label in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y / y_unit_ns):.1f}" r="4.5" fill="{colour}"/>')
            out.append(f'<text x="{px(x) + 7:.1f}" y="{py(y / y_unit_ns) - 7:.1f}" class="tick">{esc(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def pick_time_unit(values_ns):
    top = max(values_ns)
    for unit in ("s", "ms", "us"):
        if top >= TIME_TO_NS[unit]:
            return unit
    return "ns"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1e2329;
margin:24px auto;max-width:1180px;padding:0 16px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #dde1e6;
padding-bottom:4px}h3{font-size:15px;margin:14px 0 4px}
.note,.muted{color:#5f6b7a}code{font:12px ui-monospace,Menlo,Consolas,monospace}
table{border-collapse:collapse}th,td{padding:3px 8px;vertical-align:top;text-align:left}
table.kv th{color:#5f6b7a;font-weight:600;white-space:nowrap}
table.summary{width:100%;font-size:12.5px}table.narrow{width:auto;margin-top:8px}table.summary tr:nth-child(even){background:#f6f8fa}
table.summary th{border-bottom:2px solid #c9d1d9;white-space:nowrap}
td.name{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
td.num{text-align:right;white-space:nowrap}tr.group td{background:#e9eef5;font-weight:700;padding-top:6px}
.noisy{color:#b35c00;font-weight:600}
.warn{background:#fff4e5;border-left:4px solid #f59f00;padding:6px 10px;color:#6b4200}.error{color:#b3261e}
.faster{color:#1a7f37;font-weight:600}.slower{color:#b3261e;font-weight:600}.unchanged{color:#5f6b7a}
svg{display:block;margin:6px 0 10px;font-family:system-ui,Helvetica,Arial,sans-serif}
svg .grid{stroke:#e3e7ec;stroke-width:1}svg .axisline{stroke:#6b7785;stroke-width:1}
svg .tick{font-size:11px;fill:#5f6b7a}svg .axis{font-size:12px;fill:#1e2329;font-weight:600}
svg .lbl{font-size:12.5px;fill:#1e2329}svg .val{font-size:12px;fill:#1e2329}
ul.fits{margin:0;padding-left:18px}
table.peer td.types{font-size:11.5px;color:#5f6b7a;white-space:nowrap}table.peer th{text-align:center}
"""
