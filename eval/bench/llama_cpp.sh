#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench` from the llama-cpp-python==0.3.36 source
# package on PyPI (the anchor our engine's speed is compared against) and, with
# arguments, runs it.
#
#   eval/bench/llama_cpp.sh                      # build only; prints the binary path
#   eval/bench/llama_cpp.sh MODEL.gguf [THREADS] # build if needed, then llama-bench -p 128 -n 64
#
# Everything lands in eval/bench/.llama.cpp/ (git-ignored). Needs pip, cmake
# (installed with pip if missing), a C/C++ compiler. `--no-binary
# llama-cpp-python` fetches that package's sdist only; `:all:` would also build
# its build dependencies (cmake itself) from source, which takes an hour here.
#
# ISA: GGML_NATIVE=OFF plus the x86 extensions /proc/cpuinfo lists, never AMX.
# `-march=native` turns AMX on wherever the CPU flags it, and in this VM the
# AMX tiles are not usable (llama-bench dies with SIGILL in
# tinygemm_kernel_amx); the explicit list gives the same AVX-512/VNNI kernels
# without it. A build made by an older version of this script with
# GGML_NATIVE=ON is rebuilt (REBUILD=1 forces a rebuild).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$here/.llama.cpp"
version="0.3.36"
bin="$work/build/bin/llama-bench"
mkdir -p "$work"

# cmake flags for the x86 extensions this CPU has (AMX left out on purpose).
isa_flags() {
  local flags
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  has() { [[ "$flags" == *" $1 "* ]]; }
  local out="-DGGML_NATIVE=OFF"
  has avx && out+=" -DGGML_AVX=ON"
  has avx2 && out+=" -DGGML_AVX2=ON"
  has fma && out+=" -DGGML_FMA=ON"
  has f16c && out+=" -DGGML_F16C=ON"
  has bmi2 && out+=" -DGGML_BMI2=ON"
  has avx_vnni && out+=" -DGGML_AVX_VNNI=ON"
  has avx512f && has avx512bw && has avx512dq && has avx512vl && out+=" -DGGML_AVX512=ON"
  has avx512vbmi && out+=" -DGGML_AVX512_VBMI=ON"
  has avx512_vnni && out+=" -DGGML_AVX512_VNNI=ON"
  has avx512_bf16 && out+=" -DGGML_AVX512_BF16=ON"
  echo "$out"
}

if [ -x "$bin" ] && { [ "${REBUILD:-0}" = 1 ] || grep -q '^GGML_NATIVE:BOOL=ON' "$work/build/CMakeCache.txt" 2>/dev/null; }; then
  echo "llama.cpp build uses GGML_NATIVE=ON (AMX may SIGILL) or REBUILD=1: rebuilding" >&2
  rm -rf "$work/build"
fi

if [ ! -x "$bin" ]; then
  if ! command -v cmake >/dev/null 2>&1; then
    echo "cmake missing: installing it with pip" >&2
    python3 -m pip install --quiet cmake
  fi
  if [ ! -d "$work/src" ]; then
    ( cd "$work" && python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d dl )
    tarball="$(ls "$work"/dl/llama_cpp_python-"$version".tar.gz)"
    mkdir -p "$work/src"
    tar -xzf "$tarball" -C "$work/src" --strip-components=1
  fi
  # shellcheck disable=SC2046
  cmake -S "$work/src/vendor/llama.cpp" -B "$work/build" \
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF $(isa_flags) \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
  cmake --build "$work/build" --target llama-bench -j "${JOBS:-2}" >&2
fi

if [ $# -eq 0 ]; then
  echo "$bin"
  exit 0
fi
model="$1"; threads="${2:-2}"
exec "$bin" -m "$model" -t "$threads" -p 128 -n 64 "${@:3}"
