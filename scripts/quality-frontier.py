#!/usr/bin/env python3
"""Draws docs/quality-frontier.svg from docs/quality-points.csv: bytes per weight against
perplexity, one panel per text (chat, KJV), UPG files and GGUF quants of the same model,
each family's Pareto frontier (no point of the family smaller and better) joined by a line.
When the CSV has decode speeds (scripts/frontier-speed.py), also docs/frontier-speed.svg:
bytes per weight against decode tokens per second, UPG's engine on every file and
llama.cpp's on the GGUF ones, from the same run.

    python3 scripts/quality-frontier.py [--points docs/quality-points.csv] [--out docs/quality-frontier.svg]
                                        [--speed-out docs/frontier-speed.svg]

The points are QUALITY.md's measured rows, written by scripts/quality.py; nothing here
computes or adds a number. The SVG is written by hand (no plotting package is installed
on the project's machines, and two scatter panels need none).
"""
import argparse
import csv
import math
import os
import re
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLE = {"UPG": ("#1f77b4", "circle"), "GGUF": ("#d62728", "square"), "source": ("#2ca02c", "diamond")}
W, H = 560, 420           # one panel
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 52


def read_points(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["bpw"] = float(r["bytes_per_weight"])
        r["chat"] = float(r["chat_ppl"])
        r["kjv"] = float(r["kjv_ppl"])
        r["tg"] = float(r["decode_tok_s"]) if r.get("decode_tok_s") else None
        r["tg_llama"] = float(r["llama_decode_tok_s"]) if r.get("llama_decode_tok_s") else None
    return rows


def frontier(points, key):
    """Points no other point beats on both size and perplexity, by size."""
    best, out = math.inf, []
    for p in sorted(points, key=lambda p: (p["bpw"], p[key])):
        if p[key] < best:
            out.append(p)
            best = p[key]
    return out


def marker(shape, x, y, color, r=4.5):
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}" fill-opacity="0.75"/>'
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" fill="{color}" fill-opacity="0.75"/>'
    return (f'<path d="M{x:.1f},{y - r - 1.5:.1f} L{x + r + 1.5:.1f},{y:.1f} L{x:.1f},{y + r + 1.5:.1f} '
            f'L{x - r - 1.5:.1f},{y:.1f} Z" fill="{color}"/>')


def x_axis(points, ox):
    """The bytes-per-weight axis of a panel at x offset ox: its scale and its elements."""
    xs = [p["bpw"] for p in points]
    x0, x1 = math.floor(min(xs) * 10) / 10, math.ceil(max(xs) * 10) / 10
    sx = lambda x: ox + LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT)
    e = [f'<rect x="{ox + LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" '
         'stroke="#888"/>']
    x = x0
    while x <= x1 + 1e-9:
        e.append(f'<line x1="{sx(x):.1f}" y1="{H - BOTTOM}" x2="{sx(x):.1f}" y2="{H - BOTTOM + 4}" stroke="#888"/>')
        e.append(f'<text x="{sx(x):.1f}" y="{H - BOTTOM + 17}" text-anchor="middle">{x:.1f}</text>')
        x += 0.1
    e.append(f'<text x="{ox + (W + LEFT - RIGHT) / 2}" y="{H - 12}" text-anchor="middle">bytes per weight '
             '(whole file)</text>')
    return sx, e


def y_label(ox, text):
    return (f'<text x="{ox + 16}" y="{(H + TOP - BOTTOM) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 {ox + 16} {(H + TOP - BOTTOM) / 2})">{escape(text)}</text>')


def panel(points, key, title, ox, y_cap):
    """One panel's SVG elements at x offset ox; y is logarithmic, up to y_cap."""
    shown = [p for p in points if p[key] <= y_cap]
    y0 = min(p[key] for p in points) * 0.95
    ly0, ly1 = math.log(y0), math.log(y_cap)
    sx, e = x_axis(points, ox)
    sy = lambda y: TOP + (ly1 - math.log(y)) / (ly1 - ly0) * (H - TOP - BOTTOM)
    e.insert(0, f'<text x="{ox + W / 2}" y="20" text-anchor="middle" font-weight="bold">{escape(title)}</text>')
    for t in (3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200):
        if y0 <= t <= y_cap:
            e.append(f'<line x1="{ox + LEFT}" y1="{sy(t):.1f}" x2="{ox + W - RIGHT}" y2="{sy(t):.1f}" '
                     'stroke="#eee"/>')
            e.append(f'<text x="{ox + LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t}</text>')
    e.append(y_label(ox, "perplexity (log scale)"))
    for family in ("UPG", "GGUF"):
        f = [p for p in frontier([p for p in points if p["kind"] == family], key) if p[key] <= y_cap]
        if len(f) > 1:
            d = " ".join(f"{sx(p['bpw']):.1f},{sy(p[key]):.1f}" for p in f)
            e.append(f'<polyline points="{d}" fill="none" stroke="{STYLE[family][0]}" stroke-width="1.5" '
                     'stroke-dasharray="4 3"/>')
        for p in f:  # the frontier's points are named: UPG's above right, GGUF's below left
            dx, dy, anchor = (7, -6, "start") if family == "UPG" else (-7, 14, "end")
            e.append(f'<text x="{sx(p["bpw"]) + dx:.1f}" y="{sy(p[key]) + dy:.1f}" font-size="9" '
                     f'text-anchor="{anchor}" fill="{STYLE[family][0]}">{escape(p["short"])}</text>')
    for p in shown:
        color, shape = STYLE[p["kind"]]
        e.append(f'<g><title>{escape(p["label"])}: {p["bpw"]} B/w, {key} {p[key]:.3f}</title>'
                 f'{marker(shape, sx(p["bpw"]), sy(p[key]), color)}</g>')
    hidden = len(points) - len(shown)
    if hidden:
        e.append(f'<text x="{ox + W - RIGHT - 4}" y="{TOP + 14}" text-anchor="end" font-size="10" fill="#666">'
                 f'{hidden} points above {y_cap:g} not shown</text>')
    return e


def speed_panel(points):
    """Bytes per weight against decode tokens per second: UPG's engine on every file
    (filled), llama.cpp's on the GGUF ones (hollow), one run; UPG files' frontier (no file
    smaller and faster) dashed."""
    sx, e = x_axis(points, 0)
    speeds = [p[k] for p in points for k in ("tg", "tg_llama") if p.get(k)]
    y1 = max(speeds) * 1.08
    sy = lambda y: TOP + (1 - y / y1) * (H - TOP - BOTTOM)
    e.insert(0, f'<text x="{W / 2}" y="20" text-anchor="middle" font-weight="bold">decode speed, 128 tokens, '
                '2 threads</text>')
    step = 10 ** math.floor(math.log10(y1 / 4))
    step *= 2 if y1 / step > 10 else 1
    t = 0.0
    while t <= y1:
        e.append(f'<line x1="{LEFT}" y1="{sy(t):.1f}" x2="{W - RIGHT}" y2="{sy(t):.1f}" stroke="#eee"/>')
        e.append(f'<text x="{LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
        t += step
    e.append(y_label(0, "tokens per second"))
    best, front = 0.0, []
    for p in sorted((p for p in points if p["kind"] == "UPG" and p.get("tg")), key=lambda p: (p["bpw"], -p["tg"])):
        if p["tg"] > best:
            front.append(p)
            best = p["tg"]
    if len(front) > 1:
        d = " ".join(f"{sx(p['bpw']):.1f},{sy(p['tg']):.1f}" for p in front)
        e.append(f'<polyline points="{d}" fill="none" stroke="{STYLE["UPG"][0]}" stroke-width="1.5" '
                 'stroke-dasharray="4 3"/>')
    for p in points:
        color, shape = STYLE[p["kind"]]
        for key, who in (("tg", "UPG"), ("tg_llama", "llama.cpp")):
            if not p.get(key):
                continue
            m = marker(shape, sx(p["bpw"]), sy(p[key]), color)
            if key == "tg_llama":  # hollow: the same shape, outlined
                m = m.replace(f'fill="{color}"', f'fill="none" stroke="{color}" stroke-width="1.5"')
            e.append(f'<g><title>{escape(p["label"])}: {p["bpw"]} B/w, {who} {p[key]:.1f} tok/s</title>{m}</g>')
        if p["kind"] != "UPG" or p in front:
            key = "tg" if p.get("tg") else "tg_llama"
            name = "Q4_1 source (as stored)" if p["kind"] == "source" else p["short"]
            e.append(f'<text x="{sx(p["bpw"]) + 7:.1f}" y="{sy(p[key]) - 6:.1f}" font-size="9" '
                     f'fill="{color}">{escape(name)}</text>')
    legend = [marker("circle", 80, H + 14, STYLE["UPG"][0]) + f'<text x="90" y="{H + 18}">UPG file, UPG</text>',
              marker("square", 200, H + 14, STYLE["GGUF"][0]) + f'<text x="210" y="{H + 18}">GGUF, UPG</text>',
              marker("square", 300, H + 14, STYLE["GGUF"][0]).replace(
                  f'fill="{STYLE["GGUF"][0]}"', f'fill="none" stroke="{STYLE["GGUF"][0]}" stroke-width="1.5"') +
              f'<text x="310" y="{H + 18}">GGUF, llama.cpp</text>']
    return e + legend


def short(label):
    """A label short enough to sit beside its point."""
    s = label.replace(" (llama-quantize)", "").replace(", 8k calibration tokens", "").replace(" zero points", " zp")
    s = s.replace(" embedding", " emb").replace("unstructured ", "").replace("dense gptq ", "gptq ")
    s = re.sub(r"mixed precision for ([0-9.]+) bytes per weight", r"--target-bpw \1", s).replace(" act-order", "")
    return s if len(s) <= 38 else s[:37] + "…"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", default=os.path.join(ROOT, "docs", "quality-points.csv"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "quality-frontier.svg"))
    ap.add_argument("--speed-out", default=os.path.join(ROOT, "docs", "frontier-speed.svg"))
    args = ap.parse_args()
    points = read_points(args.points)
    for p in points:
        p["short"] = short(p["label"])
    source = next(p for p in points if p["kind"] == "source")
    e = panel(points, "chat", "chat transcripts (chat-heldout.txt)", 0, source["chat"] * 4)
    e += panel(points, "kjv", "King James Bible (kjv-slice.txt)", W, source["kjv"] * 4)
    legend = []
    for i, (name, text) in enumerate((("UPG", "UPG file (upg compress)"), ("GGUF", "GGUF (llama-quantize)"),
                                      ("source", "Q4_1 source"))):
        color, shape = STYLE[name]
        legend.append(marker(shape, 80 + i * 200, H + 14, color) +
                      f'<text x="{90 + i * 200}" y="{H + 18}">{text}</text>')
    legend.append(f'<text x="690" y="{H + 18}" fill="#555">dashed: each family\'s frontier; every point a '
                  'measured row of QUALITY.md</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 30}" '
           f'viewBox="0 0 {2 * W} {H + 30}" font-family="sans-serif" font-size="11">\n'
           f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(e + legend) + "\n</svg>\n")
    with open(args.out + ".tmp", "w") as fh:
        fh.write(svg)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out} ({len(points)} points)")
    timed = [p for p in points if p.get("tg") or p.get("tg_llama")]
    if timed:
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 30}" '
               f'viewBox="0 0 {W} {H + 30}" font-family="sans-serif" font-size="11">\n'
               f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(speed_panel(timed)) + "\n</svg>\n")
        with open(args.speed_out + ".tmp", "w") as fh:
            fh.write(svg)
        os.replace(args.speed_out + ".tmp", args.speed_out)
        print(f"wrote {args.speed_out} ({len(timed)} points)")


if __name__ == "__main__":
    main()
