#!/usr/bin/env python3
"""Interleaved A/B of server binaries under the W1 rename load, against a pinned baseline.

    scripts/ab.py [--baseline BIN] ROUNDS SECS CONCURRENCIES BIN [BIN ...]
    scripts/ab.py --baseline /tmp/base/imgroups 6 3 16,64 /tmp/start/imgroups target/release/imgroups

For each round and each binary: a fresh data directory, `taskset -c 0 BIN serve`, then
`taskset -c 1 imgroups-bench load` at each concurrency; server CPU is read from /proc over the
measured part only (after `load` prints "groups created"). Prints each run, then medians, then
each binary's ratio to the baseline: throughput and server CPU per write, taken round by round
(same round, same minutes) and their median.

The baseline (`--baseline BIN`, or the environment variable IMGROUPS_AB_BASELINE; without
either, the first BIN) is the pinned release binary every change is measured against, so
small costs cannot add up unseen from one "within noise" change to the next. BENCHMARKS.md
("Pinned baseline") says which commit it is and keeps every change's ratios. Build it once
from its commit, beside the checkout:

    git worktree add --detach ../imgroups-base COMMIT
    (cd ../imgroups-base && cargo build --release -p imgroups)
    cp ../imgroups-base/target/release/imgroups /somewhere/imgroups-COMMIT
    export IMGROUPS_AB_BASELINE=/somewhere/imgroups-COMMIT

Give it the change's own starting binary and the change: `ab.py 6 3 16,64 START NEW`.
Run from the repository root after `cargo build --release -p imgroups-bench`.
"""
import argparse
import os
import re
import shutil
import tempfile

from benchlib import cpu_secs, median, start_load, start_server, stop

PORT = "127.0.0.1:50072"


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--baseline", default=os.environ.get("IMGROUPS_AB_BASELINE"),
                    help="the pinned baseline binary (default: $IMGROUPS_AB_BASELINE, else the first BIN)")
    ap.add_argument("rounds", type=int)
    ap.add_argument("secs")
    ap.add_argument("concurrencies")
    ap.add_argument("bins", nargs="+")
    a = ap.parse_args()
    rounds, secs, concs = a.rounds, a.secs, a.concurrencies.split(",")
    bins = list(a.bins)
    if a.baseline and a.baseline not in bins:
        bins.insert(0, a.baseline)
    base = bins.index(a.baseline) if a.baseline else 0
    for b in bins:
        if not os.access(b, os.X_OK):
            ap.error(f"{b}: not an executable")
    results = {}
    work = tempfile.mkdtemp(prefix="imgroups-ab-")
    try:
        for r in range(rounds):
            for i, binary in enumerate(bins):
                data = os.path.join(work, str(i))
                shutil.rmtree(data, ignore_errors=True)
                server, token = start_server(binary, data, PORT)
                for c in concs:
                    load = start_load(PORT, token, c, secs)
                    cpu0 = cpu_secs(server.pid)
                    out = load.stdout.read()
                    load.wait()
                    cpu = cpu_secs(server.pid) - cpu0
                    m = re.search(r": ([\d.]+)(k?)/s p50 (\S+ \S+) p99 (\S+ \S+)", out)
                    rate = float(m.group(1)) * (1000 if m.group(2) else 1)
                    us_per_op = 1e6 * cpu / (rate * float(secs))
                    results.setdefault((i, c), []).append((rate, m.group(4), us_per_op))
                    print(f"r{r} bin{i} c={c:>3} {rate:8.0f}/s p99 {m.group(4):>10}"
                          f" cpu {us_per_op:.1f} us/op", flush=True)
                stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("--- medians")
    for (i, c), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rates = sorted(x[0] for x in runs)
        print(f"bin{i} {bins[i]} c={c}: {median(rates):.0f}/s; all {[int(x) for x in rates]};"
              f" p99 {[x[1] for x in runs]}; cpu us/op {sorted(round(x[2], 1) for x in runs)}"
              f" (median {median([x[2] for x in runs]):.1f})")
    print(f"--- ratio to the baseline bin{base} {bins[base]}, round by round (median, min-max)")
    for c in concs:
        b = results[(base, c)]
        for i in range(len(bins)):
            runs = results[(i, c)]
            thr = [x[0] / y[0] for x, y in zip(runs, b)]
            cpu = [x[2] / y[2] for x, y in zip(runs, b)]
            print(f"bin{i} c={c}: throughput {median(thr):.3f} ({min(thr):.2f}-{max(thr):.2f}),"
                  f" cpu per write {median(cpu):.3f} ({min(cpu):.2f}-{max(cpu):.2f})  {bins[i]}")


if __name__ == "__main__":
    main()
