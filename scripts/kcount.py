#!/usr/bin/env python3
"""Kernel-side counts per W1 write: system calls, context switches, page faults, user and
system CPU, per server thread, over a fixed number of writes (`perf stat`, software events and
syscall tracepoints). What callgrind's instruction counts (scripts/instr.py) leave out.

    scripts/kcount.py [--writes N] [--concurrency C] [--repeat R] BIN [BIN ...]
    scripts/kcount.py --writes 40000 --concurrency 16 --repeat 2 /tmp/base/imgroups target/release/imgroups

For each repeat and each binary (interleaved: A B A B): a fresh data directory,
`taskset -c 0 BIN serve`, a warm-up `imgroups-bench load --writes 2000` (pinned to CPU 1),
then the measured `load --writes N`: `perf stat --per-thread -p SERVER` starts once it prints
"groups created" and is stopped when it ends. User and system CPU come from /proc (10 ms
ticks), per thread. Prints, per binary, the median over repeats of each count per write, in
all and by thread (tokio workers, writer, syncers, the rest), and the fsyncs per write
(`fdatasync`: one per committed batch, so 1 / fdatasyncs is the mean batch size).

These counts do not depend on instruction speed, but batching does depend on timing (how
many requests arrive during an fsync), so counts per batch move somewhat with the host's
load: run the binaries interleaved and read the spread. Needs perf with tracepoints (root,
or perf_event_paranoid ≤ -1). Run from the repository root after
`cargo build --release -p imgroups-bench`.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from benchlib import median, start_load, start_server, stop

PORT = "127.0.0.1:50074"

SYSCALLS = ["fdatasync", "fsync", "futex", "write", "writev", "pwrite64", "pread64", "read",
            "epoll_wait", "sendto", "recvfrom", "sendmsg", "recvmsg", "sched_yield", "statx",
            "newfstat", "madvise", "mmap", "munmap", "clock_nanosleep", "nanosleep", "fcntl",
            "lseek", "openat", "close"]
EVENTS = (["task-clock", "context-switches", "cpu-migrations", "page-faults",
           "raw_syscalls:sys_enter", "sched:sched_wakeup"]
          + [f"syscalls:sys_enter_{s}" for s in SYSCALLS])


def thread_group(comm):
    """A thread's group by its name (perf prints `comm-tid`)."""
    name = comm.rsplit("-", 1)[0]
    if name.startswith("tokio-r"):
        return "tokio workers"
    if "writer" in name:
        return "writer"
    if "syncer" in name:
        return "syncers"
    if "ckpt" in name or "checkpoint" in name:
        return "checkpointer"
    return "other (" + name + ")"


def proc_threads(pid):
    """utime, stime in seconds by thread group."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        g = thread_group(comm + "-" + tid)
        u, s = out.get(g, (0.0, 0.0))
        out[g] = (u + int(fields[11]) / tick, s + int(fields[12]) / tick)
    return out


def run_one(binary, writes, conc, work):
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    server, token = start_server(binary, data, PORT)

    def load(n, measured):
        p = start_load(PORT, token, conc, 100000, writes=n)
        perf = None
        if measured:
            statfile = os.path.join(work, "perf.txt")
            before = proc_threads(server.pid)
            perf = subprocess.Popen(
                ["perf", "stat", "-x", ";", "--per-thread", "-e", ",".join(EVENTS),
                 "-p", str(server.pid), "-o", statfile],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.05)  # perf attached before the writes start counting
        t0 = time.time()
        rest = p.stdout.read()
        p.wait()
        secs = time.time() - t0
        if not measured:
            return None
        perf.send_signal(signal.SIGINT)
        perf.wait()
        after = proc_threads(server.pid)
        cpu = {g: (after[g][0] - before.get(g, (0, 0))[0], after[g][1] - before.get(g, (0, 0))[1])
               for g in after}
        counts = {}
        for line in open(statfile):
            parts = line.rstrip("\n").split(";")
            if len(parts) < 4 or line.startswith("#"):
                continue
            comm, value, _, event = parts[:4]
            try:
                v = float(value)
            except ValueError:
                continue
            g = thread_group(comm)
            counts[(g, event)] = counts.get((g, event), 0) + v
        return rest.strip(), secs, counts, cpu

    load(2000, False)
    result = load(writes, True)
    stop(server)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writes", type=int, default=40000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", action="store_true", help="also print counts by thread")
    ap.add_argument("bins", nargs="+")
    a = ap.parse_args()
    runs = {b: [] for b in a.bins}
    for r in range(a.repeat):
        for binary in a.bins:
            work = tempfile.mkdtemp(prefix="imgroups-kcount-")
            try:
                line, secs, counts, cpu = run_one(binary, a.writes, a.concurrency, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            load = open("/proc/loadavg").read().split()[0]
            tot = lambda ev: sum(v for (g, e), v in counts.items() if e == ev)
            fds = tot("syscalls:sys_enter_fdatasync")
            print(f"r{r} {binary}: {line} ({secs:.1f} s, load {load}); per write: CPU"
                  f" {tot('task-clock') * 1000 / a.writes:.1f} µs, user"
                  f" {sum(x[0] for x in cpu.values()) * 1e6 / a.writes:.1f}, system"
                  f" {sum(x[1] for x in cpu.values()) * 1e6 / a.writes:.1f},"
                  f" context switches {tot('context-switches') / a.writes:.3f},"
                  f" batch {a.writes / fds if fds else 0:.1f}", flush=True)
            runs[binary].append((counts, cpu))
    n = a.writes
    groups = sorted({g for b in a.bins for c, _ in runs[b] for g, _ in c})
    print(f"--- per write ({n} writes, c={a.concurrency}, median of {a.repeat}; all threads)")
    print("| count per write | " + " | ".join(b for b in a.bins) + " |")
    print("|---|" + "---|" * len(a.bins))

    def total(c, ev, only=None):
        return sum(v for (g, e), v in c.items() if e == ev and (only is None or g == only))

    rows = [("CPU µs (task-clock)", lambda c, u, g: total(c, "task-clock", g) * 1000 / n),
            ("user µs (/proc)", lambda c, u, g: sum(x[0] for k, x in u.items() if g in (None, k)) * 1e6 / n),
            ("system µs (/proc)", lambda c, u, g: sum(x[1] for k, x in u.items() if g in (None, k)) * 1e6 / n)]
    for ev in EVENTS[1:]:
        label = ev.replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "all syscalls")
        rows.append((label, lambda c, u, g, ev=ev: total(c, ev, g) / n))
    for label, f in rows:
        runs_of = [[f(c, u, None) for c, u in runs[b]] for b in a.bins]
        if all(max(xs) < 0.0005 for xs in runs_of):
            continue
        vals = [f"{median(xs):.3f}" + (f" ({min(xs):.3f}–{max(xs):.3f})" if len(xs) > 1 else "")
                for xs in runs_of]
        print(f"| {label} | " + " | ".join(vals) + " |")
    fd = [median([total(c, "syscalls:sys_enter_fdatasync") for c, _ in runs[b]]) for b in a.bins]
    print("| writes per fdatasync (mean batch) | " + " | ".join(f"{n / x:.1f}" if x else "-" for x in fd) + " |")
    if a.threads:
        for g in groups:
            print(f"--- {g}, per write")
            for label, f in rows:
                vals = [median([f(c, u, g) for c, u in runs[b]]) for b in a.bins]
                if all(abs(v) < 0.0005 for v in vals):
                    continue
                print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")


if __name__ == "__main__":
    main()
