#!/usr/bin/env bash
# Configures and builds UPG. Usage: scripts/build.sh [release|asan|fuzz]
#   release -> build/      (upg, test binaries, upg-bench)
#   asan    -> build-asan/ (test binaries under AddressSanitizer + UBSan)
#   fuzz    -> build-fuzz/ (clang: the libFuzzer harnesses of fuzz/ and the libraries
#                           they read with, under libFuzzer + ASan + UBSan; fuzz/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=${UPG_JOBS:-$(nproc)}
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  # -O1 and line tables only (-g1): what the sanitizers need for their reports (file:line
  # in every frame), at about a third of the compile time of -O2 -g on the json-heavy
  # files (cmd-upg-inspect.cpp: 143-197 s against 63 s, same loaded 2-core host): the
  # ASan build was most of CI's time.
  asan) dir=build-asan
        flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DUPG_SANITIZE=ON
               -DUPG_BUILD_BENCH=OFF -DUPG_CUDA=OFF) ;;
  # The same -O1 -g1 for the fuzz build (OSS-Fuzz's own default, -O1 -gline-tables-only):
  # XGrammar under clang is most of its compile time.
  fuzz) dir=build-fuzz
        flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DUPG_FUZZ=ON
               -DUPG_BUILD_TESTS=OFF -DUPG_BUILD_BENCH=OFF -DUPG_CUDA=OFF -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "usage: $0 [release|asan|fuzz]" >&2; exit 2 ;;
esac
# Paths under the tree enter ccache's keys relative to it, so clones and worktrees share
# objects (CMakeLists.txt's -fdebug-prefix-map says why the -g builds need this too).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
# XGrammar's sources (src/grammar's engine), pinned; a no-op once fetched.
scripts/fetch-xgrammar.sh
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$jobs"
