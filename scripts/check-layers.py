#!/usr/bin/env python3
"""Checks the layer graph of docs/ARCHITECTURE.md against the #include lines.

The graph is the `upg_layer(upg_<name> <dir> <links...>)` lines of CMakeLists.txt: a
layer may include its own headers and the public headers (include/upg/<layer>/) of the
layers it links. The compiler cannot check this (every library has include/ and src/ on
its path), so this does, as a ctest. Rules, for the non-test sources of every layer but
the CLI (the front end, which may use anything) and for the public headers:
  1. an include names a layer the including layer links, or its own;
  2. another layer's private headers (src/<dir>/*.h) are not included: only its public
     ones (include/upg/<layer>/*.h);
  3. public headers sit in a layer folder (include/upg/<layer>/), none flat in upg/;
  4. no include cycles among the project's headers.
Usage: scripts/check-layers.py [repo root]; prints one line per violation, exits 1 if any.
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
FRONT_ENDS = {"cli"}


def read_layers():
    """{layer: (dir, set of linked layers)} from the upg_layer lines."""
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    layers = {}
    for m in re.finditer(r"^[ \t]*upg_layer\([ \t]*upg_(\w+)[ \t]+([^\s)]+)([^)\n]*)\)", text, re.M):
        deps = {d[len("upg_"):] for d in m.group(3).split() if d.startswith("upg_")}
        layers[m.group(1)] = (m.group(2), deps)
    return layers


def source_files(top):
    for d, _, files in os.walk(top):
        for f in files:
            if f.endswith((".h", ".cpp")):
                yield os.path.join(d, f)


def main():
    layers = read_layers()
    dir_to_layer = {d: name for name, (d, _) in layers.items()}
    errors = []

    def owner_of(include):
        """(layer, public?) of an include path, or (None, None) for a third-party one."""
        parts = include.split("/")
        if parts[0] == "upg":
            if len(parts) == 2:
                return ("<flat>", True)
            return (parts[1], True)
        for d, name in dir_to_layer.items():
            if include.startswith(d + "/") and "/" not in include[len(d) + 1:]:
                return (name, False)
        return (None, None)

    def check_file(path, layer):
        allowed = {layer} | layers[layer][1]
        text = open(path, encoding="utf-8", errors="replace").read()
        for m in INCLUDE_RE.finditer(text):
            inc = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            where = f"{os.path.relpath(path, ROOT)}:{line}"
            owner, public = owner_of(inc)
            if owner is None:
                continue
            if owner == "<flat>":
                errors.append(f"{where}: {inc} is a public header outside a layer folder (include/upg/<layer>/)")
            elif owner not in layers:
                errors.append(f"{where}: {inc} names no layer of CMakeLists.txt")
            elif owner not in allowed:
                errors.append(f"{where}: layer {layer} includes {inc} of layer {owner}, which it does not link")
            elif owner != layer and not public:
                errors.append(f"{where}: layer {layer} includes {inc}, a header private to layer {owner}")

    for name, (d, _) in layers.items():
        if name in FRONT_ENDS:
            continue
        for path in source_files(os.path.join(ROOT, "src", d)):
            if path.endswith("-test.cpp") or "test-util" in path or os.path.basename(path).startswith("test-"):
                continue
            if os.path.relpath(os.path.dirname(path), os.path.join(ROOT, "src")) != d:
                continue  # a nested layer's own folder is checked as that layer
            check_file(path, name)
    pub = os.path.join(ROOT, "include", "upg")
    for entry in sorted(os.listdir(pub)):
        full = os.path.join(pub, entry)
        if os.path.isfile(full):
            errors.append(f"include/upg/{entry}: a public header outside a layer folder (include/upg/<layer>/)")
        elif entry not in layers:
            errors.append(f"include/upg/{entry}/: no layer of CMakeLists.txt is named {entry}")
        else:
            for path in source_files(full):
                check_file(path, entry)

    # Include cycles among the project's headers (depth-first search, grey/black marks).
    def resolve(inc):
        for base in (os.path.join(ROOT, "include"), os.path.join(ROOT, "src")):
            p = os.path.join(base, inc)
            if os.path.isfile(p):
                return os.path.normpath(p)
        return None

    graph = {}
    for top in (os.path.join(ROOT, "include"), os.path.join(ROOT, "src")):
        for path in source_files(top):
            if path.endswith(".h"):
                text = open(path, encoding="utf-8", errors="replace").read()
                graph[os.path.normpath(path)] = [r for r in map(resolve, INCLUDE_RE.findall(text)) if r]
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                errors.append("include cycle: " + " -> ".join(os.path.relpath(c, ROOT) for c in cycle))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])

    for e in errors:
        print(e)
    if errors:
        print(f"check-layers: {len(errors)} violation(s) of the layer graph (docs/ARCHITECTURE.md)", file=sys.stderr)
        return 1
    print(f"check-layers: {len(layers)} layers, {len(graph)} headers, no violation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
