// Puppets talk too: `imgroups sim act ADDRESS say|reply|react|unreact|edit|unsend|read …` makes a
// person of the simulated network (not an account) send, react, edit, unsend and read, on a
// running server. Every account of the chat sees it exactly as if an account had done it,
// live and in its log, with the puppet as sender / actor and isFromMe false.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { assertEnvelope, assertMessage, direct, GrpcClients } from "../lib/messages.mjs";

/** A puppet's message must reach a live subscriber this fast: no polling interval in between. */
const LIVE_WITHIN_MS = 1_000;

describe("puppets (sim act) and messages", () => {
  /** @type {Server} */ let server;
  /** @type {GrpcClients} */ let grpc;
  let me, alice;
  const zoe = "zoe@example.net";

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    grpc = new GrpcClients(server);
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(async () => {
    await grpc?.closeAll();
    await server?.cleanup();
  });

  async function groupWithZoe() {
    return (await me.chats.create([alice.address, zoe, uniqueEmail()])).chat.guid;
  }

  /** The message.received events of `person` after `head`. */
  async function received(person, head) {
    return (await person.eventsAfter(head)).filter((e) => e.type === "message.received");
  }

  test("say: every account gets message.received live, sender zoe, isFromMe false", async () => {
    const chat = await groupWithZoe();
    const [myHead, aliceHead] = [await me.head(), await alice.head()];
    const mine = await grpc.live(me, "messages");
    const alices = await grpc.live(alice, "messages");

    await server.act(zoe, "say", chat, "hello from zoe\nsecond line");

    const [event] = await mine.count(1, LIVE_WITHIN_MS);
    assertEnvelope(event, { type: "message.received", chatGuid: chat, isFromMe: false });
    assert.equal(event.sequence, myHead + 1);
    assertMessage(event.message, { chatGuid: chat, text: "hello from zoe\nsecond line", isFromMe: false, sender: zoe });
    const [aliceEvent] = await alices.count(1, LIVE_WITHIN_MS);
    assert.equal(aliceEvent.message.guid, event.message.guid, "one guid in every view");
    assert.equal(aliceEvent.sequence, aliceHead + 1);
    assert.deepEqual(await me.eventsAfter(myHead), [event], "the live copy is the log's");
    assert.equal((await alice.client.messages.get(event.message.guid)).sender?.address, zoe);
  });

  test("reply, react, unreact, edit, unsend: each seen by every account, in order, zoe as actor", async () => {
    const chat = await groupWithZoe();
    const mineMsg = await me.client.messages.sendText(chat, "zoe, react to this");
    const heads = new Map([
      [me, await me.head()],
      [alice, await alice.head()],
    ]);

    await server.act(zoe, "reply", chat, mineMsg.guid, "a reply");
    const [reply] = await received(alice, heads.get(alice));
    assert.equal(reply.message.replyTargetGuid, mineMsg.guid);
    const zoes = reply.message.guid;

    await server.act(zoe, "react", chat, mineMsg.guid, "love");
    await server.act(zoe, "unreact", chat, mineMsg.guid, "love");
    await server.act(zoe, "edit", chat, zoes, "a better reply");
    await server.act(zoe, "unsend", chat, zoes);

    for (const person of [me, alice]) {
      const events = await person.eventsAfter(heads.get(person));
      const types = events.map((e) => e.type);
      assert.deepEqual(
        types,
        ["message.received", "message.reactionAdded", "message.reactionRemoved", "message.edited", "message.unsent"],
        `${person.address}`,
      );
      for (const e of events.slice(1)) {
        assertEnvelope(e, { type: e.type, chatGuid: chat, isFromMe: false });
        if (e.type.startsWith("message.reaction")) assert.equal(e.actor?.address, zoe, "the puppet reacted");
      }
      assert.equal(events[1].messageGuid, mineMsg.guid);
      assert.equal(events[1].reaction.kind, "love");
      assert.equal(events[3].content.text, "a better reply");
      assert.equal(events[4].messageGuid, zoes);
    }
    const seen = await me.client.messages.get(zoes);
    assert.ok(seen.dateRetracted instanceof Date);
    assert.ok(!seen.content.text);
  });

  test("read: a puppet reading my direct messages gives me message.read", async () => {
    const sent = await me.client.messages.sendText(direct(zoe), "did you read this?");
    const head = await me.head();
    await server.act(zoe, "read", direct(me.address));
    const events = await me.eventsAfter(head);
    assert.deepEqual(events.map((e) => [e.type, e.messageGuid]), [["message.read", sent.guid]]);
    assert.equal(events[0].chatGuid, direct(zoe));
    assert.ok((await me.client.messages.get(sent.guid)).dateRead instanceof Date);
  });

  test("a puppet's direct message to an account creates the chat on the account's side", async () => {
    const yan = uniqueEmail("yan");
    const head = await alice.head();
    await server.act(yan, "say", direct(alice.address), "hi alice, it's yan");
    const [event] = await received(alice, head);
    assertEnvelope(event, { type: "message.received", chatGuid: direct(yan), isFromMe: false });
    assertMessage(event.message, { chatGuid: direct(yan), text: "hi alice, it's yan", isFromMe: false, sender: yan });
    assert.equal((await alice.chats.get(direct(yan))).isGroup, false);
  });

  test("a puppet obeys the rules: not a member -> chatNotFound; someone else's message -> notFromMe", async () => {
    const chat = await groupWithZoe();
    const mineMsg = await me.client.messages.sendText(chat, "mine");
    const head = await me.head();
    const stranger = await server.cliFailure("sim", "act", uniqueEmail("stranger"), "say", chat, "let me in");
    assert.match(stranger.stderr, /\(chatNotFound\)\n$/, stranger.stderr);
    const edit = await server.cliFailure("sim", "act", zoe, "edit", chat, mineMsg.guid, "hijacked");
    assert.match(edit.stderr, /\(preconditionFailed\)\n$/, edit.stderr);
    const empty = await server.cliFailure("sim", "act", zoe, "say", chat, "   ");
    assert.match(empty.stderr, /\(invalidArgument\)\n$/, empty.stderr);
    assert.equal(await me.head(), head, "nothing appended");
  });
});
