#!/usr/bin/env python3
"""chat.db message rows → a live subscriber: the ingest latency of the Mac backend for what
people say (issue 25: "a message row appended by another process reaches a live SDK
subscriber with p99 ≤ 100 ms"). `imgroups-bench --workload chatdb` measures group-change rows
(renames); this measures message rows.

    scripts/chatdb_message_latency.py BIN HOME [N]

HOME is a fixture home holding Library/Messages/chat.db (e.g. the bench's chatdb fixture,
copied aside by a --server-bin wrapper); it is copied to a temporary directory first, so it is
not changed. BIN serve --backend chatdb starts on the copy (pinned to CPU 0) and imports it;
after `ready`, a live SSE stream (GET /v1/events:stream) is opened, and this process commits N
(default 300) message rows into a group chat, as Messages does: the `message` row (item_type
0, with text) and its `chat_message_join` row in one transaction, WAL, synchronous=FULL, 20–80
ms apart. Latency = the event's arrival on the stream − the writer's clock right after its
commit (one machine). Prints p50/p90/p99/max and how many rows arrived, missing, duplicated.
"""
import http.client
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

# Functions Messages' triggers call, defined as no-ops (as the fixture does).
MESSAGES_ONLY = [("verify_chat", 1), ("before_delete_attachment_path", 2),
                 ("delete_attachment_path", 1), ("after_delete_message_plugin", 2),
                 ("delete_chat_background_before_deleting_chat", 2), ("is_mic_enabled", 0),
                 ("guid_for_chat", 3)]
APPLE_EPOCH_NS = 978_307_200 * 1_000_000_000


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, fixture = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    work = tempfile.mkdtemp(prefix="imgroups-msglat-")
    home, data = os.path.join(work, "home"), os.path.join(work, "data")
    shutil.copytree(fixture, home)
    db = os.path.join(home, "Library", "Messages", "chat.db")
    env = dict(os.environ, IMGROUPS_HTTP="127.0.0.1:0")
    env.pop("IMGROUPS_DATABASE_URL", None)
    server = subprocess.Popen(
        ["taskset", "-c", "0", binary, "serve", "--data", data, "--grpc", "127.0.0.1:0",
         "--http", "127.0.0.1:0", "--durability", "full", "--backend", "chatdb",
         "--home", home, "--account", "me@icloud.com"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        token = address = None
        for line in server.stdout:
            line = line.strip()
            if line.startswith("token "):
                token = line.split()[1]
            elif line.startswith("http listening on "):
                address = line.split()[-1]
            elif line == "ready":
                break
        if not (token and address):
            sys.exit("the server printed no token or HTTP address before `ready`")
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        arrived = {}
        marks = {f"LAT-{i}-": i for i in range(n)}

        def listen():
            host, port = address.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port))
            conn.request("GET", "/v1/events:stream", headers={"authorization": f"Bearer {token}"})
            for raw in conn.getresponse():
                line = raw.decode(errors="replace")
                if not line.startswith("data:"):
                    continue
                at = time.time_ns()
                for mark, i in marks.items():
                    if mark in line:
                        arrived.setdefault(i, []).append(at)

        threading.Thread(target=listen, daemon=True).start()
        time.sleep(1)
        committed = write(db, n)
        time.sleep(2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    latency = sorted((arrived[i][0] - at) / 1e6 for i, at in committed.items() if i in arrived)
    if not latency:
        sys.exit("no row arrived")
    dupes = sum(1 for times in arrived.values() if len(times) > 1)
    q = lambda p: latency[min(len(latency) - 1, int(p * len(latency)))]
    print(f"{len(latency)} of {n} rows arrived, {n - len(latency)} missing, {dupes} duplicated; "
          f"p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, p99 {q(0.99):.1f} ms, "
          f"max {latency[-1]:.1f} ms; load average {os.getloadavg()[0]:.2f}")


def write(db, n):
    """Commits n message rows as Messages does; the commit time of each."""
    conn = sqlite3.connect(db, isolation_level=None)
    for name, args in MESSAGES_ONLY:
        conn.create_function(name, args, lambda *a: 0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    chat, handle = conn.execute(
        "SELECT c.ROWID, h.handle_id FROM chat c JOIN chat_handle_join h ON h.chat_id = c.ROWID "
        "WHERE c.style = 43 ORDER BY c.ROWID LIMIT 1").fetchone()
    rng = random.Random(7)
    committed = {}
    for i in range(n):
        time.sleep(rng.uniform(0.02, 0.08))
        date = time.time_ns() - APPLE_EPOCH_NS
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO message (guid, text, handle_id, service, date, is_from_me, is_finished, "
            "item_type) VALUES (?, ?, ?, 'iMessage', ?, 0, 1, 0)",
            (f"LAT-{i}-{rng.getrandbits(32):08X}", f"live message {i}", handle, date))
        message = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        conn.execute(
            "INSERT INTO chat_message_join (chat_id, message_id, message_date) VALUES (?, ?, ?)",
            (chat, message, date))
        conn.execute("COMMIT")
        committed[i] = time.time_ns()
    return committed


if __name__ == "__main__":
    main()
