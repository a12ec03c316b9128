// Webhooks: every group event POSTed, signed, in order, at least once, with a durable cursor
// that survives receiver outages and server restarts; pause after N failures; resume.

import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import { parseGroupChangeEvent } from "@photon-ai/advanced-imessage";

import { Server, catchUp, uniqueEmail } from "../lib/harness.mjs";

/** A local receiver: records deliveries; answers `status` (200 unless told otherwise). */
class Receiver {
  deliveries = [];
  attempts = 0;
  status = 200;
  #waiters = new Set();

  async start() {
    this.server = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        this.attempts += 1;
        const status = this.status;
        if (status >= 200 && status < 300) this.deliveries.push({ headers: req.headers, body });
        res.writeHead(status, { "content-type": "text/plain" }).end("ok");
        for (const w of this.#waiters) w();
      });
    });
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}/hook`;
    return this;
  }

  get sequences() {
    return this.deliveries.map((d) => JSON.parse(d.body).sequence);
  }

  async until(predicate, ms = 10_000, what = "condition") {
    const deadline = Date.now() + ms;
    while (!predicate(this)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.sequences)}`);
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.#waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, 200));
        this.#waiters.add(done);
      });
    }
  }

  close() {
    return new Promise((resolve) => {
      this.server.closeAllConnections?.();
      this.server.close(resolve);
    });
  }
}

function verify(secret, delivery) {
  const header = delivery.headers["x-imgroups-signature"];
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  assert.ok(m, `signature header ${header}`);
  const expected = createHmac("sha256", secret).update(`${m[1]}.${delivery.body}`).digest();
  assert.ok(timingSafeEqual(expected, Buffer.from(m[2], "hex")), "signature verifies");
  assert.ok(Math.abs(Date.now() / 1000 - Number(m[1])) < 300, "timestamp is recent");
}

async function api(server, token, method, path, body) {
  const res = await fetch(`http://${server.httpAddress}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Asserts arrival order never goes backwards; returns the distinct sequences. */
function ordered(seqs) {
  for (let i = 1; i < seqs.length; i++) {
    // At-least-once allows a repeat of the last one, never an older one after a newer one.
    assert.ok(seqs[i] >= seqs[i - 1], `delivered in sequence order: ${seqs}`);
  }
  return [...new Set(seqs)];
}

const FAST = ["--webhook-backoff-ms", "20", "--webhook-max-backoff-ms", "100", "--webhook-max-failures", "1000"];
// On PostgreSQL an endpoint is delivered under a lease (`--webhook-lease-ms`, 10 s by default) that a
// server killed with -9 keeps until it runs out: only then does the restarted server take over.
const SHORT_LEASE = ["--webhook-lease-ms", "1000"];
// The receivers listen on loopback over plain http, which the server refuses by default
// (webhooks are https-only and never reach special-purpose addresses unless allowed).
const LOCAL_RECEIVER = ["--webhook-allow-http", "--webhook-allow-net", "127.0.0.0/8"];

describe("webhooks", () => {
  /** @type {Server} */ let server;
  /** @type {Receiver} */ let rx;
  let me, alice, hook;

  before(async () => {
    server = await Server.start({ serveArgs: [...FAST, ...SHORT_LEASE, ...LOCAL_RECEIVER] });
    me = server.me();
    alice = await server.person("alice@example.com");
    rx = await new Receiver().start();
  });
  after(async () => {
    await rx?.close();
    await server?.cleanup();
  });

  test("register over HTTP: id and secret once; list shows it active without the secret", async () => {
    const { status, json } = await api(server, me.token, "POST", "/v1/webhooks", { url: rx.url });
    assert.equal(status, 200);
    assert.ok(Number.isInteger(json.id));
    assert.match(json.secret, /^whsec_[0-9a-f]+$/);
    assert.equal(json.status, "active");
    hook = json;
    const list = await api(server, me.token, "GET", "/v1/webhooks");
    assert.equal(list.json.webhooks.length, 1);
    assert.equal(list.json.webhooks[0].secret, undefined);
    // Another account sees none of it.
    assert.deepEqual((await api(server, alice.token, "GET", "/v1/webhooks")).json.webhooks, []);
    const other = await api(server, alice.token, "DELETE", `/v1/webhooks/${hook.id}`);
    assert.equal(other.status, 400);
  });

  test("every event delivered, signed, in order, parseable by the SDK", async () => {
    const start = (await api(server, me.token, "GET", "/v1/webhooks")).json.webhooks[0].lastDeliveredSequence;
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    for (let i = 0; i < 5; i++) await me.groups.setDisplayName(chat.guid, `n${i}`);
    await alice.groups.setDisplayName(chat.guid, "by alice");
    const head = await me.head();
    await rx.until((r) => r.sequences.at(-1) === head, 10_000, `sequence ${head}`);
    const seqs = ordered(rx.sequences);
    assert.deepEqual(seqs, Array.from({ length: head - start }, (_, i) => start + 1 + i));
    const { events: log } = await catchUp(me.client, start);
    for (const [i, d] of rx.deliveries.entries()) {
      verify(hook.secret, d);
      assert.equal(d.headers["content-type"], "application/json");
      assert.equal(d.headers["x-imgroups-webhook-id"], String(hook.id));
      const json = JSON.parse(d.body);
      assert.equal(d.headers["x-imgroups-sequence"], String(json.sequence));
      const event = parseGroupChangeEvent(json, json.sequence);
      assert.equal(event.type, "group.changed");
      assert.equal(event.sequence, log[i].sequence);
      assert.deepEqual(event.change, log[i].change);
      assert.equal(event.actor?.address, log[i].actor?.address);
    }
    // The receiver has the last event a moment before the server has its 200 and moves the cursor.
    let listed;
    for (const deadline = Date.now() + 5_000; ; ) {
      listed = (await api(server, me.token, "GET", "/v1/webhooks")).json.webhooks[0];
      if (listed.lastDeliveredSequence === head || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(listed.lastDeliveredSequence, head);
    assert.equal(listed.failures, 0);
  });

  test("a receiver failing for a while, then recovering, gets every event in order", async () => {
    rx.deliveries = [];
    rx.status = 503;
    const before = rx.attempts;
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    const from = await me.head();
    for (let i = 0; i < 4; i++) await me.groups.setDisplayName(chat.guid, `f${i}`);
    await rx.until((r) => r.attempts >= before + 3, 10_000, "retries");
    const listed = (await api(server, me.token, "GET", "/v1/webhooks")).json.webhooks[0];
    assert.ok(listed.failures >= 1, `failures counted: ${JSON.stringify(listed)}`);
    assert.equal(listed.lastError, "http status 503");
    assert.equal(listed.status, "active");
    assert.equal(listed.lastDeliveredSequence, from, "cursor not advanced by failures");
    rx.status = 200;
    const head = await me.head();
    await rx.until((r) => r.sequences.at(-1) === head, 10_000, `sequence ${head}`);
    assert.deepEqual(ordered(rx.sequences), Array.from({ length: head - from }, (_, i) => from + 1 + i));
  });

  test("server restart (and kill -9) mid-delivery loses nothing", async () => {
    rx.deliveries = [];
    rx.status = 500;
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    const from = await me.head();
    for (let i = 0; i < 3; i++) await me.groups.setDisplayName(chat.guid, `r${i}`);
    const before = rx.attempts;
    await rx.until((r) => r.attempts > before, 10_000, "an attempt");
    await server.restart();
    for (let i = 0; i < 2; i++) await me.groups.setDisplayName(chat.guid, `s${i}`);
    await server.stop("SIGKILL");
    await server.restart();
    rx.status = 200;
    const head = await me.head();
    assert.equal(head, from + 5);
    await rx.until((r) => r.sequences.at(-1) === head, 10_000, `sequence ${head}`);
    assert.deepEqual(ordered(rx.sequences), [from + 1, from + 2, from + 3, from + 4, from + 5]);
  });

  test("CLI: webhook add / list / rm", async () => {
    const rx2 = await new Receiver().start();
    try {
      const out = await server.cli("webhook", "add", rx2.url, "--account", alice.address);
      const [idLine, secretLine] = out.split("\n");
      const id = Number(/^id (\d+)$/.exec(idLine)[1]);
      const secret = /^secret (whsec_[0-9a-f]+)$/.exec(secretLine)[1];
      const listed = await server.cli("webhook", "list");
      assert.match(listed, new RegExp(`^${id}\\t${alice.address}\\t${rx2.url}\\tactive\\t`, "m"));
      assert.ok(!listed.includes(secret), "list never prints secrets");
      // The running server picks it up (within its poll interval) and delivers alice's events.
      const { chat } = await alice.chats.create([me.address, uniqueEmail()]);
      await alice.groups.setDisplayName(chat.guid, "cli");
      const head = await alice.head();
      await rx2.until((r) => r.sequences.includes(head), 10_000, "delivery to the CLI-added hook");
      verify(secret, rx2.deliveries.at(-1));
      await server.cli("webhook", "rm", String(id));
      assert.doesNotMatch(await server.cli("webhook", "list"), new RegExp(`^${id}\\t`, "m"));
    } finally {
      await rx2.close();
    }
  });
});

describe("webhooks: pause after N consecutive failures, resume", () => {
  /** @type {Server} */ let server;
  /** @type {Receiver} */ let rx;
  let me;

  before(async () => {
    server = await Server.start({
      serveArgs: [
        "--webhook-backoff-ms", "10", "--webhook-max-backoff-ms", "20", "--webhook-max-failures", "3",
        ...LOCAL_RECEIVER,
      ],
    });
    me = server.me();
    rx = await new Receiver().start();
  });
  after(async () => {
    await rx?.close();
    await server?.cleanup();
  });

  test("paused after 3 failures (visible in HTTP and CLI lists), resumed over HTTP, then delivers", async () => {
    const { json: hook } = await api(server, me.token, "POST", "/v1/webhooks", { url: rx.url });
    rx.status = 500;
    const { chat } = await me.chats.create([uniqueEmail(), uniqueEmail()]);
    await me.groups.setDisplayName(chat.guid, "x");
    await me.groups.setDisplayName(chat.guid, "y");
    const deadline = Date.now() + 10_000;
    let listed;
    for (;;) {
      listed = (await api(server, me.token, "GET", "/v1/webhooks")).json.webhooks[0];
      if (listed.status === "paused" || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(listed.status, "paused");
    assert.equal(listed.failures, 3);
    assert.equal(rx.attempts, 3, "no attempts beyond the limit");
    assert.match(await server.cli("webhook", "list"), new RegExp(`^${hook.id}\\t.*\\tpaused\\t0\\t3\\t`, "m"));

    rx.status = 200;
    const resumed = await api(server, me.token, "POST", "/v1/webhooks:resume", { id: hook.id });
    assert.equal(resumed.status, 200);
    assert.equal(resumed.json.status, "active");
    const head = await me.head();
    await rx.until((r) => r.sequences.at(-1) === head, 10_000, "delivery after resume");
    assert.deepEqual(ordered(rx.sequences), [1, 2].map((i) => head - 2 + i));
    const bad = await api(server, me.token, "POST", "/v1/webhooks:resume", { id: 999 });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errorCode, "invalidArgument");
  });

  test("bad registrations get precise errors", async () => {
    for (const body of [{}, { url: "ftp://x" }, { url: "not a url" }, { url: 5 }, { url: "http://x", extra: 1 }]) {
      const { status, json } = await api(server, me.token, "POST", "/v1/webhooks", body);
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(json.code, "invalid_argument");
    }
    const res = await fetch(`http://${server.httpAddress}/v1/webhooks`, { method: "GET" });
    assert.equal(res.status, 401);
  });
});
