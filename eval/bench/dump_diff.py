#!/usr/bin/env python3
"""First intermediate tensor where our engine and llama.cpp differ.

    BRANDVOICE_DUMP_DIR=/tmp/ours BRANDVOICE_DUMP_CALL=C PARITY_MODEL=M PARITY_IDS="..." \
        cargo test --test greedy_parity print_top_logits -- --ignored
    DUMP_DIR=/tmp/theirs DUMP_CALL=C eval/bench/.llama.cpp/build-avx512/bin/llama_dump MODEL.gguf -1 STEPS ids...
    python3 eval/bench/dump_diff.py /tmp/ours /tmp/theirs C

Prints, per layer and tensor name (llama.cpp's graph names), how many floats
differ and by how much; exit status 1 when any do.
"""
import os
import struct
import sys

ours, theirs = sys.argv[1], sys.argv[2]
call = sys.argv[3] if len(sys.argv) > 3 else "1"
names = ["attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "attn_post_norm", "sa_out", "ffn_inp",
         "ffn_norm", "ffn_out", "l_out"]


def floats(p):
    b = open(p, "rb").read()
    return struct.unpack("<%df" % (len(b) // 4), b)


first = None
for il in range(64):
    for n in names:
        a, b = (os.path.join(d, f"{call}_{n}-{il}.bin") for d in (ours, theirs))
        if not (os.path.exists(a) and os.path.exists(b)):
            continue
        x, y = floats(a), floats(b)
        if len(x) != len(y):
            # llama.cpp keeps only the output rows in the last layer
            x = x[len(x) - len(y):]
        nd = sum(1 for u, v in zip(x, y) if u != v)
        md = max((abs(u - v) for u, v in zip(x, y)), default=0.0)
        if nd and first is None:
            first = (il, n)
        if nd:
            print(f"{il:2} {n:14} differ {nd}/{len(x)} max {md:.3g}")
print("first difference:", first or "none (bit-identical)")
sys.exit(1 if first else 0)
