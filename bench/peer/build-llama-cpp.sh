#!/usr/bin/env bash
# Builds the llama.cpp peer (llama-bench, llama-batched-bench, llama-quantize, llama-server) from the
# PyPI source package llama-cpp-python at a pinned version, CPU only, into a cache folder,
# and prints that build's bin/ folder on stdout (all else goes to stderr). With --cuda,
# llama-bench and llama-batched-bench with ggml's CUDA backend for sm_90 only.
#
# Usage: bench/peer/build-llama-cpp.sh [--version V] [--cache DIR] [--cuda] [--source TAR]
#        bench/peer/build-llama-cpp.sh --pack-source TAR
#   --version V        llama-cpp-python version (default 0.3.36, or $UPG_PEER_LLAMA_VERSION)
#   --cache DIR        cache folder (default $UPG_PEER_CACHE, else ~/.cache/upg-peer)
#   --cuda             the CUDA build (GGML_CUDA=ON, CMAKE_CUDA_ARCHITECTURES=90), in build-cuda/
#   --source TAR       take llama.cpp's source from TAR (made by --pack-source) instead of PyPI:
#                      for machines that cannot reach it (the lent GPU machines)
#   --pack-source TAR  write the source this build needs (no models, docs, tests) to TAR (.tar.xz),
#                      small enough to carry to such a machine, and exit
#   UPG_JOBS           build jobs (default: nproc)
#
# Idempotent: a build whose binaries exist and whose recorded flags match is reused as is.
# The source comes from PyPI (the registry these machines reach) and not from a git
# clone; the sdist carries llama.cpp in vendor/llama.cpp at the commit that release pins.
set -euo pipefail

usage() { sed -n '6,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
die() { echo "build-llama-cpp: $*" >&2; exit 2; }

version=${UPG_PEER_LLAMA_VERSION:-0.3.36}
cache=${UPG_PEER_CACHE:-$HOME/.cache/upg-peer}
cuda=0 source_tar="" pack=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
    --cache) [ $# -ge 2 ] || die "--cache needs a value"; cache=$2; shift 2 ;;
    --cuda) cuda=1; shift ;;
    --source) [ $# -ge 2 ] || die "--source needs a value"; source_tar=$(realpath "$2"); shift 2 ;;
    --pack-source) [ $# -ge 2 ] || die "--pack-source needs a value"; pack=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "build-llama-cpp: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$version" =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "--version must look like 0.3.36, not '$version'"

root=$cache/llama-cpp-python-$version
src=$root/src
build=$root/build
targets=(llama-bench llama-batched-bench llama-quantize llama-server)
if [ $cuda = 1 ]; then
  build=$root/build-cuda
  targets=(llama-bench llama-batched-bench)
fi
bin=$build/bin

# x86 instruction sets from the host's cpuid (as /proc/cpuinfo shows it). A native build
# (-march=native) dies with SIGILL on these VMs: the compiler sees AMX, the hypervisor
# does not allow it. So: GGML_NATIVE=OFF, each set the host reports turned on by name,
# and AMX always off.
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sed 's/^flags[[:space:]]*:[[:space:]]*//') "
has() { [[ "$flags" == *" $1 "* ]]; }
onoff() { if has "$1"; then echo ON; else echo OFF; fi; }
# GGML_AVX512 compiles with -mavx512f/cd/vl/dq/bw together, so it needs all five.
avx512=OFF
if has avx512f && has avx512cd && has avx512vl && has avx512dq && has avx512bw; then avx512=ON; fi
isa=(
  -DGGML_SSE42="$(onoff sse4_2)" -DGGML_AVX="$(onoff avx)" -DGGML_AVX2="$(onoff avx2)"
  -DGGML_FMA="$(onoff fma)" -DGGML_F16C="$(onoff f16c)" -DGGML_BMI2="$(onoff bmi2)"
  -DGGML_AVX_VNNI="$(onoff avx_vnni)" -DGGML_AVX512="$avx512"
  -DGGML_AVX512_VBMI="$( [ $avx512 = ON ] && onoff avx512vbmi || echo OFF)"
  -DGGML_AVX512_VNNI="$( [ $avx512 = ON ] && onoff avx512_vnni || echo OFF)"
  -DGGML_AVX512_BF16="$( [ $avx512 = ON ] && onoff avx512_bf16 || echo OFF)"
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
)
config=(
  -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF "${isa[@]}"
  # CPU only, no network code but llama-server's HTTP, nothing but the four tools.
  -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF -DGGML_RPC=OFF
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON
  # The shared ccache holds UPG's objects; a one-off peer build would only evict them.
  -DGGML_CCACHE=OFF
  # The sdist has no git history: without this, llama-bench reports "unknown", or the
  # commit of whatever repository the cache folder sits in.
  -DLLAMA_BUILD_COMMIT="llama-cpp-python-$version"
)
if [ $cuda = 1 ]; then
  # Hopper only, as UPG's CUDA code is built: one architecture keeps the build minutes short.
  config=("${config[@]/-DGGML_CUDA=OFF/-DGGML_CUDA=ON}")
  config=("${config[@]/-DLLAMA_BUILD_SERVER=ON/-DLLAMA_BUILD_SERVER=OFF}")
  # Shared: the CUDA kernels once (libggml-cuda.so in bin/), not in each tool.
  config=("${config[@]/-DBUILD_SHARED_LIBS=OFF/-DBUILD_SHARED_LIBS=ON}")
  config+=(-DCMAKE_CUDA_ARCHITECTURES=90)
fi
stamp="llama-cpp-python $version: ${config[*]}"

built() {
  [ -f "$build/upg-peer-stamp" ] && [ "$(cat "$build/upg-peer-stamp")" = "$stamp" ] || return 1
  for t in "${targets[@]}"; do [ -x "$bin/$t" ] || return 1; done
}
if [ -z "$pack" ] && built; then
  echo "build-llama-cpp: reusing $bin" >&2
  echo "$bin"
  exit 0
fi

mkdir -p "$root"
if [ ! -f "$src/CMakeLists.txt" ] && [ -n "$source_tar" ]; then
  [ -f "$source_tar" ] || die "--source $source_tar: no such file"
  tmp=$(mktemp -d "$root/extract.XXXXXX")
  tar -xJf "$source_tar" -C "$tmp"
  rm -rf "$src"
  mv "$tmp/llama.cpp" "$src"
  rm -rf "$tmp"
fi
if [ ! -f "$src/CMakeLists.txt" ]; then
  sdist=$root/llama_cpp_python-$version.tar.gz
  if [ ! -f "$sdist" ]; then
    echo "build-llama-cpp: pip download llama-cpp-python==$version (source only)" >&2
    dl=$(mktemp -d "$root/download.XXXXXX")
    python3 -m pip download "llama-cpp-python==$version" --no-binary :all: --no-deps \
      --disable-pip-version-check -d "$dl" >&2
    mv "$dl"/llama_cpp_python-*.tar.gz "$sdist"
    rm -rf "$dl"
  fi
  # Only vendor/llama.cpp is needed; extracted beside and renamed so a broken
  # extraction never looks like a finished one.
  tmp=$(mktemp -d "$root/extract.XXXXXX")
  tar -xzf "$sdist" -C "$tmp" "llama_cpp_python-$version/vendor/llama.cpp"
  rm -rf "$src"
  mv "$tmp/llama_cpp_python-$version/vendor/llama.cpp" "$src"
  rm -rf "$tmp"
fi
[ -f "$src/CMakeLists.txt" ] || die "$src: no CMakeLists.txt (is vendor/llama.cpp in the sdist?)"

if [ -n "$pack" ]; then
  # What configuring and building the tools needs: not the vocabularies of models/, the
  # docs, tests, examples or the web UI's sources (tools/ui is only built with the server).
  # Anchored: src/models (the architectures' sources) must stay.
  tar -cJf "$pack.tmp" -C "$(dirname "$src")" --transform "s,^$(basename "$src"),llama.cpp," --anchored \
    --exclude="$(basename "$src")/models" --exclude="$(basename "$src")/docs" \
    --exclude="$(basename "$src")/media" --exclude="$(basename "$src")/tests" \
    --exclude="$(basename "$src")/examples" --exclude="$(basename "$src")/tools/ui" \
    --exclude="$(basename "$src")/gguf-py" --exclude="$(basename "$src")/.git*" "$(basename "$src")"
  mv "$pack.tmp" "$pack"
  echo "build-llama-cpp: wrote $pack ($(du -h "$pack" | cut -f1))" >&2
  exit 0
fi

echo "build-llama-cpp: configuring ($(printf '%s ' "${isa[@]}"))" >&2
rm -f "$build/upg-peer-stamp"
cmake -S "$src" -B "$build" "${config[@]}" >&2
start=$(date +%s)
cmake --build "$build" --target "${targets[@]}" -j "${UPG_JOBS:-$(nproc)}" >&2
echo "build-llama-cpp: built in $(( $(date +%s) - start )) s" >&2
echo "$stamp" > "$build/upg-peer-stamp"
echo "$bin"
