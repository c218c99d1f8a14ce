#!/usr/bin/env bash
# Quick start: install what is missing, build, fetch the default model and generate.
# Extra arguments go to `upg run` (for example -p "your prompt" -n 64).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
scripts/fetch-model.sh
if [ $# -eq 0 ]; then
  set -- -p "What is the capital of France? Answer in one sentence." -n 96 --temp 0.2 --seed 42
fi
exec build/upg run models/SmolLM2-135M-Instruct.Q4_1.gguf "$@"
