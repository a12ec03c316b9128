// GET /v1/events:stream: the resumable Server-Sent-Events stream. Replay from the log, then
// live with no gap; `id:` = sequence; `Last-Event-ID` resumes; heartbeats as comments.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { parseGroupChangeEvent } from "@photon-ai/advanced-imessage";

import { Server, catchUp, uniqueEmail } from "../lib/harness.mjs";

/** An SSE connection read in the background: events, comments, and the end. */
class SseReader {
  events = [];
  comments = [];
  ended = false;
  #abort = new AbortController();
  #waiters = new Set();

  static async open(url, headers) {
    const reader = new SseReader();
    const res = await fetch(url, { headers, signal: reader.#abort.signal });
    reader.status = res.status;
    reader.contentType = res.headers.get("content-type");
    if (res.status !== 200) {
      reader.error = await res.json();
      return reader;
    }
    reader.done = reader.#pump(res.body);
    return reader;
  }

  async #pump(body) {
    const decoder = new TextDecoder();
    let buffer = "";
    let current = {};
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).replace(/\r$/, "");
          buffer = buffer.slice(nl + 1);
          if (line === "") {
            if (current.data !== undefined) this.events.push(current);
            current = {};
          } else if (line.startsWith(":")) {
            this.comments.push(line.slice(1).trim());
          } else {
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (field === "data") current.data = current.data === undefined ? value : `${current.data}\n${value}`;
            else current[field] = value;
          }
          this.#notify();
        }
      }
    } catch {
      // aborted
    } finally {
      this.ended = true;
      this.#notify();
    }
  }

  #notify() {
    for (const w of this.#waiters) w();
  }

  async until(predicate, ms = 5000, what = "condition") {
    const deadline = Date.now() + ms;
    while (!predicate(this)) {
      if (this.ended) throw new Error(`stream ended before ${what}; ${this.events.length} event(s)`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; ${this.events.length} event(s)`);
      await new Promise((resolve) => {
        const t = setTimeout(done, left);
        const self = this;
        function done() {
          clearTimeout(t);
          self.#waiters.delete(done);
          resolve();
        }
        this.#waiters.add(done);
      });
    }
  }

  get sequences() {
    return this.events.filter((e) => e.event === undefined).map((e) => Number(e.id));
  }

  close() {
    this.#abort.abort();
    return this.done;
  }
}

describe("SSE event stream over HTTP", () => {
  /** @type {Server} */ let server;
  let me, alice, base, auth;

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    me = server.me();
    alice = await server.person("alice@example.com");
    base = `http://${server.httpAddress}/v1/events:stream`;
    auth = { authorization: `Bearer ${me.token}` };
  });
  after(() => server?.cleanup());

  async function group() {
    return (await me.chats.create([alice.address, uniqueEmail()])).chat.guid;
  }

  test("replays after afterSequence, then continues live; ids are sequences; data parses with the SDK", async () => {
    const guid = await group();
    await me.groups.setDisplayName(guid, "one");
    const head = await me.head();
    const sse = await SseReader.open(`${base}?afterSequence=0`, auth);
    assert.equal(sse.status, 200);
    assert.match(sse.contentType, /^text\/event-stream/);
    await sse.until((s) => s.sequences.length >= head, 5000, "the backlog");
    await me.groups.setDisplayName(guid, "two");
    await alice.groups.setDisplayName(guid, "three");
    await sse.until((s) => s.sequences.length >= head + 2, 5000, "live events");
    await sse.close();

    const seqs = sse.sequences;
    assert.deepEqual(seqs, Array.from({ length: head + 2 }, (_, i) => i + 1), "every sequence once, in order");
    const { events: log } = await catchUp(me.client, 0);
    for (const [i, e] of sse.events.entries()) {
      const json = JSON.parse(e.data);
      assert.equal(json.sequence, Number(e.id));
      assert.equal(json.type, "group.changed");
      const parsed = parseGroupChangeEvent(json, json.sequence);
      assert.ok(parsed, `event ${e.id} parses`);
      assert.equal(parsed.sequence, log[i].sequence);
      assert.equal(parsed.chatGuid, log[i].chatGuid);
      assert.deepEqual(parsed.change, log[i].change);
      assert.equal(parsed.isFromMe, log[i].isFromMe);
      assert.equal(parsed.actor?.address, log[i].actor?.address);
    }
    const last = JSON.parse(sse.events.at(-1).data);
    assert.equal(last.displayNameChanged.displayName, "three");
    assert.equal(last.actor.address, alice.address);
  });

  test("disconnect, writes meanwhile, resume with Last-Event-ID: nothing missed, nothing twice", async () => {
    const guid = await group();
    const start = await me.head();
    const first = await SseReader.open(`${base}?afterSequence=${start}`, auth);
    for (let i = 0; i < 5; i++) await me.groups.setDisplayName(guid, `a${i}`);
    await first.until((s) => s.sequences.length >= 3, 5000, "three events");
    await first.close();
    const seen = first.sequences;
    const lastId = seen.at(-1);

    // Written while disconnected.
    for (let i = 0; i < 5; i++) await alice.groups.setDisplayName(guid, `b${i}`);
    const head = await me.head();
    // afterSequence is stale on purpose: Last-Event-ID wins, as for a browser EventSource.
    const second = await SseReader.open(`${base}?afterSequence=${start}`, { ...auth, "last-event-id": String(lastId) });
    await me.groups.setDisplayName(guid, "live");
    await second.until((s) => s.sequences.at(-1) >= head + 1, 5000, "resume to live");
    await second.close();

    const all = [...seen, ...second.sequences];
    assert.deepEqual(all, Array.from({ length: head + 1 - start }, (_, i) => start + 1 + i));
  });

  test("chatGuid filters to one group", async () => {
    const [g1, g2] = [await group(), await group()];
    const start = await me.head();
    const sse = await SseReader.open(`${base}?afterSequence=${start}&chatGuid=${encodeURIComponent(g1)}`, auth);
    await me.groups.setDisplayName(g2, "other");
    await me.groups.setDisplayName(g1, "mine");
    await sse.until((s) => s.events.length >= 1, 5000, "the g1 event");
    await sse.close();
    assert.equal(sse.events.length, 1);
    assert.equal(JSON.parse(sse.events[0].data).chatGuid, g1);
  });

  test("idle streams get heartbeat comments", async () => {
    const sse = await SseReader.open(base, auth);
    await sse.until((s) => s.comments.includes("heartbeat"), 5000, "a heartbeat");
    await sse.close();
  });

  test("bad requests get the JSON error body", async () => {
    const cases = [
      [`${base}`, {}, 401, "unauthenticated", "unauthenticated"],
      [`${base}?afterSequence=abc`, auth, 400, "invalid_argument", "invalidArgument"],
      [`${base}?afterSequence=-1`, auth, 400, "invalid_argument", "invalidArgument"],
      [`${base}?afterSequence=999999`, auth, 400, "invalid_argument", "invalidArgument"],
      [`${base}?chatGuid=nope`, auth, 400, "invalid_argument", "invalidArgument"],
      [`${base}?chatGuid=${encodeURIComponent("any;+;chat000000000000000000")}`, auth, 404, "not_found", "chatNotFound"],
    ];
    for (const [url, headers, status, code, errorCode] of cases) {
      const sse = await SseReader.open(url, headers);
      assert.equal(sse.status, status, url);
      assert.equal(sse.error.code, code, url);
      assert.equal(sse.error.errorCode, errorCode, url);
      assert.equal(typeof sse.error.requestId, "string");
    }
    const res = await fetch(base, { headers: { ...auth, "last-event-id": "x" } });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).context.field, "Last-Event-ID");
  });

  test("server shutdown ends open streams, and a restart resumes from Last-Event-ID", async () => {
    const guid = await group();
    await me.groups.setDisplayName(guid, "before");
    const head = await me.head();
    const sse = await SseReader.open(`${base}?afterSequence=${head - 1}`, auth);
    await sse.until((s) => s.sequences.length >= 1, 5000, "one event");
    await server.restart();
    await sse.until((s) => s.ended, 5000, "the end of the stream");
    base = `http://${server.httpAddress}/v1/events:stream`;
    await me.groups.setDisplayName(guid, "after");
    const resumed = await SseReader.open(base, { ...auth, "last-event-id": String(head) });
    await resumed.until((s) => s.sequences.length >= 1, 5000, "the event after restart");
    await resumed.close();
    assert.deepEqual(resumed.sequences, [head + 1]);
  });
});
