#!/usr/bin/env python3
"""Instructions per W1 write, counted by `valgrind --tool=callgrind`: figures that machine noise
cannot blur, for the small costs an A/B of timings cannot resolve.

    scripts/instr.py [--writes N] [--concurrency C] [--keep DIR] BIN [BIN ...]
    scripts/instr.py --writes 40000 --concurrency 64 /tmp/base/imgroups target/release/imgroups
    scripts/instr.py --files --writes 40000 DIR/a.callgrind DIR/b.callgrind   # kept files again

For each binary: a fresh data directory, `valgrind --tool=callgrind BIN serve` (pinned to CPU 0),
a warm-up `imgroups-bench load --writes 2000` (pinned to CPU 1), then the measured
`load --writes N`: the counters are zeroed once it prints "groups created" and dumped when it
ends, so only the N renames are counted (all threads together: tokio workers, the store's
writer and syncer, the hub). Prints the instructions per write in all and for the areas below
(inclusive costs of the functions named, so areas nest: transport contains the guard, which
contains the method, …). `--keep DIR` keeps the callgrind files, for `--files` or
`callgrind_annotate --inclusive=yes FILE`.

Callgrind runs one thread at a time and each ~50× slower, so a group-commit batch gathers
more writes than natively: per-batch costs (BEGIN/COMMIT, the fsync hand-off) are
understated, per-request ones are exact. Instructions in the kernel (syscalls, the fsync
itself) are not counted. Run from the repository root after
`cargo build --release -p imgroups-bench`; needs valgrind. Measure binaries built with
`cargo build --profile profiling -p imgroups` (target/profiling/imgroups): the release profile
has no debug info, and the areas by source file (SQLite, jemalloc, memcpy) need it.
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time

from benchlib import start_load, start_server, stop

PORT = "127.0.0.1:50073"

# Areas, as the inclusive cost (own instructions + calls) of the function matching each
# pattern (the largest, when several match); for ("self", pattern), the own instructions of
# every function whose source file matches; ("selfname", pattern): of every function whose
# name matches; ("minus", i, j): area i less area j (0-based in
# this list). Areas nest as indented.
AREAS = [
    ("tokio worker threads (all request handling)",
     [r"^tokio::runtime::scheduler::multi_thread::worker::run$"]),
    ("  connection tasks: h2 frames, HPACK, socket reads and writes",
     [r"^<hyper::proto::h2::server::Server<T,S,B,E> as core::future::future::Future>::poll$"]),
    ("  request tasks (one per call)",
     [r"^<hyper::proto::h2::server::H2Stream<F,B,Ex> as core::future::future::Future>::poll$"]),
    ("    response body and trailers to h2",
     [r"^<hyper::proto::h2::PipeToSendStream<S> as core::future::future::Future>::poll$"]),
    ("    service future (routing, layers, method)",
     [r"^<hyper_util::service::oneshot::Oneshot<S,Req> as core::future::future::Future>::poll$"]),
    # Before the operation registry the generated GroupServiceServer served the
    # method; since, the route's own future does (inlined, so it has no area of its own: its
    # cost is in "the rest"), and the handler is the generic `Call<R>`.
    ("      tonic method: decode, handler, encode",
     [r"^<imgroups_proto::pb::group_service_server::GroupServiceServer<T> as tower_service::Service<http::request::Request<B>>>::call::\{\{closure\}\}$"]),
    ("        handler (SetDisplayName)",
     [r"^<imgroups_server::grpc::Grpc as imgroups_proto::pb::group_service_server::GroupService>::set_display_name::\{\{closure\}\}$",
      r"^<imgroups_server::grpc::Call<R> as tonic::server::service::UnaryService<.*>>::call::\{\{closure\}\}$"]),
    ("      the rest: tonic and axum routing, our layers (metrics, guard), message read",
     ("minus", 4, 5)),
    ("      metrics: after the response started",
     [r"^imgroups_server::(metrics|observe)::observed$"]),
    ("    admission: token check (cache + revocations fstat), limits, faults",
     [r"^imgroups_server::grpc::guard::admit::\{\{closure\}\}$",
      r"^imgroups_server::(api|app)::App::caller::\{\{closure\}\}$",
      r"^<imgroups_store_sqlite::SqliteStore as imgroups_core::port::store::Accounts>::authenticate_cached$",
      r"^<imgroups_store_sqlite::SqliteStore as imgroups_core::port::store::Accounts>::authenticate::\{\{closure\}\}$"]),
    ("writer thread: apply + commit", [r"^imgroups_store(_sqlite)?::(writer|pipeline)::Writer::run$"]),
    ("syncer thread: fdatasync hand-off, answers",
     [r"^imgroups_store(_sqlite)?::(writer|pipeline)::Syncer::run$"]),
    ("jemalloc background thread", [r"^background_thread_entry$"]),
    # Release builds carry no debug info (no source files), so these go by function name:
    # jemalloc's symbols all carry its prefix; SQLite's static functions have no common one,
    # so that row counts its public functions and the B-tree, pager, WAL, VDBE and page
    # cache internals by their usual names (most, not all, of SQLite).
    ("(across areas) SQLite (by function name)",
     ("selfname", r"^(sqlite3|btree|balance|pager|pcache|wal|vdbe|memjrnl|unix(Write|Read|Sync|Lock|Unlock|FileControl)"
                  r"|defragmentPage|insertCell|dropCell|fillInCell|pageInsertArray|rebuildPage|editPage"
                  r"|moveToRoot|moveToChild|getAndInitPage|accessPayload|cellSize|allocateSpace|freeSpace"
                  r"|clearCell|decodeFlags|getPageNormal|releasePage|copyNodeContent|assemblePage)")),
    ("(across areas) malloc/free", ("selfname", r"^(_rjem_|__rustc::__rust_(alloc|dealloc|realloc))")),
    ("(across areas) memcpy", ("self", r"memmove-vec-unaligned-erms|memcpy")),
]


def parse(path):
    """Own cost by (file, function), inclusive cost by function, from a callgrind file."""
    names = {"fl": {}, "fn": {}}
    own, incl = {}, {}
    fl = fi = fn = None
    call = False
    total = 0
    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
        if not m:
            return rest
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), "?")
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                cost = int(parts[1])
                incl[fn] = incl.get(fn, 0) + cost
                if call:
                    call = False
                else:
                    key = (fi or fl, fn)
                    own[key] = own.get(key, 0) + cost
                    total += cost
                continue
            key, _, rest = line.rstrip("\n").partition("=")
            if key == "fl":
                fl, fi = name("fl", rest), None
            elif key in ("fi", "fe"):
                fi = name("fl", rest)
            elif key == "fn":
                fn, fi = name("fn", rest), None
            elif key in ("cfi", "cfl"):
                name("fl", rest)
            elif key == "cfn":
                name("fn", rest)
            elif key == "calls":
                call = True
    return total, own, incl


def run_one(binary, writes, conc, work, keep):
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    out = os.path.join(work, "callgrind.out.%p")
    server, token = start_server(
        binary, data, PORT,
        wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"))

    def load(n, measured):
        p = start_load(PORT, token, conc, 100000, writes=n)
        if measured:
            subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True,
                           stdout=subprocess.DEVNULL)
        t0 = time.time()
        rest = p.stdout.read()
        p.wait()
        if measured:
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                           stdout=subprocess.DEVNULL)
        return rest.strip(), time.time() - t0

    load(2000, False)
    line, secs = load(writes, True)
    stop(server)
    dumps = sorted(f for f in os.listdir(work) if f.startswith("callgrind.out.") and "." in f[15:])
    # The dump made by `callgrind_control -d` is `<file>.1`; the one at exit is `<file>`.
    dump = next(os.path.join(work, f) for f in dumps if f.endswith(".1"))
    if keep:
        os.makedirs(keep, exist_ok=True)
        dest = os.path.join(keep, os.path.basename(binary.rstrip("/")) + f".c{conc}.callgrind")
        shutil.copy(dump, dest)
        print(f"  kept {dest}")
    return parse(dump), line, secs


def areas(total, own, incl):
    res = [("total", total)]
    for name, pats in AREAS:
        if isinstance(pats, tuple) and pats[0] == "minus":
            res.append((name, res[pats[1] + 1][1] - res[pats[2] + 1][1]))
            continue
        if isinstance(pats, tuple) and pats[0] == "selfname":
            res.append((name, sum(v for (_, fn), v in own.items() if fn and re.search(pats[1], fn))))
            continue
        if isinstance(pats, tuple):
            res.append((name, sum(v for (f, _), v in own.items() if f and re.search(pats[1], f))))
            continue
        cost = 0
        for pat in pats:
            hits = [v for f, v in incl.items() if f and re.search(pat, f)]
            if hits:
                cost = max(hits)
                break
        res.append((name, cost))
    return res


def table_name(binary):
    base = os.path.basename(binary)
    return base if base != "imgroups" else binary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writes", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--keep", help="keep the callgrind files here")
    ap.add_argument("--files", action="store_true",
                    help="the arguments are callgrind files kept earlier (--keep) of --writes writes")
    ap.add_argument("bins", nargs="+")
    a = ap.parse_args()
    table = []
    for binary in a.bins:
        if a.files:
            table.append((binary, areas(*parse(binary))))
            continue
        work = tempfile.mkdtemp(prefix="imgroups-instr-")
        try:
            (total, own, incl), line, secs = run_one(binary, a.writes, a.concurrency, work, a.keep)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"{binary}: {line} ({secs:.0f} s under callgrind)", flush=True)
        table.append((binary, areas(total, own, incl)))
    print(f"--- instructions per write ({a.writes} writes)")
    names = [n for n, _ in table[0][1]]
    print("| area | " + " | ".join(table_name(b) for b, _ in table) + " |")
    print("|---|" + "---|" * len(table))
    for k, n in enumerate(names):
        print(f"| {n} | " + " | ".join(f"{r[k][1] / a.writes:,.0f}" for _, r in table) + " |")


if __name__ == "__main__":
    main()
