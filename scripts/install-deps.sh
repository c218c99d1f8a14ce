#!/usr/bin/env bash
# Installs the Debian packages UPG needs, only those missing (idempotent, quiet when
# everything is there). Runs as root or through sudo.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  # scripts/fetch-xgrammar.sh (XGrammar's source package from PyPI's file host).
  curl ca-certificates
  # CMakeLists.txt applies our patches to XGrammar's sources (third_party/xgrammar-*.patch).
  patch
  python3 python3-pip
  nlohmann-json3-dev libpcre2-dev libcli11-dev libhwy-dev libfmt-dev
  libgtest-dev libbenchmark-dev
  # The compressor's BLAS and LAPACK (Hessians, Cholesky, the GPTQ/SparseGPT sweep).
  libopenblas-dev
  # upg serve's HTTP (header plus compiled library; pulls libssl-dev, zlib, brotli).
  libcpp-httplib-dev
  # The fuzz build (scripts/build.sh fuzz): clang, and libFuzzer's and the sanitizers'
  # runtimes (libclang_rt.fuzzer*.a), which Debian ships apart from the compiler.
  clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/pip may come from elsewhere (pyenv); accept any working python3 with pip.
if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == python3 || $p == python3-pip ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
