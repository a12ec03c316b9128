"""What the benchmark scripts (ab.py, instr.py, kcount.py) share: a server pinned to CPU 0 on a
fresh data directory, and the W1 rename load (`imgroups-bench load`) pinned to CPU 1.

Run the scripts from the repository root after `cargo build --release -p imgroups-bench`.
"""
import os
import subprocess

BENCH = "target/release/imgroups-bench"


def cpu_secs(pid):
    """User + system CPU seconds of a process so far, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def wait_line(proc, pred, what):
    """Reads the process's stdout up to the first line `pred` accepts, and returns it."""
    for line in proc.stdout:
        if pred(line):
            return line
    raise SystemExit(f"{what}: the process ended early")


def start_server(binary, data, port, wrapper=()):
    """`taskset -c 0 [WRAPPER…] BIN serve` on `data`, gRPC on `port`; returns (process, token)
    once it prints `ready`."""
    server = subprocess.Popen(
        ["taskset", "-c", "0", *wrapper, binary, "serve", "--data", data, "--grpc", port,
         "--http", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    token = None
    for line in server.stdout:
        if line.startswith("token "):
            token = line.split()[1]
        if line.strip() == "ready":
            break
    if token is None:
        raise SystemExit(f"{binary}: the server ended before printing its token and `ready`")
    return server, token


def start_load(port, token, conc, secs, writes=None):
    """`taskset -c 1 imgroups-bench load` against the server, returned once it prints
    "groups created" (the measured part starts there); its last line is the figures."""
    argv = ["taskset", "-c", "1", BENCH, "load", "--url", f"http://{port}", "--token", token,
            "--concurrency", str(conc), "--secs", str(secs)]
    if writes is not None:
        argv += ["--writes", str(writes)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    wait_line(p, lambda l: l.startswith("groups created"), "load")
    return p


def stop(server):
    server.terminate()
    server.wait()
