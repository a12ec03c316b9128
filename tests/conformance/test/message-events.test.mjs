// Read receipts, typing, and the event streams once messages and chat events exist:
// each Subscribe* stream carries its own kinds only, CatchUpEvents carries all of them, a
// client that goes live first and then catches up loses and repeats nothing, and the SSE
// stream names every kind.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import {
  parseChatChangeEvent,
  parseGroupChangeEvent,
  parseMessageChangeEvent,
} from "@photon-ai/advanced-imessage";

import { Server, catchUp, uniqueEmail, waitFor } from "../lib/harness.mjs";
import { Errors, assertConsecutive, assertRecent, expectError } from "../lib/expect.mjs";
import { GrpcClients, assertEnvelope, direct, settle } from "../lib/messages.mjs";

const KINDS = {
  groups: (e) => e.type === "group.changed",
  messages: (e) => e.type.startsWith("message."),
  chats: (e) => e.type.startsWith("chat."),
  polls: (e) => e.type === "poll.changed",
};

describe("message events", () => {
  /** @type {Server} */ let server;
  /** @type {GrpcClients} */ let grpc;
  let me, alice, bob, carol;

  before(async () => {
    server = await Server.start({
      heartbeatSecs: 1,
      // Webhooks to a loopback receiver over plain http, retried fast.
      serveArgs: ["--webhook-allow-http", "--webhook-allow-net", "127.0.0.0/8", "--webhook-backoff-ms", "20"],
    });
    grpc = new GrpcClients(server);
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
    carol = await server.person("carol@example.com");
  });
  after(async () => {
    await grpc?.closeAll();
    await server?.cleanup();
  });

  async function group() {
    return (await me.chats.create([alice.address, bob.address, uniqueEmail()])).chat.guid;
  }

  const heads = async (...people) => Promise.all(people.map((p) => p.head()));

  describe("read receipts", () => {
    test("direct chat: markRead gives the reader chat.markedRead and the sender message.read per message", async () => {
      const m1 = await me.client.messages.sendText(direct(alice.address), "first");
      const m2 = await me.client.messages.sendText(direct(alice.address), "second");
      const unread = await alice.client.messages.listInChat(direct(me.address), { isRead: false });
      assert.deepEqual(unread.messages.map((m) => m.guid), [m2.guid, m1.guid], "both unread, newest first");
      assert.equal(unread.messages[0].dateRead, undefined);
      const [mine, alices] = await heads(me, alice);

      await alice.chats.markRead(direct(me.address));

      const readerEvents = await alice.eventsAfter(alices);
      assert.equal(readerEvents.length, 1, JSON.stringify(readerEvents));
      assertEnvelope(readerEvents[0], { type: "chat.markedRead", chatGuid: direct(me.address), isFromMe: true });

      const senderEvents = await me.eventsAfter(mine);
      assert.deepEqual(senderEvents.map((e) => e.type), ["message.read", "message.read"]);
      assert.deepEqual(
        senderEvents.map((e) => e.messageGuid).sort(),
        [m1.guid, m2.guid].sort(),
        "one per newly read message (in no particular order)",
      );
      assertConsecutive(senderEvents, mine);
      for (const event of senderEvents) {
        assert.equal(event.chatGuid, direct(alice.address), "the sender's name for the chat");
        assertRecent(event.readAt, "readAt");
        if (event.actor) assert.equal(event.actor.address, alice.address, "actor, when named, is the reader");
      }
      assertRecent((await me.client.messages.get(m1.guid)).dateRead, "dateRead on the sender's copy");

      assert.deepEqual((await alice.client.messages.listInChat(direct(me.address), { isRead: false })).messages, []);
      const read = await alice.client.messages.listInChat(direct(me.address), { isRead: true });
      assert.deepEqual(read.messages.map((m) => m.guid), [m2.guid, m1.guid]);
    });

    test("marking read again, with nothing unread, appends nothing anywhere", async () => {
      await me.client.messages.sendText(direct(alice.address), "once");
      await alice.chats.markRead(direct(me.address));
      const before = await heads(me, alice);
      await alice.chats.markRead(direct(me.address));
      assert.deepEqual(await heads(me, alice), before);
    });

    test("only messages unread at the time give message.read; my own messages count as read", async () => {
      await alice.chats.markRead(direct(me.address));
      const mineOut = await alice.client.messages.sendText(direct(me.address), "from alice");
      const incoming = await me.client.messages.sendText(direct(alice.address), "from me");
      const unread = await alice.client.messages.listInChat(direct(me.address), { isRead: false });
      assert.deepEqual(unread.messages.map((m) => m.guid), [incoming.guid], "alice's own message is not unread for her");
      const mine = await me.head();
      await alice.chats.markRead(direct(me.address));
      const events = await me.eventsAfter(mine);
      assert.deepEqual(events.map((e) => [e.type, e.messageGuid]), [["message.read", incoming.guid]]);
      assert.notEqual(events[0].messageGuid, mineOut.guid);
    });

    test("a group: markRead gives the reader chat.markedRead and nobody else anything (no receipts in groups)", async () => {
      const chat = await group();
      await me.client.messages.sendText(chat, "read me");
      await bob.client.messages.sendText(chat, "and me");
      const [mine, alices, bobs] = await heads(me, alice, bob);
      await alice.chats.markRead(chat);
      const events = await alice.eventsAfter(alices);
      assert.equal(events.length, 1, JSON.stringify(events));
      assertEnvelope(events[0], { type: "chat.markedRead", chatGuid: chat, isFromMe: true });
      assert.deepEqual(await heads(me, bob), [mine, bobs], "no message.read in a group");
      assert.deepEqual((await alice.client.messages.listInChat(chat, { isRead: false })).messages, []);
    });

    test("markRead of a chat I cannot see -> chatNotFound", async () => {
      const chat = await group();
      await expectError(carol.chats.markRead(chat), Errors.chatNotFound, { chatguid: chat });
    });
  });

  describe("typing", () => {
    test("setTyping is accepted in groups and direct chats, stored nowhere, and logs nothing", async () => {
      const chat = await group();
      await me.client.messages.sendText(direct(alice.address), "so we have a direct chat");
      const before = await heads(me, alice, bob);
      await me.chats.setTyping(chat, true);
      await me.chats.setTyping(chat, false);
      await alice.chats.setTyping(direct(me.address), true);
      await alice.chats.setTyping(direct(me.address), false);
      assert.deepEqual(await heads(me, alice, bob), before);
    });

    test("setTyping in a chat I cannot see -> chatNotFound", async () => {
      const chat = await group();
      await expectError(carol.chats.setTyping(chat, true), Errors.chatNotFound, { chatguid: chat });
    });
  });

  describe("streams", () => {
    test("each Subscribe* stream carries its own kinds only; together they are the log", async () => {
      const chat = await group();
      await me.client.messages.sendText(direct(alice.address), "opening the direct chat");
      await alice.chats.markRead(direct(me.address));
      const head = await alice.head();
      const streams = {};
      for (const resource of Object.keys(KINDS)) streams[resource] = await grpc.live(alice, resource);

      await me.groups.setDisplayName(chat, "Streams");
      const x = await me.client.messages.sendText(chat, "x");
      await bob.client.messages.setReaction(chat, x.guid, { kind: "like" }, true);
      await me.client.messages.edit(chat, x.guid, "x!");
      await alice.chats.markRead(chat);
      await me.client.messages.sendText(direct(alice.address), "y");
      await alice.chats.markRead(direct(me.address));
      await bob.client.messages.setReaction(chat, x.guid, { kind: "like" }, false);
      await me.client.messages.unsend(chat, x.guid);
      await alice.client.messages.sendText(chat, "z");

      const { events: log } = await catchUp(alice.client, head);
      assertConsecutive(log, head);
      assert.deepEqual(
        log.map((e) => e.type),
        [
          "group.changed",
          "message.received",
          "message.reactionAdded",
          "message.edited",
          "chat.markedRead",
          "message.received",
          "chat.markedRead",
          "message.reactionRemoved",
          "message.unsent",
          "message.received",
        ],
        "catchUp carries every kind, in commit order",
      );
      for (const [resource, wanted] of Object.entries(KINDS)) {
        const expected = log.filter(wanted);
        await streams[resource].count(expected.length, 5_000);
      }
      await settle(300);
      for (const [resource, wanted] of Object.entries(KINDS)) {
        assert.deepEqual(streams[resource].events, log.filter(wanted), `${resource}.subscribeEvents: its own kinds, each once`);
      }
      const before = streams.polls.heartbeats();
      for (let waited = 0; streams.polls.heartbeats() <= before && waited < 5_000; waited += 100) await settle(100);
      assert.ok(streams.polls.heartbeats() > before, "the poll stream is still alive (another heartbeat)");
      assert.equal(streams.polls.ended, false);
      assert.deepEqual(streams.polls.events, [], "polls.subscribeEvents: heartbeats only");
    });

    test("messages.subscribeEvents({chat}) carries that chat's message events only", async () => {
      const [g1, g2] = [await group(), await group()];
      const stream = await grpc.live(alice, "messages", { chat: g1 });
      await me.client.messages.sendText(g2, "not this one");
      await me.groups.setDisplayName(g1, "not a message event");
      const wanted = await me.client.messages.sendText(g1, "this one");
      await me.client.messages.sendText(direct(alice.address), "nor this");
      const [event] = await stream.count(1, 5_000);
      await settle(300);
      assert.equal(stream.events.length, 1, JSON.stringify(stream.events));
      assertEnvelope(event, { type: "message.received", chatGuid: g1, isFromMe: false });
      assert.equal(event.message.guid, wanted.guid);
    });

    test("chats.subscribeEvents({chat}) carries that chat's chat events only", async () => {
      const [g1, g2] = [await group(), await group()];
      await me.client.messages.sendText(g1, "unread 1");
      await me.client.messages.sendText(g2, "unread 2");
      const stream = await grpc.live(alice, "chats", { chat: g2 });
      await alice.chats.markRead(g1);
      await alice.chats.markRead(g2);
      const [event] = await stream.count(1, 5_000);
      await settle(300);
      assert.equal(stream.events.length, 1);
      assertEnvelope(event, { type: "chat.markedRead", chatGuid: g2, isFromMe: true });
    });

    test("messages.subscribeEvents({chat}) of a chat I cannot see -> chatNotFound", async () => {
      const chat = await group();
      const stream = grpc.open(carol, "messages", { chat });
      const err = await stream.failure();
      assert.equal(err.code, "chatNotFound", String(err));
    });

    test("live first, then catch up from a checkpoint while writes go on: nothing lost, nothing repeated", async () => {
      const chat = await group();
      await me.client.messages.sendText(direct(alice.address), "the direct chat exists");
      const checkpoint = await alice.head();

      // Writes of every kind keep landing in alice's log the whole time.
      let stop = false;
      const writer = (async () => {
        let i = 0;
        while (!stop) {
          i += 1;
          const m = await me.client.messages.sendText(chat, `w${i}`);
          await bob.client.messages.setReaction(chat, m.guid, { kind: "laugh" }, true);
          if (i % 3 === 0) await bob.groups.setDisplayName(chat, `round ${i}`);
          if (i % 2 === 0) {
            await me.client.messages.sendText(direct(alice.address), `d${i}`);
            await alice.chats.markRead(direct(me.address));
          }
        }
        return i;
      })();

      try {
        await settle(100); // some writes before the client comes back
        const streams = {};
        for (const resource of ["groups", "messages", "chats"]) streams[resource] = await grpc.live(alice, resource);
        const { events: missed } = await catchUp(alice.client, checkpoint);
        await settle(300); // more writes while live
        stop = true;
        const rounds = await writer;
        assert.ok(rounds >= 2, "the writer made several rounds");

        const { events: log, head } = await catchUp(alice.client, checkpoint);
        assertConsecutive(log, checkpoint);
        for (const [resource, stream] of Object.entries(streams)) {
          const last = log.filter(KINDS[resource]).at(-1);
          if (last) await stream.until((events) => events.some((e) => e.sequence === last.sequence), 5_000, `${resource} reaches ${last.sequence}`);
        }
        await settle(300);

        const bySequence = new Map();
        for (const event of missed) bySequence.set(event.sequence, event);
        for (const [resource, stream] of Object.entries(streams)) {
          const seqs = stream.events.map((e) => e.sequence);
          assert.equal(new Set(seqs).size, seqs.length, `${resource}: no event twice on the live stream`);
          assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${resource}: in order`);
          assert.ok(stream.events.every(KINDS[resource]), `${resource}: own kinds only`);
          for (const event of stream.events) bySequence.set(event.sequence, event);
        }
        const merged = [...bySequence.keys()].sort((a, b) => a - b);
        assert.deepEqual(merged, log.map((e) => e.sequence), "catch-up plus live is the whole log, without gaps");
        assert.equal(merged.at(-1), head);
        for (const event of log) assert.deepEqual(bySequence.get(event.sequence), event, `event ${event.sequence} is the log's`);
        assert.ok(
          log.some(KINDS.groups) && log.some(KINDS.messages) && log.some(KINDS.chats),
          "the log mixed group, message and chat events",
        );
      } finally {
        stop = true;
        await writer.catch(() => {});
      }
    });

    test("after a restart, catch-up returns the message events exactly as before", async () => {
      const chat = await group();
      const x = await me.client.messages.sendText(chat, "durable");
      await alice.client.messages.setReaction(chat, x.guid, { kind: "love" }, true);
      await me.client.messages.edit(chat, x.guid, "durable!");
      const before = await catchUp(alice.client, 0);
      const message = await alice.client.messages.get(x.guid);
      await server.restart();
      assert.deepEqual(await catchUp(alice.client, 0), before);
      assert.deepEqual(await alice.client.messages.get(x.guid), message);
    });
  });

  /**
   * One event of every kind in alice's log, after a returned head: a rename, a message, a
   * tapback added and removed, an edit, an unsend, a markRead, her own message and its read
   * receipt. Returns the head before, the log after it, and the expected type names.
   */
  async function everyKind() {
    const chat = await group();
    await me.client.messages.sendText(direct(alice.address), "hello");
    await alice.chats.markRead(direct(me.address));
    // Whatever alice sent me earlier is read now, so my markRead below reads "read this" only.
    await me.chats.markRead(direct(alice.address));
    const head = await alice.head();

    await me.groups.setDisplayName(chat, "Every kind");
    const x = await me.client.messages.sendText(chat, "x");
    await bob.client.messages.setReaction(chat, x.guid, { kind: "love" }, true);
    await bob.client.messages.setReaction(chat, x.guid, { kind: "love" }, false);
    await me.client.messages.edit(chat, x.guid, "x2");
    await me.client.messages.unsend(chat, x.guid);
    await alice.chats.markRead(chat);
    const mine = await alice.client.messages.sendText(direct(me.address), "read this");
    await me.chats.markRead(direct(alice.address));

    const { events: log } = await catchUp(alice.client, head);
    const names = [
      "group.changed",
      "message.received",
      "message.reactionAdded",
      "message.reactionRemoved",
      "message.edited",
      "message.unsent",
      "chat.markedRead",
      "message.received",
      "message.read",
    ];
    assert.deepEqual(log.map((e) => e.type), names);
    assert.equal(log.at(-1).messageGuid, mine.guid);
    return { head, log, names };
  }

  /** Assert one delivered JSON event (SSE data or webhook body) is log[i], by the SDK's parsers. */
  function assertDelivered(json, log, names, i) {
    assert.equal(json.type, names[i], `type name of event ${json.sequence}`);
    assert.equal(json.sequence, log[i].sequence);
    const parse = json.type.startsWith("message.")
      ? parseMessageChangeEvent
      : json.type.startsWith("chat.")
        ? parseChatChangeEvent
        : parseGroupChangeEvent;
    const parsed = parse(json, json.sequence);
    assert.ok(parsed, `event ${json.sequence} parses`);
    assert.deepEqual(parsed, log[i], `event ${json.sequence} as delivered is the log's`);
  }

  describe("SSE (GET /v1/events:stream) and webhooks", () => {
    test("SSE carries every kind with its type name; each parses with the SDK's parser", async () => {
      const { head, log, names } = await everyKind();
      const frames = await readSse(`http://${server.httpAddress}/v1/events:stream?afterSequence=${head}`, alice.token, log.length);
      assert.deepEqual(frames.map((f) => Number(f.id)), log.map((e) => e.sequence), "ids are sequences");
      for (const [i, frame] of frames.entries()) assertDelivered(JSON.parse(frame.data), log, names, i);
    });

    test("a webhook receives every kind with its type name, in order", async () => {
      const deliveries = [];
      let wake, hookId;
      const receiver = createServer((req, res) => {
        let body = "";
        req.setEncoding("utf8");
        req.on("data", (chunk) => (body += chunk));
        req.on("end", () => {
          deliveries.push(JSON.parse(body));
          res.writeHead(200).end("ok");
          wake?.();
        });
      });
      await new Promise((resolveListen) => receiver.listen(0, "127.0.0.1", resolveListen));
      try {
        const url = `http://127.0.0.1:${receiver.address().port}/hook`;
        const res = await fetch(`http://${server.httpAddress}/v1/webhooks`, {
          method: "POST",
          headers: { authorization: `Bearer ${alice.token}`, "content-type": "application/json" },
          body: JSON.stringify({ url }),
        });
        assert.equal(res.status, 200, await res.clone().text());
        hookId = (await res.json()).id;
        const { head, log, names } = await everyKind();
        const deadline = Date.now() + 10_000;
        while (!deliveries.some((d) => d.sequence === log.at(-1).sequence)) {
          assert.ok(Date.now() < deadline, `webhook deliveries: ${JSON.stringify(deliveries.map((d) => d.sequence))}`);
          await waitFor(new Promise((resolveWake) => (wake = resolveWake)), 200);
        }
        // At least once: a repeat is allowed, never a gap or a step back.
        const after = deliveries.filter((d) => d.sequence > head);
        const distinct = [];
        for (const d of after) {
          if (distinct.at(-1)?.sequence === d.sequence) continue;
          assert.ok(!distinct.length || d.sequence > distinct.at(-1).sequence, "in sequence order");
          distinct.push(d);
        }
        assert.deepEqual(distinct.map((d) => d.sequence), log.map((e) => e.sequence));
        distinct.forEach((json, i) => assertDelivered(json, log, names, i));
      } finally {
        if (hookId !== undefined) {
          await fetch(`http://${server.httpAddress}/v1/webhooks/${hookId}`, {
            method: "DELETE",
            headers: { authorization: `Bearer ${alice.token}` },
          });
        }
        receiver.closeAllConnections?.();
        await new Promise((resolveClose) => receiver.close(resolveClose));
      }
    });
  });
});

/** Read `count` data frames (id + data) from an SSE endpoint, then disconnect. */
async function readSse(url, token, count, timeoutMs = 5_000) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const frames = [];
  try {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
    assert.equal(res.status, 200, await (res.status === 200 ? "" : res.text()));
    const decoder = new TextDecoder();
    let buffer = "";
    let current = {};
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        if (line === "") {
          if (current.data !== undefined) frames.push(current);
          current = {};
          if (frames.length >= count) return frames;
        } else if (!line.startsWith(":")) {
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          current[field] = field === "data" && current.data !== undefined ? `${current.data}\n${value}` : value;
        }
      }
    }
    throw new Error(`SSE ended after ${frames.length} of ${count} frames`);
  } catch (err) {
    if (abort.signal.aborted) throw new Error(`SSE: only ${frames.length} of ${count} frames within ${timeoutMs} ms`);
    throw err;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}
