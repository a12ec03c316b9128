#!/usr/bin/env bash
# Runs the quickstart of README.md, and the copy-paste examples of docs/http.md and
# docs/simulator.md, exactly as written and in the order written, so an example that fails as
# written fails CI.
#
#   scripts/readme-quickstart.sh [PATH/TO/imgroups]     (default: target/debug/imgroups)
#
# What runs is every ```sh block preceded by an HTML comment (invisible on GitHub):
#   <!-- quickstart -->                 run it; any failing command fails the run
#   <!-- quickstart: server -->         README only: the `imgroups serve` block; started in the
#                                       background, on free ports and a temporary data directory
#   <!-- quickstart: output -->         README only: the example of what `serve` prints; its
#                                       lines must come in the order the server prints them
#   <!-- quickstart: watch "TEXT" -->   a command that runs until stopped (a stream): started in
#                                       the background; TEXT must appear in its output by the
#                                       end of the document
# Each document runs in one bash session of its own (`set -euo pipefail`), so a variable set in
# one block is there in the next, as in a terminal. The only changes made to the commands:
# `127.0.0.1:8080` and `127.0.0.1:50051` become the test server's addresses, the binary under
# test comes first on PATH (the README's `cargo run -- serve` runs it as `imgroups serve`, and
# its `$PWD/target/debug` on PATH names the directory that holds it), and IMGROUPS_SERVER /
# IMGROUPS_ADDRESS point the CLI, the Rust example and the Node tour at the test server (their
# defaults are the addresses replaced).
# Needs bash, python3 (to read the Markdown), curl, jq, base64, node + npm, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN=${1:-target/debug/imgroups}
[[ -x "$BIN" ]] || { echo "quickstart: no imgroups binary at $BIN (cargo build -p imgroups)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
for tool in python3 curl jq base64 node npm cargo; do
  command -v "$tool" >/dev/null || { echo "quickstart: needs $tool on PATH" >&2; exit 1; }
done

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# The binary under test answers to `imgroups`, whatever its path.
mkdir -p "$WORK/bin"
ln -s "$BIN" "$WORK/bin/imgroups"
export PATH="$WORK/bin:$PATH"
export IMGROUPS_DATA="$WORK/data"
# Nothing from the caller's environment may choose another store or server.
unset IMGROUPS_CONFIG IMGROUPS_DATABASE_URL IMGROUPS_TOKEN IMGROUPS_SERVER IMGROUPS_TLS_CA

# Markdown → one bash script per document.
python3 - "$WORK" README.md docs/http.md docs/simulator.md <<'PY'
import json, re, shlex, sys

work, docs = sys.argv[1], sys.argv[2:]
marker = re.compile(r'^<!-- quickstart(?::\s*(server|output|watch)(?:\s+"([^"]*)")?)?\s*-->\s*$')
plan = {}
for doc in docs:
    lines = open(doc, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = marker.match(lines[i])
        if not m:
            i += 1
            continue
        kind, expect, at = m.group(1) or "run", m.group(2), i + 1
        i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines) or not lines[i].startswith("```"):
            sys.exit(f"{doc}:{at}: a quickstart marker must be followed by a code block")
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        blocks.append({"kind": kind, "expect": expect, "line": at, "body": "\n".join(body)})
    if not blocks:
        sys.exit(f"{doc}: no quickstart blocks")
    plan[doc] = blocks
json.dump(plan, open(f"{work}/plan.json", "w"))
PY

block_of() { # DOC KIND -> the body of the document's first block of that kind
  python3 -c 'import json,sys; print(next(b["body"] for b in json.load(open(sys.argv[1]))[sys.argv[2]] if b["kind"]==sys.argv[3]))' "$WORK/plan.json" "$1" "$2"
}

# The server, from the README's own `serve` block, on free ports.
step_started=$(date +%s)
SERVE=$(block_of README.md server)
echo "--- README.md: $SERVE"
# The README builds and runs the server with cargo; here it is the binary under test.
SERVE=${SERVE//cargo run --release -- /imgroups }
SERVE=${SERVE//cargo run -- /imgroups }
IMGROUPS_GRPC=127.0.0.1:0 IMGROUPS_HTTP=127.0.0.1:0 bash -c "$SERVE" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 200); do
  grep -qx ready "$WORK/serve.out" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; echo "quickstart: serve exited" >&2; exit 1; }
  sleep 0.1
done
grep -qx ready "$WORK/serve.out" || { cat "$WORK/serve.err" >&2; echo "quickstart: serve did not print ready" >&2; exit 1; }
cat "$WORK/serve.out"
GRPC=$(sed -n 's/^grpc listening on //p' "$WORK/serve.out")
HTTP=$(sed -n 's/^http listening on //p' "$WORK/serve.out")
grep -qx "console http://$HTTP/console/" "$WORK/serve.out" ||
  { echo "quickstart: serve printed no 'console http://$HTTP/console/' line" >&2; exit 1; }
# The README's example output: the same lines, in the same order (first words compared).
expected=$(block_of README.md output | awk '{print $1}' | paste -sd' ')
printed=$(awk '{print $1}' "$WORK/serve.out" | paste -sd' ')
[[ "$expected" == "$printed" ]] ||
  { echo "quickstart: README shows serve printing [$expected], it printed [$printed]" >&2; exit 1; }
export IMGROUPS_SERVER="http://$GRPC" IMGROUPS_ADDRESS="$GRPC"

# One bash session per document.
python3 - "$WORK" "$GRPC" "$HTTP" <<'PY'
import json, shlex, sys

work, grpc, http = sys.argv[1:]
plan = json.load(open(f"{work}/plan.json"))
for n, (doc, blocks) in enumerate(plan.items()):
    out = ["set -euo pipefail", "set -m", 'WATCHES=()', 'cd "$QUICKSTART_DIR"',
           # Streams still running when a block fails are stopped with the session.
           """trap 'for w in "${WATCHES[@]}"; do kill -- -"${w%%|*}" 2>/dev/null || true; done' EXIT"""]
    for b in blocks:
        if b["kind"] in ("server", "output"):
            continue
        body = b["body"].replace("127.0.0.1:8080", http).replace("127.0.0.1:50051", grpc)
        body = body.replace("$PWD/target/debug", f"{work}/bin")
        where = f"{doc}:{b['line']}"
        out.append(f"echo {shlex.quote('--- ' + where)}")
        out.append(f"printf '%s\\n' {shlex.quote(body)} | sed 's/^/$ /'")
        if b["kind"] == "watch":
            log = f"{work}/watch-{n}-{b['line']}.out"
            out.append(f"( {body}\n) >{shlex.quote(log)} 2>&1 &")
            out.append(f"WATCHES+=(\"$!|{log}|{b['expect']}|{where}\")")
            out.append("disown $!  # stopped below; no job-control notice when it is")
        else:
            out.append(f"QUICKSTART_AT={shlex.quote(where)}")
            out.append(body)
    # Each stream must have shown what the document says it shows, within 10 s.
    out.append('''
failed=0
for w in "${WATCHES[@]}"; do
  IFS='|' read -r pid log expect where <<<"$w"
  for _ in $(seq 1 100); do grep -qF -- "$expect" "$log" && break; sleep 0.1; done
  kill -- -"$pid" 2>/dev/null || true
  if ! grep -qF -- "$expect" "$log"; then
    echo "quickstart: $where never showed \\"$expect\\"; its output:" >&2; sed 's/^/  /' "$log" >&2; failed=1
  fi
done
exit $failed''')
    open(f"{work}/doc-{n}.sh", "w").write("\n".join(out) + "\n")
    open(f"{work}/doc-{n}.name", "w").write(doc)
PY

for script in "$WORK"/doc-*.sh; do
  doc=$(cat "${script%.sh}.name")
  # The README's commands run from the repository, as it says (cd examples/…, cargo run);
  # the other documents' from a scratch directory, so files they write (icons) land there.
  if [[ "$doc" == README.md ]]; then dir=$ROOT; else dir=$(mktemp -d "$WORK/cwd.XXXX"); fi
  echo "=== $doc"
  started=$(date +%s)
  # Generous: on a first run the README's blocks install two npm examples and compile a Rust
  # example (cargo run), which takes minutes on a busy 2-core machine.
  if ! QUICKSTART_DIR=$dir timeout 360 bash -c "trap 'echo \"quickstart: failed in \$QUICKSTART_AT\" >&2' ERR; source $script"; then
    echo "quickstart: $doc failed as written (server log: below)" >&2
    tail -n 20 "$WORK/serve.err" >&2
    exit 1
  fi
  echo "=== $doc: $(( $(date +%s) - started )) s"
done
echo "quickstart: README.md, docs/http.md, docs/simulator.md ran as written in $(( $(date +%s) - step_started )) s"
