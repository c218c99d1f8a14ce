#!/usr/bin/env bash
# The whole test suite: install what is missing, build (Release, and the test binaries
# again under AddressSanitizer + UBSan, and the fuzz harnesses with clang), fetch the
# default model, run every test, then each fuzz harness for UPG_FUZZ_SECONDS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/install-python-deps.sh
scripts/fetch-model.sh
scripts/build.sh release
scripts/build.sh asan
scripts/build.sh fuzz
export UPG_MODEL="$PWD/models/SmolLM2-135M-Instruct.Q4_1.gguf"
echo "== tests (release)" >&2
ctest --test-dir build --output-on-failure
echo "== tests (AddressSanitizer + UndefinedBehaviorSanitizer)" >&2
# The sanitizers are for the parsers, loaders and every other code path on small and
# corrupted inputs; the tests that run the full default model (golden logits,
# perplexity, generation) already ran above and would take ten times as long here, so
# they skip by pointing UPG_MODEL at a missing file.
UPG_MODEL=/nonexistent/upg-asan-skips-full-model-tests.gguf \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure
echo "== fuzz (libFuzzer + ASan + UBSan over the seed corpora; fuzz/README.md)" >&2
# Fails on any crash, sanitizer report, leak, per-input timeout (10 s) or out-of-memory;
# the failing input is left under build-fuzz/fuzz-artifacts/<harness>/.
scripts/fuzz.sh -t "${UPG_FUZZ_SECONDS:-30}"
