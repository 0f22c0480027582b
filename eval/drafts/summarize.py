#!/usr/bin/env python3
"""Summarize a `brandvoice draft --suite … --out FILE.jsonl` result file (also a
partial one, from an interrupted run) with the same figures the CLI prints."""
import json, sys, collections, statistics

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
    twl = collections.defaultdict(list)
    twgen = 0
    reasons = collections.Counter()
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
                twl[resp["language"]].append(t["total_ms"])
                twgen += t.get("generated_tokens", 0) > 0
            for d in resp["drafts"]:
                if d.get("fallback_reason"):
                    reasons["the model does not write" if "does not write" in d["fallback_reason"] else "no candidate passed"] += 1
    print(f"{path}: {len(rows)} runs")
    for b, (f, n) in sorted(fb.items()):
        print(f"  fallback {b:<10} {100*f/n:5.1f}% ({f}/{n})")
    f = sum(x[0] for x in fb.values()); n = sum(x[1] for x in fb.values())
    print(f"  fallback {'all':<10} {100*f/max(n,1):5.1f}% ({f}/{n})")
    print(f"  runs with a non-fallback draft failing re-lint: {bad}; non-fallback drafts: {nonfb}; invented: {invented}; garbled (U+FFFD): {garbled}")
    for k, v in sorted(lat.items()):
        print(f"  latency n={k}: p50 {pct(v,.5):.0f} ms, p90 {pct(v,.9):.0f} ms ({len(v)} runs)")
    print(f"  latency n=1 twitter p50 {pct(tw,.5):.0f} ms ({len(tw)} runs, {twgen} generated)")
    print("  latency n=1 twitter p50 by language: " + ", ".join(f"{l} {pct(v,.5):.0f} ms ({len(v)})" for l, v in sorted(twl.items())))
    if reasons:
        print("  fallback reasons: " + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())))
    print(f"  cache: {100*hits/max(len(rows),1):.0f}% of runs hit, {100*ct/max(pt,1):.0f}% of prompt tokens reused; mean rounds {rounds/max(len(rows),1):.2f}")
    # Where the time goes (n = 1): per-stage medians, all channels and twitter,
    # and the decode work (forward passes, speculative drafts accepted).
    for label, sel in (("all", lambda r: True), ("twitter", lambda r: r["channel"] == "twitter")):
        ts = [r["response"]["timings"] for r in rows if r["n"] == 1 and sel(r)]
        if not ts:
            continue
        med = lambda k: statistics.median(t.get(k, 0) for t in ts)
        mean = lambda k: sum(t.get(k, 0) for t in ts) / len(ts)
        print(f"  stages n=1 {label} (median ms): understand {med('understand_ms'):.0f}, plan {med('plan_ms'):.0f}, "
              f"prefill {med('prefill_ms'):.0f}, first token {med('first_token_ms'):.0f}, generate {med('generate_ms'):.0f}, "
              f"check {med('check_ms'):.0f} (of it scoring {med('score_ms'):.0f}), total {med('total_ms'):.0f}")
        dr, ac = sum(t.get("drafted_tokens", 0) for t in ts), sum(t.get("accepted_tokens", 0) for t in ts)
        print(f"  decode n=1 {label} (mean per run): generated {mean('generated_tokens'):.1f} tokens, forward passes {mean('decode_forwards'):.1f}, "
              f"drafted {mean('drafted_tokens'):.1f}, accepted {mean('accepted_tokens'):.1f} ({100*ac/max(dr,1):.0f}%), rounds {mean('rounds'):.2f}, "
              f"prefill tokens {mean('prefill_tokens'):.1f}")
