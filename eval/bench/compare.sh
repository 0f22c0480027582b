#!/usr/bin/env bash
# Interleaved speed comparison, llama.cpp vs brandvoice, on one GGUF: rounds of
# `llama-bench -p 128 -n 64 -r 1` and our `benches/model.rs` run back to back so
# both see the same machine load (this machine is shared and noisy). Prints
# every round; take the best (or median) per engine and report the ratio.
#
#   eval/bench/compare.sh MODEL_NAME THREADS [ROUNDS]
# Needs: eval/bench/llama_cpp.sh (builds llama-bench), and the model bench
# built with `eval/bench/cargo_fast.sh bench --bench model --no-run` (its path
# in MODEL_BENCH, or found under $CARGO_TARGET_DIR).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
model="$1"; threads="$2"; rounds="${3:-3}"
dir="${BRANDVOICE_MODELS:-$HOME/.cache/brandvoice/models}"
gguf="$dir/$model.gguf"
bench="${MODEL_BENCH:-$(ls -t "${CARGO_TARGET_DIR:-target}"/debug/deps/model-* 2>/dev/null | grep -v '\.d$' | head -1)}"
"$here/llama_cpp.sh" >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "round $r  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$here/llama_cpp.sh" "$gguf" "$threads" -r 1 2>/dev/null | grep -E "pp128|tg64" | awk -F'|' '{print "  llama.cpp " $7 " " $8}'
  BENCH_REPS=1 "$bench" "$model" "$threads" | sed 's/^/  ours      /'
done
