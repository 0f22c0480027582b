#!/usr/bin/env bash
# Triage throughput on 2,000 real tweets (TweetEval sentiment val text, turned
# into {"id","text"} JSONL), with the optimized build. Prints messages/s, CPU
# time and the load average. Usage (from the repo root):
#   eval/mood/triage_bench.sh [BINARY] [extra triage flags…]
# BINARY defaults to $CARGO_TARGET_DIR/debug/brandvoice built by
#   eval/bench/cargo_fast.sh build --bin brandvoice
set -euo pipefail
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/brandvoice}"
shift || true
data="${TWEETEVAL_DIR:-$(dirname "$0")/../../../shared/data/tweeteval}/sentiment/val_text.txt"
jsonl="${TMPDIR:-/tmp}/brandvoice_triage_2000.jsonl"
python3 - "$data" "$jsonl" <<'PY'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
    for i, line in enumerate(f):
        t = line.strip()
        if t:
            out.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
PY
echo "load before: $(cat /proc/loadavg)"
/usr/bin/time -f "wall %e s, user %U s, sys %S s, max RSS %M KB" "$bin" triage "$jsonl" --out /dev/null "$@"
echo "load after: $(cat /proc/loadavg)"
