#!/usr/bin/env python3
"""How many of the 8 reference prompts per model a llama.cpp build reproduces
(first 8 greedy tokens a prefix of `greedy_24`, the rule of tests/greedy_parity.rs).

    python3 eval/bench/llama_parity.py eval/bench/.llama.cpp/build-avx512/bin/llama_dump [FA]

LLAMA_DUMP is `llama_dump.cpp` built against the llama.cpp libraries to test
(build-avx512: the AVX-512 build that matches the reference 8/8/8).
"""
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
ref = os.path.join(here, "..", "..", "..", "shared", "data", "reference", "greedy-continuations.jsonl")
models = os.path.expanduser("~/.cache/brandvoice/models/")
files = {"smollm2-135m-instruct-q4_1": "smollm2-135m", "qwen2.5-coder-0.5b-instruct": "qwen2.5-0.5b", "gemma-3-270m-q4_k_m": "gemma3-270m"}
exe, fa = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "-1")
rows = [json.loads(l) for l in open(ref) if l.strip()]
for key, name in files.items():
    ok, bad = 0, []
    mine = [r for r in rows if r["model"] == key]
    for r in mine:
        out = subprocess.run([exe, models + name + ".gguf", fa, "8"] + [str(i) for i in r["prompt_ids_with_bos_if_model_adds_it"]],
                             capture_output=True, text=True).stdout
        t = [x for x in out.splitlines() if x.startswith("text: ")][0][6:]
        if "\\" in t:
            t = t.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
        if r["greedy_24"].startswith(t):
            ok += 1
        else:
            bad.append((r["prompt"][:20], t[:40], r["greedy_24"][:40]))
    print(name, ok, "/", len(mine))
    for b in bad:
        print("   ", b)
