// A bot's test, start to finish: a server of its own, the bot's account, the bot, a
// scenario played at it, and what it said checked with `imgroups sim expect`.
//   npm install && node --test          (imgroups on PATH, or IMGROUPS_BIN=path/to/imgroups)
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import { startWelcomeBot } from "./bot.mjs";

const BIN = process.env.IMGROUPS_BIN ?? "imgroups";
const SCENARIO = new URL("./scenario.toml", import.meta.url).pathname;
let data, server, grpc, bot;

/** `imgroups ARGS --data DIR`: exit code, stdout, stderr (a non-zero exit is not thrown). */
async function imgroups(...args) {
  try {
    const { stdout, stderr } = await promisify(execFile)(BIN, [...args, "--data", data]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (typeof err.code !== "number") throw err;
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

before(async () => {
  data = await mkdtemp(join(tmpdir(), "imgroups-bot-test-"));
  // Free ports; the lines it prints say which.
  server = spawn(BIN, ["serve", "--data", data, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  for await (const line of createInterface({ input: server.stdout })) {
    grpc = line.match(/^grpc listening on (.+)$/)?.[1] ?? grpc;
    if (line === "ready") break;
  }
  const { stdout: token } = await imgroups("account", "add", "bot@example.com");
  bot = await startWelcomeBot({ address: grpc, token: token.trim() });
});

after(async () => {
  await bot?.stop();
  server?.kill("SIGTERM");
  await new Promise((resolve) => server?.once("exit", resolve));
  await rm(data, { recursive: true, force: true });
});

test("the bot welcomes whoever says hi, and whoever joins", async () => {
  const play = await imgroups("sim", "play", SCENARIO);
  assert.equal(play.code, 0, play.stderr);

  // The scenario's wait already checked the first answer; check the second here.
  const said = await imgroups("sim", "expect", "bot@example.com", "--kind", "message",
    "--matching", "^Welcome, carol@example.com!$", "--timeout", "5s", "--json");
  assert.equal(said.code, 0, said.stderr);
  const event = JSON.parse(said.stdout);
  assert.equal(event.isFromMe, true);
  assert.equal(event.type, "message.received");
  assert.equal(event.message.text, "Welcome, carol@example.com!");
});

test("the bot does not rename anything (exit 1, and stderr shows what it did instead)", async () => {
  const renamed = await imgroups("sim", "expect", "bot@example.com", "--kind", "rename",
    "--since", "1", "--timeout", "200ms");
  assert.equal(renamed.code, 1);
  assert.match(renamed.stderr, /did not do a rename after #1 within 200ms/);
  assert.match(renamed.stderr, /message "Welcome, zoe@example.net!" by me/);
});
