#!/usr/bin/env bash
# Profiles the decode hot path of build/upg with perf and writes an SVG flame graph
# (scripts/flamegraph.py), then prints the top 15 symbols by self time.
#
# Usage: scripts/profile-decode.sh MODEL [OUT.svg]
#   MODEL     a model upg runs (.upg, .gguf, .safetensors or a Hugging Face directory)
#   OUT.svg   where the flame graph goes (default docs/profile/decode.svg)
# Environment:
#   UPG_BIN          the upg binary (default build/upg)
#   UPG_THREADS      threads for the forward pass (default 2)
#   UPG_CALL_GRAPH   perf --call-graph mode (default fp: needs frame pointers, which a plain
#                    -O3 build omits, so stacks come out shallow; dwarf: deep, much bigger data)
# The run is `upg run MODEL -p PROMPT -n 256 --temp 0 --ignore-eos`: greedy and fixed length,
# so decode dominates and two runs profile the same work. Sampling is cpu-clock at 2 kHz:
# this VM has no hardware counters.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

die() { echo "profile-decode: $*" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

model="$1"
out="${2:-$root/docs/profile/decode.svg}"
bin="${UPG_BIN:-$root/build/upg}"
threads="${UPG_THREADS:-2}"
call_graph="${UPG_CALL_GRAPH:-fp}"
prompt="Explain how a CPU cache works and why memory bandwidth limits the speed of text generation."
tokens=256

command -v perf >/dev/null 2>&1 || die "perf not found; install it with: apt-get install linux-perf"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
[ -x "$bin" ] || die "no upg binary at $bin (build it with scripts/build.sh, or set UPG_BIN)"
[ -e "$model" ] || die "no model at $model"

mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "profile-decode: recording $(basename "$bin") run $model ($threads threads, $tokens tokens)" >&2
# upg's generated text is noise here; its stats line (stderr) shows the decode speed under perf.
if ! perf record -e cpu-clock -F 2000 --call-graph "$call_graph" -o "$tmp/perf.data" -- \
    "$bin" run "$model" -p "$prompt" -n "$tokens" --temp 0 --ignore-eos -t "$threads" >/dev/null; then
  die "perf record failed (not root? try: sysctl kernel.perf_event_paranoid=1)"
fi

perf script -i "$tmp/perf.data" 2>/dev/null >"$tmp/perf.txt"
python3 "$root/scripts/flamegraph.py" "$tmp/perf.txt" -o "$out" \
  --title "upg decode: $(basename "$model"), $tokens tokens, $threads threads, cpu-clock 2 kHz"
echo "profile-decode: wrote $out" >&2

echo "Top 15 symbols by self time (all samples, load and prompt included):"
# -g none: the call chains recorded with -g would otherwise be printed under every entry.
# perf pads each row to the longest name and appends empty IPC columns (` -  -`): trim both.
perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
  awk '/^ +[0-9.]+%/ && n < 15 { n++; sub(/^ +/, ""); sub(/( +-)* *$/, ""); print }'
