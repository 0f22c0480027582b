#!/usr/bin/env python3
"""Warm serving latency of a running `brandvoice serve` (stdlib only).

    brandvoice serve --model smollm2-135m --threads 2 --bind 127.0.0.1:8090 --warm &
    python3 eval/bench/serve_latency.py http://127.0.0.1:8090 --rounds 20 --wait-warm

Measures, after warm-up requests (which also fill the prefix cache):
  * full draft, n=1, twitter: client-side wall time of POST /v1/drafts (JSON);
  * the same requests with n=4, and the ratio n=4 / n=1;
  * first streamed token: time from sending POST /v1/drafts with "stream": true
    to the first `token` event.
Messages rotate over brands and moods; seeds are fixed, so runs are repeatable.
`--wait-warm` first waits until /readyz reports the server's prefix-cache
warm-up (`--warm`) finished. Prints one JSON object.
"""
import argparse
import http.client
import json
import statistics
import time
import urllib.parse

MESSAGES = [
    ("tunely", "My playlist disappeared after the update and I'm really annoyed."),
    ("tunely", "How do I download songs for offline listening on my phone?"),
    ("tunely", "Thank you so much for fixing my family plan so quickly!"),
    ("wayfind", "My flight was cancelled and I can't find my refund anywhere. Third time asking!"),
    ("wayfind", "Is the price shown for the hotel per night or for the whole stay?"),
    ("wayfind", "I'm worried my booking didn't go through, I got no confirmation email."),
    ("northgate", "Your app keeps logging me out and I can't pay my rent. Fix it NOW."),
    ("northgate", "How long does an international transfer usually take?"),
    ("northgate", "I think someone used my card abroad, what should I do?"),
    ("tunely", "Loving the new radio feature, great job!"),
]


def post(conn, path, body):
    data = json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    return conn.getresponse()


def draft(base, body):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    t = time.perf_counter()
    r = post(conn, "/v1/drafts", body)
    payload = r.read()
    wall = (time.perf_counter() - t) * 1000
    conn.close()
    if r.status != 200:
        raise SystemExit(f"HTTP {r.status}: {payload[:300]!r}")
    return wall, json.loads(payload)


def first_token(base, body):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    t = time.perf_counter()
    r = post(conn, "/v1/drafts", dict(body, stream=True))
    if r.status != 200:
        raise SystemExit(f"HTTP {r.status}: {r.read()[:300]!r}")
    first = None
    event = None
    while True:
        line = r.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
            if event == "token" and first is None:
                first = (time.perf_counter() - t) * 1000
        if event == "done":
            break
    total = (time.perf_counter() - t) * 1000
    conn.close()
    return first, total


def wait_warm(base, timeout_s=1800):
    u = urllib.parse.urlparse(base)
    t = time.perf_counter()
    while True:
        try:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            conn.request("GET", "/readyz")
            r = conn.getresponse()
            body = r.read()
            conn.close()
            if r.status == 200:
                warm = json.loads(body).get("warm") or {}
                if warm.get("finished", True):
                    return dict(warm, waited_s=round(time.perf_counter() - t, 1))
        except OSError:
            pass
        if time.perf_counter() - t > timeout_s:
            raise SystemExit("the server's warm-up did not finish in time")
        time.sleep(1)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--channel", default="twitter")
    ap.add_argument("--wait-warm", action="store_true", help="wait for the server's prefix-cache warm-up first")
    args = ap.parse_args()
    warm = wait_warm(args.base) if args.wait_warm else None

    def body(i, n):
        brand, msg = MESSAGES[i % len(MESSAGES)]
        return {"brand": brand, "channel": args.channel, "message": msg, "n": n, "seed": 1000 + i}

    for i in range(args.warmup):
        draft(args.base, body(i, 1))
        draft(args.base, body(i, 4))
    out = {}
    for n in (1, 4):
        walls, server, toks, fallbacks, computed = [], [], [], 0, []
        for i in range(args.rounds):
            w, r = draft(args.base, body(i, n))
            walls.append(w)
            server.append(r["timings"]["total_ms"])
            toks.append(r["timings"]["generated_tokens"])
            computed.append(r["timings"].get("prefill_tokens", 0))
            fallbacks += sum(1 for d in r["drafts"] if d["fallback"])
            model = r["model"]
        out[f"n{n}"] = {
            "p50_ms": round(statistics.median(walls), 1),
            "p90_ms": round(pct(walls, 90), 1),
            "server_total_p50_ms": round(statistics.median(server), 1),
            "generated_tokens_mean": round(statistics.mean(toks), 1),
            "prefill_tokens_mean": round(statistics.mean(computed), 1),
            "fallback_drafts": fallbacks,
        }
    out["n4_over_n1_p50"] = round(out["n4"]["p50_ms"] / out["n1"]["p50_ms"], 2)
    firsts, totals = [], []
    for i in range(args.rounds):
        f, t = first_token(args.base, body(i, 1))
        if f is not None:
            firsts.append(f)
        totals.append(t)
    out["sse_first_token_p50_ms"] = round(statistics.median(firsts), 1) if firsts else None
    out["sse_first_token_p90_ms"] = round(pct(firsts, 90), 1) if firsts else None
    out["sse_total_p50_ms"] = round(statistics.median(totals), 1)
    out["model"] = model
    if warm is not None:
        out["warm"] = warm
    out["channel"] = args.channel
    out["rounds"] = args.rounds
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
