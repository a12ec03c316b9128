#!/usr/bin/env bash
# Property-based fuzzing of the HTTP/JSON API against docs/openapi.json with Schemathesis
# (from PyPI, into a virtualenv under target/), bounded in examples and time.
#
#   scripts/schemathesis.sh [IMGROUPS_BIN] [MAX_SECONDS]
#   scripts/schemathesis.sh target/debug/imgroups 90
#
# Starts the server on a fresh data directory and a free port, runs Schemathesis with the
# default account's token, stops the server. Exit status is Schemathesis's.
#
# What is checked and what is not, and why:
# - every implemented operation (the `Unimplemented_*` ones answer 501 by design; their
#   shape is tested in the conformance suite);
# - not the SSE stream (`Events_Stream`): it stays open by design, and has its own tests;
# - the checks are that no input makes a server error, that every status and content type is
#   one the document declares, that bodies match the declared schemas, and that input the
#   schema forbids is refused. Not `positive_data_acceptance`: the document is derived from
#   the protobuf messages and cannot express what a valid chat GUID or address is, so
#   schema-valid but meaningless values (an empty chatGuid) are rightly refused with 400.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-target/debug/imgroups}"
MAX_SECONDS="${2:-90}"
SCHEMATHESIS_VERSION="4.32.5"
VENV="target/schemathesis-venv"

if [[ ! -x "$VENV/bin/schemathesis" ]] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

DATA="$(mktemp -d)"
OUT="$DATA/serve.out"
"$BIN" serve --data "$DATA/data" --grpc 127.0.0.1:0 --http 127.0.0.1:0 >"$OUT" 2>"$DATA/serve.err" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  grep -q '^ready$' "$OUT" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/serve.err" >&2; exit 1; }
  sleep 0.1
done
grep -q '^ready$' "$OUT" || { echo "server did not become ready" >&2; exit 1; }
TOKEN="$(sed -n 's/^token //p' "$OUT")"
HTTP="$(sed -n 's/^http listening on //p' "$OUT")"

fuzz() {
  "$VENV/bin/schemathesis" run docs/openapi.json \
    --url "http://$HTTP" \
    --header "Authorization: Bearer $TOKEN" \
    --exclude-operation-id-regex '^(Unimplemented_|Events_Stream$)' \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    --max-examples 25 \
    --max-time "$MAX_SECONDS" \
    --workers 1 \
    --seed 1 \
    --no-color
}

# One worker: CPython 3.11.7 (this machine's Python) can fail inside the interpreter with
# "SystemError: AST constructor recursion depth mismatch" when two threads parse code at once
# (CPython gh-106905, fixed in later releases); seen here twice in a row with two workers.
# One retry remains, only for such a fault inside the interpreter: such a run says nothing
# about the API; a failed check is never retried.
LOG="$DATA/schemathesis.log"
status=0
fuzz 2>&1 | tee "$LOG" || status=$?
if [[ $status -ne 0 ]] && grep -q 'SystemError' "$LOG" && ! grep -qE '^[=_]+ FAILURES [=_]+$' "$LOG"; then
  echo "Schemathesis failed inside the Python interpreter (SystemError above), not on a check: running it once more"
  status=0
  fuzz || status=$?
fi
exit $status
