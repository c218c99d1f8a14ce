#!/usr/bin/env bash
# UPG's CUDA backend beside llama.cpp's CUDA build on random weights of one shape, in one
# run on one GPU: `upg synth --gguf` writes the GGUF files both engines decode, then
# llama-bench (tg) and llama-batched-bench (aggregate decode at several sequence counts),
# and `upg bench --device cuda` (tg, and tg with --parallel at the same sequence counts)
# on the same files and on UPG files of the same shape
# (`upg synth` with each --upg-file's compression options). Files are made one at a time
# and deleted after their runs, so a 15 GB Phi-4-shaped file needs its size of disk once.
#
# Usage: bench/peer/cuda-peer.sh --config CONFIG [--types q8_0,q4_0] [--upg-file 'NAME:OPTIONS']...
#                                [--n-gen 128] [--depth 0] [--reps 3] [--npl 8,32,128] [--llama-bin DIR]
#                                [--source TAR] [--out DIR] [--keep DIR] [--no-upg-gguf]
#   --config     a Hugging Face config.json (bench/configs/)
#   --types      GGUF types for both engines (f16, q8_0, q4_0; default q8_0,q4_0)
#   --upg-file   a UPG file to synthesize and time, e.g. '2_4:--pattern 2:4' (repeatable)
#   --depth      tokens of context before each single-stream tg test (llama-bench -d, upg
#                bench -d; the --npl runs stay at their own prompts)
#   --npl        sequence counts for llama-batched-bench (pp 128, tg 128 each; empty: none)
#   --llama-bin  a folder with llama-bench and llama-batched-bench (CUDA) to use; otherwise
#                bench/peer/build-llama-cpp.sh --cuda builds them (with --source TAR offline)
#   --out        where the logs and results.tsv go (default bench-results/cuda-peer)
#   --keep       where the synthesized files go (default a temporary folder)
#   --no-upg-gguf  time the GGUF files with llama.cpp only
#   UPG_PEER_DEADLINE  a time (seconds since the epoch) after which no new file is made
# Needs build/upg (UPG_BUILD_DIR, or UPG_BIN for the binary) built with the CUDA backend.
set -euo pipefail
cd "$(dirname "$0")/../.."

config="" types=q8_0,q4_0 upg_files=() n_gen=128 depth=0 reps=3 npl=8,32,128 llama_bin="" source_tar=""
out=bench-results/cuda-peer keep="" upg_gguf=1
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    --upg-file) upg_files+=("$2"); shift 2 ;;
    --n-gen) n_gen=$2; shift 2 ;;
    --depth) depth=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --npl) npl=$2; shift 2 ;;
    --llama-bin) llama_bin=$2; shift 2 ;;
    --source) source_tar=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --no-upg-gguf) upg_gguf=0; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "cuda-peer: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -f "$config" ] || { echo "cuda-peer: --config: no such file '$config'" >&2; exit 2; }
upg=${UPG_BIN:-${UPG_BUILD_DIR:-build}/upg}
[ -x "$upg" ] || { echo "cuda-peer: $upg missing (scripts/build.sh release)" >&2; exit 2; }
mkdir -p "$out"
files=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/upg-cuda-peer.XXXXXX")}
mkdir -p "$files"
results=$out/results.tsv
printf 'engine\tfile\tfile_gb\ttest\ttok_s\n' > "$results"

if [ -z "$llama_bin" ]; then
  args=(--cuda)
  [ -z "$source_tar" ] || args+=(--source "$source_tar")
  llama_bin=$(bench/peer/build-llama-cpp.sh "${args[@]}")
fi
echo "== cuda-peer: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n1); llama.cpp in $llama_bin"

gb() { python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1]) / 1e9:.2f}')" "$1"; }
# avg_ts of the last JSON line of a log (upg bench --json and llama-bench -o jsonl both write it).
avg_ts() { python3 -c "import json,sys; print(round([json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')][-1]['avg_ts'], 1))" "$1"; }
# The single-stream test's name: tg128, or tg128 @ d4096 after a depth.
tg_name="tg$n_gen"
[ "$depth" = 0 ] || tg_name="tg$n_gen @ d$depth"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$results"; echo "$1 $2 ($3 GB) $4: $5 tok/s"; }

# upg bench --json: one line per test; avg_ts of the tg test.
upg_tg() {  # $1 file, $2 label
  local log=$out/upg-$2.log
  "$upg" bench "$1" --device cuda -p 0 -n "$n_gen" -d "$depth" -r "$reps" --json > "$log" 2>&1 || { echo "upg bench failed: $(tail -n 3 "$log")"; return 0; }
  record upg "$2" "$(gb "$1")" "$tg_name" "$(avg_ts "$log")"
  [ -n "$npl" ] || return 0
  # Aggregate decode as llama-batched-bench's tg (its sequences start after a 128-token
  # prompt; these from an empty cache).
  local p
  IFS=, read -r -a ps <<< "$npl"
  for p in "${ps[@]}"; do
    "$upg" bench "$1" --device cuda -p 0 -n 128 -r 1 --parallel "$p" --json > "$log.x$p" 2>&1 \
      || { echo "upg bench --parallel $p failed: $(tail -n 3 "$log.x$p")"; continue; }
    record upg "$2" "$(gb "$1")" "tg128 x$p" "$(avg_ts "$log.x$p")"
  done
}

llama_runs() {  # $1 file, $2 label
  local log=$out/llama-bench-$2.log
  local d=()
  [ "$depth" = 0 ] || d=(-d "$depth")  # builds before llama-bench had -d still run at 0
  "$llama_bin/llama-bench" -m "$1" -ngl 99 -p 0 -n "$n_gen" "${d[@]}" -r "$reps" -o jsonl > "$log" 2>"$log.err" \
    || { echo "llama-bench failed: $(tail -n 3 "$log.err")"; return 0; }
  record llama.cpp "$2" "$(gb "$1")" "$tg_name" "$(avg_ts "$log")"
  [ -n "$npl" ] || return 0
  local max=${npl##*,}
  log=$out/llama-batched-$2.log
  "$llama_bin/llama-batched-bench" -m "$1" -ngl 99 -c $((max * 256 + 512)) -b 2048 -ub 512 -npp 128 -ntg 128 -npl "$npl" \
    --output-format jsonl > "$log" 2>"$log.err" || { echo "llama-batched-bench failed: $(tail -n 3 "$log.err")"; return 0; }
  python3 - "$log" <<'EOF' | while IFS=$'\t' read -r n s; do record llama.cpp "$2" "$(gb "$1")" "tg128 x$n" "$s"; done
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{") and "speed_tg" in line:
        r = json.loads(line)
        print(f"{r['pl']}\t{r['speed_tg']:.1f}")
EOF
}

late() {
  [ -n "${UPG_PEER_DEADLINE:-}" ] && [ "$(date +%s)" -gt "$UPG_PEER_DEADLINE" ] && echo "cuda-peer: past the deadline, $1 skipped"
}
IFS=, read -r -a type_list <<< "$types"
for t in "${type_list[@]}"; do
  late "$t" && continue
  f=$files/synth-$t.gguf
  "$upg" synth "$config" -o "$f" --gguf "$t" > "$out/synth-$t.log" 2>&1
  llama_runs "$f" "$t"
  [ $upg_gguf = 0 ] || upg_tg "$f" "$t"
  [ -n "$keep" ] || rm -f "$f"
done
for spec in "${upg_files[@]}"; do
  name=${spec%%:*} opts=${spec#*:}
  late "$name" && continue
  f=$files/synth-$name.upg
  # shellcheck disable=SC2086  # the options are words
  "$upg" synth "$config" -o "$f" $opts > "$out/synth-$name.log" 2>&1
  upg_tg "$f" "$name"
  [ -n "$keep" ] || rm -f "$f"
done
[ -n "$keep" ] || rmdir "$files" 2>/dev/null || true
echo "== results: $results"
column -t -s $'\t' "$results"
