#!/usr/bin/env bash
# Interleaved prompt/generation speed: llama-bench and `brandvoice bench` in
# each of the given modes, round after round, so all see the same machine load.
#   eval/bench/pp_ab.sh MODEL THREADS ROUNDS BIN [ENV=VAL ...]
# e.g. eval/bench/pp_ab.sh qwen2.5-0.5b 2 3 target/release/brandvoice BRANDVOICE_KQUANT=exact BRANDVOICE_KQUANT=fast
# Each ENV=VAL is one variant of ours (use `-` for the defaults). Prints
# pp/tg tok/s per round and the load average.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
model="$1"; threads="$2"; rounds="$3"; bin="$4"; shift 4
variants=("$@"); [ ${#variants[@]} -eq 0 ] && variants=(-)
gguf="${BRANDVOICE_MODELS:-$HOME/.cache/brandvoice/models}/$model.gguf"
lb="${LLAMA_BENCH:-$here/.llama.cpp/build/bin/llama-bench}"
[ -x "$lb" ] || lb=/work/main/eval/bench/.llama.cpp/build/bin/llama-bench
for r in $(seq 1 "$rounds"); do
  echo "round $r  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$lb" -m "$gguf" -t "$threads" -p 128 -n 64 -r 1 2>/dev/null | grep -E "pp128|tg64" \
    | awk -F'|' '{gsub(/ +/," ",$7); gsub(/ +/," ",$8); printf "  llama.cpp %s%s\n", $7, $8}'
  for v in "${variants[@]}"; do
    envs=(); [ "$v" != "-" ] && envs=("$v")
    env "${envs[@]}" "$bin" bench --model "$model" --prompt-tokens 128 --gen-tokens 64 --threads "$threads" --json 2>/dev/null \
      | python3 -c "import json,sys; d=json.load(sys.stdin); print('  ours %-24s pp %7.1f  tg %6.1f  ttft %6.1f ms  rss %5.0f MB' % ('$v', d['prompt_tok_s'], d['gen_tok_s'], d['ttft_ms'], d['peak_rss_mb']))"
  done
done
