#!/usr/bin/env bash
# Builds `llama_dump` (llama_dump.cpp) against the llama.cpp libraries that
# `llama_cpp.sh` builds, and runs it: llama.cpp's greedy top-5 logits per step
# (and, with DUMP_DIR, every intermediate f32 tensor of decode call DUMP_CALL),
# to compare with ours (`tests/greedy_parity.rs` print_top_logits, and
# BRANDVOICE_DUMP_DIR / BRANDVOICE_DUMP_CALL in the engine).
#
#   eval/bench/llama_dump.sh MODEL.gguf FA(-1 auto|0|1) STEPS id id ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/llama_cpp.sh" >/dev/null
bin_dir="$here/.llama.cpp/build/bin"
src="$here/.llama.cpp/src/vendor/llama.cpp"
exe="$bin_dir/llama_dump"
if [ ! -x "$exe" ] || [ "$here/llama_dump.cpp" -nt "$exe" ]; then
  g++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/llama_dump.cpp" -o "$exe" \
    -L"$bin_dir" -l:libllama.so.0 -l:libggml.so.0 -l:libggml-base.so.0 -Wl,-rpath,"$bin_dir"
fi
exec "$exe" "$@"
