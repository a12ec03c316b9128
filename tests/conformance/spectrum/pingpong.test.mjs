// End to end with spectrum-ts: a bot built on @spectrum-ts/core + @spectrum-ts/imessage
// (bot.mjs, in a child process) runs as an account of the server, in a group with two more
// accounts and two puppets. A puppet says "ping"; the bot's "pong" (a reply) reaches every
// account. Then the server restarts: the bot reconnects by itself, catches up from its cursor
// and does not answer the old "ping" again; a new "ping" gets exactly one new "pong".
//
// The iMessage provider builds its gRPC client with `tls: true` and no way to change it (only
// the address, token and line are configurable: `imessage.config({ clients: {address, token,
// phone} })`). So the bot reaches the plaintext server through a TLS front in this process
// (a self-signed certificate made with `openssl`, trusted by the bot through
// GRPC_DEFAULT_SSL_ROOTS_FILE_PATH). The front keeps its port across the restart, which gets
// the server a new one, as a load balancer would.

import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { Server, waitFor } from "../lib/harness.mjs";
import { GrpcClients, direct } from "../lib/messages.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const execFileAsync = promisify(execFile);

function haveOpenssl() {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A TLS-terminating TCP front: TLS (ALPN h2) on a fixed local port, plaintext to `target()`. */
class TlsFront {
  #server;
  #sockets = new Set();

  constructor({ key, cert, target }) {
    this.#server = tls.createServer({ key, cert, ALPNProtocols: ["h2"] }, (client) => {
      const upstream = net.connect(...splitHostPort(target()));
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.once("close", () => this.#sockets.delete(s));
        s.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
  }

  async listen() {
    await new Promise((resolveListen) => this.#server.listen(0, "127.0.0.1", resolveListen));
    return `127.0.0.1:${this.#server.address().port}`;
  }

  async close() {
    for (const s of this.#sockets) s.destroy();
    await new Promise((resolveClose) => this.#server.close(resolveClose));
  }
}

function splitHostPort(address) {
  const i = address.lastIndexOf(":");
  return [Number(address.slice(i + 1)), address.slice(0, i)];
}

/** The bot process: its answers (stdout JSON lines) and its stderr, for failure messages. */
class Bot {
  answers = [];
  stderr = "";
  #child;
  #exited;
  #waiters = new Set();

  constructor(args, env) {
    this.#child = spawn(process.execPath, ["--no-deprecation", join(HERE, "bot.mjs"), ...args], {
      cwd: HERE,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#exited = new Promise((resolveExit) => this.#child.once("exit", resolveExit));
    this.#child.stderr.setEncoding("utf8").on("data", (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-16_384);
    });
    createInterface({ input: this.#child.stdout }).on("line", (line) => {
      try {
        const json = JSON.parse(line);
        if (json.answered) {
          this.answers.push(json);
          for (const wake of this.#waiters) wake();
        }
      } catch {
        // not one of ours (a log line)
      }
    });
  }

  /** The bot's "pong" answers (the ids of the messages answered) once there are `n` of them. */
  async pongs(n, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    const list = () => this.answers.filter((a) => a.answered === "pong").map((a) => a.to);
    while (list().length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the bot printed ${list().length} of ${n} pong answer(s)\n${this.stderr}`);
      await waitFor(new Promise((wake) => this.#waiters.add(wake)), left);
    }
    return list();
  }

  async stop() {
    if (this.#child.exitCode !== null) return;
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

// With CI=true a missing openssl fails the run instead of skipping the test.
const skip = haveOpenssl() || process.env.CI === "true" ? false : "openssl is not installed: cannot make a certificate";
describe("spectrum-ts bot end to end", { skip }, () => {
  /** @type {Server} */ let server;
  /** @type {GrpcClients} */ let grpc;
  let dir, front, frontAddress, bot, botPerson, alice, bob, chat;
  const zoe = "zoe@example.net";
  const yan = "+15557770000";

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "imgroups-spectrum-"));
    const certPath = join(dir, "cert.pem");
    const keyPath = join(dir, "key.pem");
    await execFileAsync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext", "basicConstraints=critical,CA:FALSE",
      "-keyout", keyPath, "-out", certPath,
    ]);

    server = await Server.start({ heartbeatSecs: 1 });
    grpc = new GrpcClients(server);
    botPerson = await server.person("bot@example.com");
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
    chat = (await alice.chats.create([botPerson.address, bob.address, zoe, yan])).chat.guid;

    front = new TlsFront({
      key: await readFile(keyPath),
      cert: await readFile(certPath),
      target: () => server.address,
    });
    frontAddress = await front.listen();
    bot = new Bot([frontAddress, botPerson.token, botPerson.address], { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: certPath });
  });
  after(async () => {
    await bot?.stop();
    await grpc?.closeAll();
    await front?.close();
    await server?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const botSays = (text) => (e) =>
    e.type === "message.received" && e.message.sender?.address === botPerson.address && e.message.content.text === text;

  /**
   * Have a puppet ask "ready?" until the bot answers on alice's live stream: the bot's
   * subscription is live (a bot without a cursor yet only sees what comes after it).
   */
  async function waitForBot(stream, what) {
    const deadline = Date.now() + 60_000;
    for (let attempt = 1; Date.now() < deadline; attempt++) {
      await server.act(yan, "say", chat, "ready?");
      try {
        await stream.until((events) => events.some(botSays("ready")), 1_000 * Math.min(attempt, 5), "ready");
        return;
      } catch (err) {
        if (stream.ended || stream.error) throw err;
      }
    }
    throw new Error(`the bot did not answer "ready?" ${what} within 60 s\n--- bot stderr ---\n${bot.stderr}`);
  }

  /** Every account's log: the bot's "pong" messages (isFromMe for the bot only) and the pings. */
  async function pongs(person) {
    const { events } = await person.log();
    // In the bot's own log its messages are isFromMe, with no sender.
    const isPong =
      person === botPerson
        ? (e) => e.type === "message.received" && e.message.isFromMe && e.message.content.text === "pong"
        : botSays("pong");
    return events.filter((e) => isPong(e) && e.chatGuid === chat).map((e) => e.message);
  }
  async function pings() {
    const { events } = await alice.log();
    return events
      .filter((e) => e.type === "message.received" && e.chatGuid === chat && e.message.content.text === "ping")
      .map((e) => e.message);
  }

  test("a puppet's ping gets one pong, a reply from the bot, seen by every account", async () => {
    const stream = await grpc.live(alice, "messages", { chat });
    await waitForBot(stream, "at first");

    await server.act(zoe, "say", chat, "ping");
    await stream.until((events) => events.some(botSays("pong")), 10_000, "the pong");
    const [ping] = await pings();
    assert.equal(ping.sender.address, zoe);

    for (const person of [alice, bob, botPerson]) {
      const seen = await pongs(person);
      assert.equal(seen.length, 1, `${person.address} sees one pong`);
      assert.equal(seen[0].replyTargetGuid, ping.guid, "the pong replies to the ping");
      assert.equal(seen[0].isFromMe, person === botPerson, "isFromMe for the bot only");
      assert.deepEqual(seen[0].chatGuids, [chat]);
    }
    assert.deepEqual(await bot.pongs(1), [ping.guid], "the bot answered once");
    await stream.close();
  });

  test("after a server restart the bot reconnects, does not answer the old ping again, and answers a new one", async () => {
    await server.restart();
    const stream = await grpc.live(alice, "messages", { chat });
    await waitForBot(stream, "after the restart");

    // The bot is back and has caught up: the first ping must still have exactly one pong.
    assert.equal((await pongs(alice)).length, 1, "no second pong for the old ping");

    await server.act(zoe, "say", chat, "ping");
    await stream.until((events) => events.some(botSays("pong")), 10_000, "the second pong");
    const allPings = await pings();
    assert.equal(allPings.length, 2);
    for (const person of [alice, bob, botPerson]) {
      const seen = await pongs(person);
      assert.deepEqual(
        seen.map((m) => m.replyTargetGuid),
        allPings.map((p) => p.guid),
        `${person.address}: one pong per ping, in order`,
      );
    }
    assert.deepEqual(await bot.pongs(2), allPings.map((p) => p.guid), "the bot answered each ping once");
    await stream.close();
  });

  test("a direct message to the bot is answered in the direct chat", async () => {
    const stream = await grpc.live(alice, "messages");
    await alice.client.messages.sendText(direct(botPerson.address), "ping");
    const inDirect = (e) => botSays("pong")(e) && e.chatGuid === direct(botPerson.address);
    await stream.until((events) => events.some(inDirect), 10_000, "the pong in the direct chat");
    const { events } = await alice.log();
    assert.equal(events.filter(inDirect).length, 1);
    await stream.close();
  });
});
