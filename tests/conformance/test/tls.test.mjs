// `serve --tls-cert --tls-key`: the official SDK with `tls: true` works against a TLS server
// whose self-signed certificate it is told to trust, as docs/operating.md's TLS section says: the gRPC
// client (grpc-js) through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (it does not consult
// NODE_EXTRA_CA_CERTS), the HTTP client (fetch) through NODE_EXTRA_CA_CERTS. Both are read at
// start-up, so the SDK runs in a child `node`. The certificate is made with the `openssl`
// CLI; without it the test is skipped, saying so.

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { Server, uniqueEmail } from "../lib/harness.mjs";

const execFileAsync = promisify(execFile);
const SUITE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function haveOpenssl() {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// The SDK, in a child process that trusts `cert`: creates a group, renames it, reads it back.
const SCRIPT = `
import { createGrpcClient } from "@photon-ai/advanced-imessage/grpc";
import { createHttpClient } from "@photon-ai/advanced-imessage/http";
const [address, httpAddress, token, a, b] = process.argv.slice(1);
const client = createGrpcClient({ address, token, tls: true, timeout: 10_000 });
try {
  const { chat } = await client.chats.create([a, b]);
  await client.groups.setDisplayName(chat.guid, "Over TLS");
  const http = createHttpClient({ address: "https://" + httpAddress, token, tls: true });
  const read = await http.chats.get(chat.guid);
  console.log(JSON.stringify({ displayName: read.displayName }));
} catch (err) {
  console.log(JSON.stringify({ error: String(err?.code ?? err), message: String(err?.message ?? "") }));
} finally {
  await client.close();
}
`;

describe("TLS", { skip: haveOpenssl() ? false : "openssl is not installed: cannot make a certificate" }, () => {
  /** @type {Server} */ let server;
  let dir, cert;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "imgroups-tls-"));
    cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    // The one-liner of docs/operating.md.
    await execFileAsync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext", "basicConstraints=critical,CA:FALSE",
      "-keyout", key, "-out", cert,
    ]);
    server = await Server.start({ serveArgs: ["--tls-cert", cert, "--tls-key", key] });
  });
  after(async () => {
    await server?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function sdk(extraEnv) {
    const { stdout } = await execFileAsync(
      process.execPath,
      [
        "--no-deprecation", // grpc-js sets an IP address as TLS server name
        "--input-type=module",
        "-e",
        SCRIPT,
        server.address,
        server.httpAddress,
        server.token,
        uniqueEmail(),
        uniqueEmail(),
      ],
      { cwd: SUITE_DIR, env: { ...process.env, ...extraEnv }, timeout: 30_000 },
    );
    return JSON.parse(stdout.trim().split("\n").pop());
  }

  test("the SDK with tls: true and the certificate trusted works", async () => {
    const trusted = { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: cert, NODE_EXTRA_CA_CERTS: cert };
    assert.deepEqual(await sdk(trusted), { displayName: "Over TLS" });
  });

  test("without trusting the certificate the SDK refuses the server", async () => {
    const env = { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: "", NODE_EXTRA_CA_CERTS: "" };
    const result = await sdk(env);
    assert.ok(result.error, `expected an error, got ${JSON.stringify(result)}`);
  });
});
