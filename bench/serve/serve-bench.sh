#!/usr/bin/env bash
# upg serve beside llama.cpp's llama-server on the same GGUF, in the same run: each
# started in turn on a free loopback port with the same threads and 32 sequences (slots),
# then bench/serve/serve-load.py (streamed chat, temperature 0, --max-tokens tokens per
# request, --requests per client) at each level of concurrent clients; and `upg run` on
# the first client's prompt, the one-stream reference. Prints the tables; JSON in --out.
#
# Usage: bench/serve/serve-bench.sh [--model GGUF] [--threads N] [--levels 1,8,32,64]
#                                   [--requests N] [--max-tokens N] [--out DIR] [--no-peer]
# Needs build/upg (UPG_BUILD_DIR), httpx (scripts/install-python-deps.sh) and, unless
# --no-peer, the peer build (bench/peer/build-llama-cpp.sh, which builds llama-server).
set -euo pipefail
cd "$(dirname "$0")/../.."

model=models/SmolLM2-135M-Instruct.Q4_1.gguf threads=2 levels=1,8,32,64 requests=2 max_tokens=128
out=bench-results/serve peer=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-peer) peer=0; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "serve-bench: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
upg=${UPG_BUILD_DIR:-build}/upg
[ -x "$upg" ] || { echo "serve-bench: $upg missing (scripts/build.sh release)" >&2; exit 2; }
[ -f "$model" ] || { echo "serve-bench: $model missing (scripts/fetch-model.sh)" >&2; exit 2; }
mkdir -p "$out"
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_health() {  # $1 port; 503 while loading, 200 when ready
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ] && return 0
    sleep 0.2
  done
  echo "serve-bench: server on port $1 never became ready" >&2; exit 1
}
load() {  # $1 label, $2 port
  python3 bench/serve/serve-load.py --url "http://127.0.0.1:$2" --levels "$levels" --requests "$requests" \
    --max-tokens "$max_tokens" --label "$1" --json "$out/$1.json"
}

echo "== serve-bench: $model, $threads threads, levels $levels, $requests requests per client, $max_tokens tokens" \
     "(load average at start: $(cut -d' ' -f1-3 /proc/loadavg))"
port=$(free_port)
# 360 MiB: 16384 tokens of the default model's f16 KV cache (23040 bytes a token).
"$upg" serve "$model" --port "$port" -t "$threads" --max-seqs 32 --max-queue 256 --kv-memory 360 -q 2>"$out/upg-serve.log" &
pid=$!
wait_health "$port"
load upg "$port"
kill -TERM "$pid"; wait "$pid"; pid=""

if [ "$peer" = 1 ]; then
  bin=$(bench/peer/build-llama-cpp.sh)
  port=$(free_port)
  # 32 slots sharing one unified KV cache of 16384 tokens, as upg's above.
  "$bin/llama-server" -m "$model" --host 127.0.0.1 --port "$port" -t "$threads" -np 32 -c 16384 -kvu --no-webui \
    >"$out/llama-server.log" 2>&1 &
  pid=$!
  wait_health "$port"
  load llama-server "$port"
  kill "$pid"; wait "$pid" || true; pid=""
fi

echo "== upg run, the same prompt alone (one stream, the 1-client reference)"
"$upg" run "$model" -p "Write a long story about the sea. (client 0)" --temp 0 -n "$max_tokens" --ignore-eos \
  -t "$threads" 2>&1 >/dev/null | tail -n1
