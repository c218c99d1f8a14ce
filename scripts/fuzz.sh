#!/usr/bin/env bash
# Runs the libFuzzer harnesses of fuzz/ (built by scripts/build.sh fuzz into build-fuzz/)
# over their seed corpora, each for a bounded time, and fails on any crash, sanitizer
# report, leak, timeout or out-of-memory. fuzz/README.md has the details.
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [HARNESS...]
#
#   -t  seconds per harness (default $UPG_FUZZ_SECONDS, else 30); scripts/test.sh uses this
#   -j  harnesses run at once (default $UPG_FUZZ_JOBS, else the number of cores)
#   HARNESS  names such as gguf-reader-fuzz (default: all of fuzz/*-fuzz.cpp)
#
# New inputs that reach new code go to build-fuzz/fuzz-corpus/<harness>/ (kept between
# runs, never committed); a failing input is saved as build-fuzz/fuzz-artifacts/<harness>/
# crash-*, leak-*, timeout-* or oom-*, and its log is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${UPG_FUZZ_SECONDS:-30}
jobs=${UPG_FUZZ_JOBS:-$(nproc)}
while getopts "t:j:" opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) sed -n '6,10p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for f in fuzz/*-fuzz.cpp; do harnesses+=("$(basename "$f" .cpp)"); done
fi

# Per-harness dictionary and input size cap: large enough for nesting far past the JSON
# depth limit (64 levels, include/upg/core/json.h) and for several GGUF tensors.
settings() {
  case $1 in
    gguf-reader-fuzz) echo "gguf.dict 65536" ;;
    safetensors-reader-fuzz | upg-reader-fuzz | hf-config-fuzz | compressed-tensors-fuzz) echo "json.dict ${UPG_FUZZ_JSON_MAX_LEN:-65536}" ;;
    tokenizer-json-fuzz | tool-call-fuzz) echo "json.dict ${UPG_FUZZ_JSON_MAX_LEN:-65536}" ;;
    bpe-tokenizer-fuzz) echo "text.dict 4096" ;;
    chat-template-fuzz) echo "jinja.dict 32768" ;;  # whole model templates are seeds
    # Short texts: a grammar's compile time grows with its size and repetition counts.
    grammar-fuzz) echo "json.dict 1024" ;;
    *) echo "none 4096" ;;
  esac
}

run_one() {
  local h=$1 dict max_len
  read -r dict max_len <<<"$(settings "$h")"
  local bin=build-fuzz/$h work=build-fuzz/fuzz-corpus/$h art=build-fuzz/fuzz-artifacts/$h
  local log=build-fuzz/fuzz-logs/$h.log
  mkdir -p "$work" "$art" build-fuzz/fuzz-logs
  [ -x "$bin" ] || { echo "fuzz: $bin is missing (scripts/build.sh fuzz)" >&2; return 1; }
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -detect_leaks=1
              -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$art/")
  [ "$dict" = none ] || args+=(-dict="fuzz/dict/$dict")
  local start=$SECONDS rc=0
  # The outer timeout catches a fuzzer that stops making progress altogether.
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout --kill-after=30 $((seconds + 120)) "$bin" "${args[@]}" "$work" "fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ $rc -ne 0 ]; then
    echo "== fuzz: $h FAILED (exit $rc after $((SECONDS - start)) s); log $log, inputs in $art/" >&2
    # The report and the top of its stack (a stack overflow has hundreds of frames), then
    # the lines that name the saved input.
    awk '/ERROR: |runtime error:|fuzz invariant failed|terminate called|ALARM|out-of-memory|deadly signal/ {p = 1}
         p && n < 40 {print substr($0, 1, 300); n++}' "$log" >&2
    grep -E '^(SUMMARY|artifact_prefix|MS:)' "$log" >&2 || tail -n 20 "$log" >&2
    return 1
  fi
  echo "fuzz: $h ok ($((SECONDS - start)) s, $execs runs)" >&2
}

echo "== fuzz: ${#harnesses[@]} harnesses, ${seconds} s each, $jobs at a time" >&2
mkdir -p build-fuzz/fuzz-logs
for h in "${harnesses[@]}"; do
  rm -f "build-fuzz/fuzz-logs/$h.ok"
  (run_one "$h" && touch "build-fuzz/fuzz-logs/$h.ok") &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
done
wait
failed=()
for h in "${harnesses[@]}"; do [ -f "build-fuzz/fuzz-logs/$h.ok" ] || failed+=("$h"); done
if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "== fuzz: all ${#harnesses[@]} harnesses ok" >&2
