#!/usr/bin/env bash
# Configures and builds UPG. Usage: scripts/build.sh [release|asan]
#   release -> build/      (upg, test binaries, upg-bench)
#   asan    -> build-asan/ (test binaries under AddressSanitizer + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=${UPG_JOBS:-$(nproc)}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DUPG_SANITIZE=ON -DUPG_BUILD_BENCH=OFF) ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$jobs"
