#!/usr/bin/env bash
# Overload run (issue 8 item 5): `brandvoice serve` (release build, smollm2-135m,
# queue capacity Q) on loopback, wrk at 2×Q connections for DURATION posting
# drafts. Pass: every answer is a 2xx or a 503 with Retry-After, the service
# still answers /healthz afterwards, and its resident memory at the end is
# within 10% of the start (measured after one warm-up draft).
#   eval/bench/overload.sh            # Q=4, 60 s
#   Q=8 DURATION=60s eval/bench/overload.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${Q:-4}
CONNS=$((2 * Q))
DURATION=${DURATION:-60s}
MODEL=${MODEL:-smollm2-135m}
THREADS=${THREADS:-2}
PORT=${PORT:-18089}
command -v wrk >/dev/null || apt-get install -y wrk
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/brandvoice
DB=$(mktemp -d)/overload.sqlite
BRANDVOICE_DB=$DB BRANDVOICE_LOG=warn "$BIN" serve --model "$MODEL" --queue "$Q" --threads "$THREADS" --bind "127.0.0.1:$PORT" 2>/tmp/brandvoice-overload.log &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "server not ready"; cat /tmp/brandvoice-overload.log; exit 1; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
# Warm-up: each of the load's five messages once, so the model's pages and the prefix
# cache entries the load will use are resident before the baseline.
for m in "My playlist disappeared after the update and I am really annoyed." "Where is my refund? It has been two weeks." \
         "The app keeps crashing when I open my library." "Thanks so much, the new feature is great!" "I was charged twice this month, please fix it."; do
  curl -sf "http://127.0.0.1:$PORT/v1/drafts" -H 'content-type: application/json' \
    -d "{\"brand\":\"tunely\",\"channel\":\"twitter\",\"message\":\"$m\",\"n\":1,\"max_tokens\":48,\"seed\":1}" >/dev/null
done
RSS0=$(rss)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "queue=$Q connections=$CONNS duration=$DURATION model=$MODEL threads=$THREADS rss_start_kb=$RSS0 loadavg_start=$LOAD0"
wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 120s -s eval/bench/overload.lua "http://127.0.0.1:$PORT/v1/drafts" | tee /tmp/brandvoice-overload-wrk.txt
sleep 2
RSS1=$(rss)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
HEALTH=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")
echo "rss_end_kb=$RSS1 rss_change_pct=$(awk -v a="$RSS0" -v b="$RSS1" 'BEGIN {printf "%.1f", (b - a) * 100 / a}') healthz_after=$HEALTH loadavg_end=$LOAD1"
kill -TERM $PID
wait $PID || true
