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
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$here/.llama.cpp"
version="0.3.36"
bin="$work/build/bin/llama-bench"
mkdir -p "$work"

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
  cmake -S "$work/src/vendor/llama.cpp" -B "$work/build" \
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
  cmake --build "$work/build" --target llama-bench -j "${JOBS:-2}" >&2
fi

if [ $# -eq 0 ]; then
  echo "$bin"
  exit 0
fi
model="$1"; threads="${2:-2}"
exec "$bin" -m "$model" -t "$threads" -p 128 -n 64 "${@:3}"
