#!/usr/bin/env python3
"""Summarise results/raw.csv: per-provider medians and per-round paired aws-lc/ring ratios."""
import csv, statistics as st, sys
from collections import defaultdict
path = sys.argv[1] if len(sys.argv) > 1 else "results/raw.csv"
rows = list(csv.reader(open(path)))[1:]
# scenario names contain commas -> parse from both ends
data = defaultdict(dict)  # (scenario) -> {(round, prov): (srv, pair, wall/cpu)}
order = []
for r in rows:
    rnd = int(r[0]); prov = r[-8]; sc = ",".join(r[1:-8])
    iters, srv_s, wall, cpu, csw, srate, prate = r[-7:]
    if sc not in order: order.append(sc)
    data[sc][(rnd, prov)] = (float(srate), float(prate), float(wall) / float(cpu))
print("| scenario | metric | ring median (min–max) | aws-lc-rs median (min–max) | ratio of medians | paired per-round aws/ring: median (min–max) | rounds aws faster |")
print("|---|---|---|---|---|---|---|")
for sc in order:
    d = data[sc]
    rounds = sorted({k[0] for k in d})
    for mi, mname in ((0, "server ops/CPU-s"), (1, "pair ops/CPU-s")):
        cols = []
        meds = {}
        for p in ("ring", "aws-lc-rs"):
            v = [d[(r, p)][mi] for r in rounds if (r, p) in d]
            if v:
                meds[p] = st.median(v)
                cols.append(f"{st.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f})")
            else:
                cols.append("n/a")
        if len(meds) == 2:
            pr = [d[(r, "aws-lc-rs")][mi] / d[(r, "ring")][mi] for r in rounds]
            ratio = f"{meds['aws-lc-rs']/meds['ring']:.2f}"
            paired = f"{st.median(pr):.2f} ({min(pr):.2f}–{max(pr):.2f})"
            wins = f"{sum(x > 1 for x in pr)}/{len(pr)}"
        else:
            ratio = paired = wins = "–"
        print(f"| {sc} | {mname} | {cols[0]} | {cols[1]} | {ratio} | {paired} | {wins} |")

# Extra: the aws-lc-rs default key exchange (X25519MLKEM768) vs plain X25519 full handshakes.
# Newer raw files carry "<provider>@X25519" arms measured in the same slices as the PQ arm.
pq = [k for k in order if "MLKEM" in k]
full = [k for k in order if k.startswith("tls13-full")]
if pq:
    pq = pq[0]
    rounds = sorted({k[0] for k in data[pq]})
    print()
    print("| comparison (server ops/CPU-s, paired per round) | source | median (min–max) |")
    print("|---|---|---|")
    for base_p in ("aws-lc-rs", "ring"):
        arm = base_p + "@X25519"
        if all((r, arm) in data[pq] for r in rounds):
            src, base = "same slices", {r: data[pq][(r, arm)][0] for r in rounds}
        elif full:
            src, base = "adjacent runs", {r: data[full[0]][(r, base_p)][0] for r in rounds if (r, base_p) in data[full[0]]}
        else:
            continue
        rs = [data[pq][(r, "aws-lc-rs")][0] / base[r] for r in rounds if r in base]
        print(f"| aws-lc-rs X25519MLKEM768 / {base_p} X25519 | {src} | {st.median(rs):.2f} ({min(rs):.2f}–{max(rs):.2f}) |")
