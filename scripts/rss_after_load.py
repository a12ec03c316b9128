#!/usr/bin/env python3
"""Does the server give memory back after a load spike? (SECURITY.md, "Memory after load")

Starts `imgroups serve` on a fresh data directory, then measures its resident memory
(VmRSS) idle, while a burst holds it (STREAMS open SSE event streams plus BODIES concurrent
large request bodies), and at intervals after every client has gone. Standard library only.

    python3 scripts/rss_after_load.py --bin target/release/imgroups
    _RJEM_MALLOC_CONF=background_thread:false python3 scripts/rss_after_load.py --bin ...

The environment is passed to the server, so `_RJEM_MALLOC_CONF` (jemalloc's MALLOC_CONF
under the prefixed names of tikv-jemallocator) changes its allocator settings for a run.
"""

import argparse
import asyncio
import os
import resource
import subprocess
import tempfile
import time


def rss_kib(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def start(binary, data):
    proc = subprocess.Popen(
        [binary, "serve", "--data", data, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    http = token = None
    for line in proc.stdout:
        line = line.strip()
        if line.startswith("http listening on "):
            http = line.removeprefix("http listening on ")
        elif line.startswith("token "):
            token = line.removeprefix("token ")
        elif line == "ready":
            break
    return proc, http, token


async def open_stream(host, port, token):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"GET /v1/events:stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n"
            "accept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:80]
    return writer


async def big_body(host, port, token, size):
    reader, writer = await asyncio.open_connection(host, port)
    # A syntactically valid setIcon body whose icon is not an image: read whole, then refused.
    body = b'{"chatGuid":"any;+;nope","icon":"' + b"A" * size + b'"}'
    writer.write(
        (
            f"POST /v1/groups:setIcon HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
    )
    writer.write(body)
    await writer.drain()
    await reader.read()
    writer.close()


async def burst(pid, http, token, streams, bodies, body_bytes):
    host, port = http.rsplit(":", 1)
    writers = []
    for i in range(0, streams, 200):
        writers += await asyncio.gather(
            *(open_stream(host, port, token) for _ in range(min(200, streams - i)))
        )
    await asyncio.gather(*(big_body(host, port, token, body_bytes) for _ in range(bodies)))
    held = rss_kib(pid)
    for w in writers:
        w.close()
    return held


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--bodies", type=int, default=32)
    ap.add_argument("--body-bytes", type=int, default=12 * 1024 * 1024)
    ap.add_argument("--idle", type=int, default=30)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with tempfile.TemporaryDirectory() as data:
        proc, http, token = start(args.bin, data)
        try:
            time.sleep(2)
            before = rss_kib(proc.pid)
            held = asyncio.run(
                burst(proc.pid, http, token, args.streams, args.bodies, args.body_bytes)
            )
            peak = rss_kib(proc.pid, "VmHWM:")
            after = {}
            start_idle = time.monotonic()
            for at in (1, 5, 10, 20, args.idle):
                time.sleep(max(0.0, start_idle + at - time.monotonic()))
                after[at] = rss_kib(proc.pid)
        finally:
            proc.kill()
            proc.wait()
    conf = os.environ.get("_RJEM_MALLOC_CONF", "(built-in)")
    mib = lambda kib: f"{kib / 1024:.0f} MiB"
    print(f"malloc conf: {conf}; {args.streams} SSE streams + {args.bodies} bodies of "
          f"{args.body_bytes // (1024 * 1024)} MiB")
    print(f"before {mib(before)} | held {mib(held)} | peak {mib(peak)} | after idle: "
          + ", ".join(f"{at} s {mib(kib)}" for at, kib in after.items()))


if __name__ == "__main__":
    main()
