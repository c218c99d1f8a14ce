#!/usr/bin/env bash
# Runs the benchmark suite (build/upg-bench, Google Benchmark) and writes DIR/bench.json
# plus a self-contained HTML report DIR/report.html (scripts/bench-report.py).
#
# Usage: scripts/bench.sh [--filter REGEX] [--baseline OLD.json] [--threshold PCT]
#                         [--fail-on-regression PCT] [--out DIR] [--repetitions N]
#                         [--smoke] [--bin PATH] [--no-fetch] [--peer PEER.json]
#   --filter REGEX          only benchmarks whose name matches (Google Benchmark regex)
#   --baseline OLD.json     mark each benchmark faster / slower / unchanged against OLD.json
#   --threshold PCT         median changes within +-PCT% count as noise (default 5)
#   --fail-on-regression P  exit 1 when a benchmark is slower than the baseline by more than P%
#   --out DIR               where bench.json and report.html go (default bench-results/)
#   --repetitions N         repetitions per benchmark (default 5)
#   --smoke                 one short repetition of each benchmark (the ctest bench-smoke);
#                           sets UPG_BENCH_SMOKE=1 so the end-to-end runs decode fewer tokens
#   --bin PATH              run this upg-bench instead of building build/upg-bench
#                           (or $UPG_BUILD_DIR/upg-bench)
#   --no-fetch              do not fetch the default model (UPG_E2E then reports an error)
#   --peer PEER.json        also show this run of bench/peer/peer-bench.py (UPG beside llama.cpp)
# Exit status: 0 fine, 1 regression past --fail-on-regression, 2 usage or input error,
# other: the build or the benchmark binary failed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '4,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
die() { echo "bench: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

filter="" baseline="" threshold="" fail_pct="" out=bench-results reps=5 smoke=0 bin="" fetch=1 peer=""
while [ $# -gt 0 ]; do
  case "$1" in
    --filter) need "$@"; filter=$2; shift 2 ;;
    --baseline) need "$@"; baseline=$2; shift 2 ;;
    --threshold) need "$@"; threshold=$2; shift 2 ;;
    --fail-on-regression) need "$@"; fail_pct=$2; shift 2 ;;
    --out) need "$@"; out=$2; shift 2 ;;
    --repetitions) need "$@"; reps=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --bin) need "$@"; bin=$2; shift 2 ;;
    --no-fetch) fetch=0; shift ;;
    --peer) need "$@"; peer=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "bench: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "--repetitions must be a positive integer, not '$reps'"
[ -z "$fail_pct" ] || [ -n "$baseline" ] || die "--fail-on-regression needs --baseline"
[ -z "$baseline" ] || [ -f "$baseline" ] || die "baseline $baseline: no such file"
[ -z "$peer" ] || [ -f "$peer" ] || die "peer $peer: no such file"

if [ -z "$bin" ]; then
  # The configuration scripts/build.sh release uses; only the benchmark target is built,
  # so a layer whose tests are mid-edit does not block a benchmark run.
  dir=${UPG_BUILD_DIR:-build}
  scripts/fetch-xgrammar.sh  # the grammar engine's sources, as scripts/build.sh fetches them
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$dir" --target upg-bench -j "${UPG_JOBS:-$(nproc)}"
  bin=$dir/upg-bench
fi
[ -x "$bin" ] || die "$bin: no benchmark binary (build it, or pass --bin)"
if [ "$fetch" = 1 ] && ! scripts/fetch-model.sh; then
  echo "bench: could not fetch the default model; UPG_E2E will report an error" >&2
fi

mkdir -p "$out"
json=$out/bench.json
if [ -n "$baseline" ]; then
  # Copied first: the baseline is often the previous $out/bench.json, which this run replaces.
  if [ "$(realpath "$baseline")" != "$(realpath -m "$out/baseline.json")" ]; then
    cp "$baseline" "$out/baseline.json"
  fi
  baseline=$out/baseline.json
fi

# Recorded in the JSON context, where the report finds them: Google Benchmark knows
# neither the build type of UPG nor the CPU's name. Commas and '=' would split the flag.
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$bin")/CMakeCache.txt" 2>/dev/null || true)
cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n1 | tr ',=' '  ')
context="upg_build_type=${build_type:-unknown}"
[ -z "$cpu_model" ] || context+=",cpu_model=$cpu_model"
# Smoke runs shrink some workloads under the same names; the report warns on comparing them.
[ "$smoke" = 0 ] || context+=",upg_smoke=1"

args=(--benchmark_out="$json.tmp" --benchmark_out_format=json --benchmark_context="$context")
if [ "$smoke" = 1 ]; then
  # Google Benchmark 1.7 takes min_time as plain seconds ("0.01s" is 1.8+ syntax).
  args+=(--benchmark_repetitions=1 --benchmark_min_time=0.01)
  export UPG_BENCH_SMOKE=1
else
  args+=(--benchmark_repetitions="$reps")
fi
[ -z "$filter" ] || args+=(--benchmark_filter="$filter")

echo "bench: $bin ${args[*]}" >&2
rm -f "$json.tmp"
"$bin" "${args[@]}"
if [ ! -s "$json.tmp" ]; then  # Google Benchmark exits 0 with no output when nothing matched
  rm -f "$json.tmp"
  die "no benchmark ran${filter:+ (does --filter '$filter' match any? $bin --benchmark_list_tests)}"
fi
# The load at the end tells whether something else ran meanwhile (Google Benchmark
# records it only at the start).
python3 - "$json.tmp" <<'PY'
import json, os, sys
with open(sys.argv[1], encoding="utf-8") as f:
    data = json.load(f)
data.setdefault("context", {})["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(data, f, indent=2)
PY
# Renamed only after a complete run, so a crash never leaves a half-written bench.json.
mv "$json.tmp" "$json"

report=(python3 scripts/bench-report.py "$json" -o "$out/report.html")
[ -z "$baseline" ] || report+=(--baseline "$baseline")
[ -z "$threshold" ] || report+=(--threshold "$threshold")
[ -z "$fail_pct" ] || report+=(--fail-on-regression "$fail_pct")
[ -z "$peer" ] || report+=(--peer "$peer")
rc=0
"${report[@]}" || rc=$?
errors=$(grep -c '"error_occurred": true' "$json" || true)
[ "$errors" = 0 ] || echo "bench: $errors benchmark run(s) reported an error; see $out/report.html" >&2
exit "$rc"
