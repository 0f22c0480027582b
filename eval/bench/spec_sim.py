#!/usr/bin/env python3
"""Offline comparison of speculative-decoding policies for drafts (stdlib only).

Speculative verification is exact: a drafted token is kept only when it equals
what plain decoding samples, so what any lookup policy would keep is known from
the plain-decoded tokens alone. `examples/spec_trace.rs` writes them (prompt and
round-0 tokens per suite case, speculation off):

    eval/bench/cargo_fast.sh build --example spec_trace
    $CARGO_TARGET_DIR/debug/examples/spec_trace smollm2-135m eval/drafts/messages.jsonl > trace.jsonl
    python3 eval/bench/spec_sim.py trace.jsonl [more.jsonl …]

For each file: how often the first drafted token is kept by the length of the
n-gram match, then the decode cost of each policy relative to plain decoding
under a cost model where a pass costs (1 + 0.5 · context/620) · (1 + r · drafted
rows), for several r (a drafted row costs 15–55% of a pass on smollm2/qwen2.5
here, depending on the rows verified and the machine's load). Policies are
`max_draft,min_ngram,max_ngram` with the generator's rule for the draft length
(one more than the drafts last kept; +2 after a fully kept draft).
"""
import json
import sys
from collections import defaultdict

POLICIES = {"6,2,4": (6, 2, 4), "6,3,8": (6, 3, 8), "3,3,8": (3, 3, 8), "2,3,8": (2, 3, 8), "2,2,8": (2, 2, 8), "4,4,8": (4, 4, 8)}
ROW_COST = (0.15, 0.25, 0.35, 0.5)


def propose(seq, max_draft, min_n, max_n):
    """lookup::propose: what followed the latest earlier occurrence of the longest tail."""
    L = len(seq)
    for n in range(max_n, min_n - 1, -1):
        if L <= n:
            continue
        tail = seq[L - n:]
        for j in range(L - n - 1, -1, -1):
            if seq[j:j + n] == tail:
                return seq[j + n:j + n + max_draft], n
    return [], 0


def decode_cost(prompt, gen, policy, r):
    max_draft, min_n, max_n = policy
    i, cost, want = 1, 0.0, max_draft
    while i < len(gen):
        d, _ = propose(prompt + gen[:i], max_draft, min_n, max_n) if max_draft else ([], 0)
        d = d[:max(0, min(want, len(gen) - i))]
        kept = 0
        while kept < len(d) and d[kept] == gen[i + kept]:
            kept += 1
        cost += (1 + 0.5 * (len(prompt) + i) / 620) * (1 + r * len(d))
        if d:
            want = min(want + 2, max_draft) if kept == len(d) else kept + 1
        i += kept + 1
    return cost


def main():
    for path in sys.argv[1:]:
        rows = [json.loads(l) for l in open(path, encoding="utf-8")]
        by_n = defaultdict(lambda: [0, 0])
        for row in rows:
            p, g = row["prompt"], row["gen"]
            for i in range(1, len(g)):
                d, n = propose(p + g[:i], 1, 1, 6)
                if d:
                    by_n[n][0] += 1
                    by_n[n][1] += d[0] == g[i]
        print(f"{path}: {len(rows)} cases, {sum(len(r['gen']) for r in rows) / len(rows):.1f} tokens each")
        print("  first drafted token kept, by match length: " + ", ".join(f"n={n}: {k}/{t} ({k / t:.2f})" for n, (t, k) in sorted(by_n.items())))
        for r in ROW_COST:
            plain = sum(decode_cost(x["prompt"], x["gen"], (0, 1, 1), r) for x in rows)
            cells = [f"{name} {sum(decode_cost(x['prompt'], x['gen'], pol, r) for x in rows) / plain:.3f}" for name, pol in POLICIES.items()]
            print(f"  drafted row = {r:.2f} pass: " + "  ".join(cells))


if __name__ == "__main__":
    main()
