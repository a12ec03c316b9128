// The group and chat suites again, with every groups.* / chats.* call made through the
// official SDK's HTTP client (createHttpClient) against `imgroups serve --http`: same
// results, same error classes, codes and context as over gRPC (docs/protocol.md §9, §6.3).
//
// Each file runs in a child `node --test` with IMGROUPS_TRANSPORT=http (see lib/harness.mjs);
// event streams stay on gRPC there, since the SDK has them over gRPC only.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..");

/** Every file whose cases call groups.*, chats.*, messages.* or addresses.* through the SDK client. */
const FILES = [
  "addresses.test.mjs",
  "auth.test.mjs",
  "chats.test.mjs",
  "display-name.test.mjs",
  "durability.test.mjs",
  "events.test.mjs",
  "group-methods.test.mjs",
  "icons.test.mjs",
  "idempotency.test.mjs",
  "leave.test.mjs",
  "message-errors.test.mjs",
  "message-idempotency.test.mjs",
  "messages.test.mjs",
  "participants.test.mjs",
  "unimplemented.test.mjs",
];

function runOverHttp(file) {
  const env = { ...process.env, IMGROUPS_TRANSPORT: "http" };
  // Not a child of this runner: let the nested runner report on its own.
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolveRun, rejectRun) => {
    const child = spawn(
      process.execPath,
      ["--test", "--test-concurrency=1", "--test-timeout=30000", "--test-reporter=tap", join("test", file)],
      { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c) => (out += c));
    child.once("error", rejectRun);
    child.once("exit", (code) => resolveRun({ code, out }));
  });
}

// npm test's --test-timeout bounds this whole file too, not just each test, so the children run
// four at a time (each has a server, and a database, of its own): one after another they take
// about 30 s on SQLite and 40 s on PostgreSQL on a busy two-core machine.
describe("the group and chat suites over HTTP (createHttpClient)", { concurrency: 4 }, () => {
  for (const file of FILES) {
    test(file, { timeout: 300_000 }, async () => {
      const { code, out } = await runOverHttp(file);
      const failures = out
        .split("\n")
        .filter((l) => /^\s*not ok /.test(l) || /^\s*error:/.test(l))
        .slice(0, 40)
        .join("\n");
      assert.equal(code, 0, `${file} over HTTP failed:\n${failures}\n--- tail ---\n${out.slice(-4000)}`);
      assert.match(out, /# pass [1-9]/, `${file} over HTTP ran no test`);
    });
  }
});
