#!/usr/bin/env python3
"""Interleaved A/B of server binaries under the W1 rename load.

    scripts/ab.py ROUNDS SECS CONCURRENCIES BIN [BIN ...]
    scripts/ab.py 4 2 16,64 /tmp/before/imgroups target/release/imgroups

For each round and each binary: a fresh data directory, `taskset -c 0 BIN serve`, then
`taskset -c 1 imgroups-bench load` at each concurrency; server CPU is read from /proc over the
measured part only (after `load` prints "groups created"). Prints each run, then medians.
Run from the repository root after `cargo build --release -p imgroups-bench`.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

BENCH = "target/release/imgroups-bench"
PORT = "127.0.0.1:50072"


def cpu_secs(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    rounds, secs, concs, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4:]
    results = {}
    work = tempfile.mkdtemp(prefix="imgroups-ab-")
    try:
        for r in range(rounds):
            for i, binary in enumerate(bins):
                data = os.path.join(work, str(i))
                shutil.rmtree(data, ignore_errors=True)
                server = subprocess.Popen(
                    ["taskset", "-c", "0", binary, "serve", "--data", data, "--grpc", PORT,
                     "--http", "127.0.0.1:0"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                token = None
                for line in server.stdout:
                    if line.startswith("token "):
                        token = line.split()[1]
                    if line.strip() == "ready":
                        break
                for c in concs:
                    load = subprocess.Popen(
                        ["taskset", "-c", "1", BENCH, "load", "--url", f"http://{PORT}",
                         "--token", token, "--concurrency", c, "--secs", secs],
                        stdout=subprocess.PIPE, text=True)
                    load.stdout.readline()  # "groups created"
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
                server.terminate()
                server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("--- medians")
    for (i, c), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rates = sorted(x[0] for x in runs)
        print(f"bin{i} {bins[i]} c={c}: {rates[len(rates) // 2]:.0f}/s; all {[int(x) for x in rates]};"
              f" p99 {[x[1] for x in runs]}; cpu us/op {sorted(round(x[2], 1) for x in runs)}")


if __name__ == "__main__":
    main()
