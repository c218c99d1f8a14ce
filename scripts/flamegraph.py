#!/usr/bin/env python3
"""Fold `perf script` call stacks and render them as a self-contained SVG flame graph.

Usage: perf script | scripts/flamegraph.py --title "what ran" > out.svg
       scripts/flamegraph.py perf.txt --folded out.folded -o out.svg

Input is the text `perf script` prints for a `perf record -g` run: one header line per
sample (`comm pid [cpu] time: period event:`), then one indented line per frame, leaf
first (`addr symbol+0xoff (dso)`), then a blank line. Each sample counts once, whatever
its period, so widths are sample counts (with a fixed -F rate, proportional to CPU time).
Python 3 standard library only: this must run on a bare Debian box with nothing fetched.
"""
import argparse
import functools
import re
import sys
import zlib
from xml.sax.saxutils import escape

# `    7f12ab upg::k::foo<4>(long, int)+0x1c (/path/build/upg)`. The dso is the last
# parenthesised group after whitespace; it never holds parentheses itself, while the
# symbol may (argument lists, `(anonymous namespace)`): the lazy symbol group stops there.
FRAME_RE = re.compile(r"^\s+([0-9a-fA-F]+)\s+(.+?)(?:\s+\(([^()]*)\))?\s*$")
OFFSET_RE = re.compile(r"\+0x[0-9a-fA-F]+$")
# Spelled-out standard types make template arguments unreadable; these are exact.
STD_ALIASES = [
    ("std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string"),
    ("std::basic_string_view<char, std::char_traits<char> >", "std::string_view"),
    ("std::__cxx11::", "std::"),
]
ANON = "\x01"  # placeholder so the argument-list stripper leaves `(anon)` alone
OPERATOR_CHARS = set("<>=!+-*/%^&|~,[]")


def is_operator_end(sym, i):
    """True when `operator` (the keyword, not `my_operator`) ends right before sym[i]."""
    return sym.endswith("operator", 0, i) and (i == 8 or not (sym[i - 9].isalnum() or sym[i - 9] == "_"))


@functools.lru_cache(maxsize=None)  # a profile repeats the same few hundred symbols thousands of times
def shorten(sym):
    """Drop argument lists and cv/ref qualifiers of a demangled C++ name; keep templates.

    `ns::(anonymous namespace)::f<4>(long) const` -> `ns::(anon)::f<4>`. Parentheses are
    dropped only outside template brackets, so `std::function<void (int)>` survives, and
    `operator()`, `operator<<` etc. are copied as names, not read as brackets.
    """
    sym = OFFSET_RE.sub("", sym.strip())
    for long_name, short in STD_ALIASES:
        sym = sym.replace(long_name, short)
    sym = sym.replace("(anonymous namespace)", ANON)
    out, angle, paren, i = [], 0, 0, 0
    while i < len(sym):
        c = sym[i]
        if paren == 0 and is_operator_end(sym, i) and (c in OPERATOR_CHARS or sym.startswith("()", i)):
            j = i + 2 if sym.startswith("()", i) else i
            while j < len(sym) and sym[j] in OPERATOR_CHARS:
                j += 1
            out.append(sym[i:j])  # the operator's own spelling, e.g. `()` or `<<`
            i = j
            continue
        if paren:  # inside a dropped argument list: track nesting, emit nothing
            paren += {"(": 1, ")": -1}.get(c, 0)
        elif c == "(" and angle == 0:
            paren = 1
        else:
            angle += {"<": 1, ">": -1}.get(c, 0) if c in "<>" else 0
            angle = max(angle, 0)  # an unbalanced `>` (operator> missed) must not wedge us
            out.append(c)
        i += 1
    name = re.sub(r"(\s+(const|volatile|&|&&))+$", "", "".join(out).strip())
    return name.replace(ANON, "(anon)").replace(" >", ">") or "[unknown]"  # `<std::string >`


def frame_name(sym):
    """`[unknown]` stays as is (lost frames are worth seeing); anything else is shortened."""
    sym = sym.strip()
    return sym if sym.startswith("[unknown]") else shorten(sym)


def fold(lines):
    """Return {"root;...;leaf": samples} from `perf script` lines. Malformed lines are skipped."""
    folded, stack, in_sample = {}, [], False

    def flush():
        if stack:
            key = ";".join(reversed(stack))  # perf prints the leaf first; folded wants root first
            folded[key] = folded.get(key, 0) + 1
        stack.clear()

    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            in_sample = False
        elif not line[0].isspace():  # a sample header, e.g. `upg 1234 [000] 1.5: 250000 cpu-clock:`
            flush()
            in_sample = ":" in line
        elif in_sample:
            m = FRAME_RE.match(line)
            if m:
                stack.append(frame_name(m.group(2)).replace(";", ":"))  # `;` separates frames
    flush()
    return folded


class Node:
    __slots__ = ("name", "count", "children")

    def __init__(self, name):
        self.name, self.count, self.children = name, 0, {}


def build_tree(folded):
    root = Node("all")
    for stack, n in folded.items():
        node = root
        node.count += n
        for name in stack.split(";"):
            node = node.children.setdefault(name, Node(name))
            node.count += n
    return root


def colour(name):
    """A warm colour that depends on the name only, so a function keeps its colour across graphs."""
    h = zlib.crc32(name.encode())  # not hash(): that is salted per process
    return "rgb(%d,%d,%d)" % (205 + h % 51, 230 * ((h >> 8) % 256) // 255, 55 * ((h >> 16) % 256) // 255)


def render(folded, title, min_width=0.002, width=1200, frame_h=16, font=12):
    """Return the SVG text: root at the bottom, each frame as wide as its share of samples."""
    root = build_tree(folded)
    total = root.count
    pad, top = 10, 3 * frame_h + 8  # room for the title and the sample-count line
    plot_w = width - 2 * pad
    min_samples = min_width * total
    boxes, max_depth = [], 0

    def walk(node, x, depth):  # x in samples from the left edge
        nonlocal max_depth
        boxes.append((node, x, depth))
        max_depth = max(max_depth, depth)
        for child in sorted(node.children.values(), key=lambda c: c.name):  # merge-friendly order
            if child.count >= min_samples:  # dropped frames leave a gap; their children are smaller
                walk(child, x, depth + 1)
            x += child.count

    walk(root, 0, 0)
    height = top + (max_depth + 1) * frame_h + 2 * pad
    char_w = font * 0.6  # average monospace advance; good enough to decide whether a label fits
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="{font}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fdf6e3"/>',
        f'<text x="{width / 2}" y="{frame_h + 4}" text-anchor="middle" font-size="{font + 5}">{xml_text(title)}</text>',
        f'<text x="{width / 2}" y="{2 * frame_h + 8}" text-anchor="middle" fill="#555">'
        f"{total} samples; hover a frame for its full name and share</text>",
    ]
    for node, x, depth in boxes:
        rx, rw = pad + plot_w * x / total, plot_w * node.count / total
        ry = height - pad - (depth + 1) * frame_h
        tip = f"{node.name} ({node.count} samples, {100.0 * node.count / total:.2f}%)"
        fill = "rgb(230,150,60)" if node is root else colour(node.name)
        out.append(f"<g><title>{xml_text(tip)}</title>"
                   f'<rect x="{rx:.2f}" y="{ry}" width="{rw:.2f}" height="{frame_h - 1}" fill="{fill}" rx="2"/>')
        fits = int((rw - 6) / char_w)
        if fits >= 3:  # below three characters a label is noise
            label = node.name if len(node.name) <= fits else node.name[: fits - 2] + ".."
            out.append(f'<text x="{rx + 3:.2f}" y="{ry + frame_h - 4}">{xml_text(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def xml_text(s):
    # XML 1.0 forbids most control characters even escaped; perf output can carry them.
    return escape("".join(c if c >= " " or c in "\t\n" else "?" for c in s))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", nargs="?", help="`perf script` output (default: stdin)")
    ap.add_argument("-o", "--output", help="SVG file to write (default: stdout)")
    ap.add_argument("--title", default="Flame graph", help="title line naming what was profiled")
    ap.add_argument("--folded", metavar="OUT", help="also write the folded stacks (`a;b;c count`) here")
    ap.add_argument("--min-width", type=float, default=0.002,
                    help="drop frames narrower than this fraction of all samples (default 0.002)")
    args = ap.parse_args(argv)
    try:
        if args.input:
            with open(args.input, encoding="utf-8", errors="replace") as f:
                folded = fold(f)
        else:
            folded = fold(open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False))
    except OSError as e:
        print(f"flamegraph: cannot read {args.input}: {e.strerror}", file=sys.stderr)
        return 2
    if not folded:
        print("flamegraph: no samples with call stacks in the input "
              "(expected `perf script` output of a `perf record -g` run)", file=sys.stderr)
        return 1
    try:
        if args.folded:
            with open(args.folded, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {v}\n" for k, v in sorted(folded.items()))
        svg = render(folded, args.title, args.min_width)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(svg)
        else:
            sys.stdout.write(svg)
    except OSError as e:
        print(f"flamegraph: cannot write {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
