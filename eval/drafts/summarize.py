#!/usr/bin/env python3
"""Summarize a `brandvoice draft --suite … --out FILE.jsonl` result file (also a
partial one, from an interrupted run) with the same figures the CLI prints."""
import json, sys, collections

def pct(v, p):
    v = sorted(v)
    return v[round((len(v) - 1) * p)] if v else 0.0

for path in sys.argv[1:]:
    rows = []
    for l in open(path, encoding="utf-8"):
        try:
            rows.append(json.loads(l))
        except json.JSONDecodeError:
            pass  # the unfinished last line of a run still in progress
    fb = collections.defaultdict(lambda: [0, 0])
    lat = collections.defaultdict(list)
    tw = []
    nonfb = bad = invented = hits = pt = ct = rounds = garbled = 0
    for r in rows:
        resp, t = r["response"], r["response"]["timings"]
        lat[r["n"]].append(t["total_ms"])
        hits += t["cache_hit"]; pt += t["prompt_tokens"]; ct += t["cached_tokens"]; rounds += t["rounds"]
        invented += r["invented"]
        for d in resp["drafts"]:
            if not d["fallback"]:
                nonfb += 1
                # Draft.Garbled (added after the first smollm2 run): U+FFFD or control characters.
                garbled += any(c == "\ufffd" or (ord(c) < 32 and c not in "\n\t\r") for c in d["text"])
        bad += r["recheck_errors"] > 0
        if r["n"] == 1:
            fb[r["brand"]][1] += 1
            fb[r["brand"]][0] += all(d["fallback"] for d in resp["drafts"])
            if r["channel"] == "twitter":
                tw.append(t["total_ms"])
    print(f"{path}: {len(rows)} runs")
    for b, (f, n) in sorted(fb.items()):
        print(f"  fallback {b:<10} {100*f/n:5.1f}% ({f}/{n})")
    f = sum(x[0] for x in fb.values()); n = sum(x[1] for x in fb.values())
    print(f"  fallback {'all':<10} {100*f/max(n,1):5.1f}% ({f}/{n})")
    print(f"  runs with a non-fallback draft failing re-lint: {bad}; non-fallback drafts: {nonfb}; invented: {invented}; garbled (U+FFFD): {garbled}")
    for k, v in sorted(lat.items()):
        print(f"  latency n={k}: p50 {pct(v,.5):.0f} ms, p90 {pct(v,.9):.0f} ms ({len(v)} runs)")
    print(f"  latency n=1 twitter p50 {pct(tw,.5):.0f} ms ({len(tw)} runs)")
    print(f"  cache: {100*hits/max(len(rows),1):.0f}% of runs hit, {100*ct/max(pt,1):.0f}% of prompt tokens reused; mean rounds {rounds/max(len(rows),1):.2f}")
