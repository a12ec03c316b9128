// Idempotency of message writes: a clientMessageId replayed with the same request gets the
// first answer again (same guid) and adds no event; with a different request it is
// duplicateMessage. Keys are per account and per method, survive a restart, and
// autoIdempotency's x-idempotency-key makes each call a write of its own.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";

describe("message idempotency", () => {
  /** @type {Server} */ let server;
  let me, alice, bob;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
  });
  after(() => server?.cleanup());

  async function group() {
    return (await me.chats.create([alice.address, bob.address, uniqueEmail()])).chat.guid;
  }
  const key = () => `cmid-${randomUUID()}`;
  const heads = async () => Promise.all([me, alice, bob].map((p) => p.head()));
  const received = async (person, head) =>
    (await person.eventsAfter(head)).filter((e) => e.type === "message.received");

  test("sendText replayed with the same clientMessageId: same message, same guid, one event per member", async () => {
    const chat = await group();
    const k = key();
    const before = await heads();
    const first = await me.client.messages.sendText(chat, "only once", { clientMessageId: k });
    const again = await me.client.messages.sendText(chat, "only once", { clientMessageId: k });
    assert.deepEqual(again, first);
    for (const [i, person] of [me, alice, bob].entries()) {
      const events = await received(person, before[i]);
      assert.deepEqual(events.map((e) => e.message.guid), [first.guid], `${person.address}: one message.received`);
    }
    const { messages } = await alice.client.messages.listInChat(chat);
    assert.deepEqual(messages.map((m) => m.guid), [first.guid], "one message in the chat");
  });

  test("concurrent sends with one clientMessageId make one message", async () => {
    const chat = await group();
    const k = key();
    const head = await alice.head();
    const results = await Promise.all(
      Array.from({ length: 4 }, () => me.client.messages.sendText(chat, "racing", { clientMessageId: k })),
    );
    for (const r of results) assert.equal(r.guid, results[0].guid);
    assert.equal((await received(alice, head)).length, 1);
  });

  test("same key, different text or chat -> duplicateMessage, nothing sent", async () => {
    const chat = await group();
    const other = await group();
    const k = key();
    await me.client.messages.sendText(chat, "original", { clientMessageId: k });
    const before = await heads();
    await expectError(me.client.messages.sendText(chat, "changed", { clientMessageId: k }), Errors.duplicateMessage);
    await expectError(me.client.messages.sendText(other, "original", { clientMessageId: k }), Errors.duplicateMessage);
    assert.deepEqual(await heads(), before);
  });

  test("keys are per account: alice's send with my key is her own message", async () => {
    const chat = await group();
    const k = key();
    const mine = await me.client.messages.sendText(chat, "same words", { clientMessageId: k });
    const hers = await alice.client.messages.sendText(chat, "same words", { clientMessageId: k });
    assert.notEqual(hers.guid, mine.guid);
    assert.equal(hers.isFromMe, true);
  });

  test("a refused send is replayed as the same refusal", async () => {
    const chat = await group();
    const k = key();
    await expectError(me.client.messages.sendText(chat, "", { clientMessageId: k }), Errors.invalidArgument, {
      field: "text",
    });
    await expectError(me.client.messages.sendText(chat, "", { clientMessageId: k }), Errors.invalidArgument, {
      field: "text",
    });
  });

  test("setReaction, edit and unsend replays add no event and answer as the first time", async () => {
    const chat = await group();
    const sent = await me.client.messages.sendText(chat, "v1");
    const [rk, ek, uk] = [key(), key(), key()];

    const reacted = await alice.client.messages.setReaction(chat, sent.guid, { kind: "love" }, true, { clientMessageId: rk });
    const edited = await me.client.messages.edit(chat, sent.guid, "v2", { clientMessageId: ek });
    await me.client.messages.edit(chat, sent.guid, "v3");
    let before = await heads();
    assert.deepEqual(
      await alice.client.messages.setReaction(chat, sent.guid, { kind: "love" }, true, { clientMessageId: rk }),
      reacted,
    );
    assert.deepEqual(await me.client.messages.edit(chat, sent.guid, "v2", { clientMessageId: ek }), edited, "the first answer, v2");
    assert.deepEqual(await heads(), before, "no new events");
    assert.equal((await alice.client.messages.get(sent.guid)).content.text, "v3", "no new effect");

    await me.client.messages.unsend(chat, sent.guid, { clientMessageId: uk });
    before = await heads();
    await me.client.messages.unsend(chat, sent.guid, { clientMessageId: uk });
    assert.deepEqual(await heads(), before, "the replayed unsend succeeds again and adds nothing");
    await expectError(me.client.messages.unsend(chat, sent.guid, { clientMessageId: key() }), Errors.preconditionFailed, {
      reason: "messageUnsent",
    });
  });

  test("chats.create with an initial message replayed: same chat, same message, one message.received each", async () => {
    const k = key();
    const others = [alice.address, bob.address, uniqueEmail()];
    const before = await heads();
    const first = await me.chats.create(others, { message: "hello once", clientMessageId: k });
    const again = await me.chats.create(others, { message: "hello once", clientMessageId: k });
    assert.deepEqual(again, first);
    for (const [i, person] of [me, alice, bob].entries()) {
      assert.deepEqual(
        (await received(person, before[i])).map((e) => e.message.guid),
        [first.initialMessage.guid],
        `${person.address}: the initial message once`,
      );
    }
  });

  test("with autoIdempotency every sendText is a message of its own", async () => {
    const chat = await group();
    const auto = server.client(me.token, { autoIdempotency: true });
    const a = await auto.messages.sendText(chat, "same text");
    const b = await auto.messages.sendText(chat, "same text");
    assert.notEqual(a.guid, b.guid);
  });

  test("a replay after a restart returns the original message, with no new event", async () => {
    const chat = await group();
    const k = key();
    const first = await me.client.messages.sendText(chat, "before restart", { clientMessageId: k });
    const before = await heads();
    await server.restart();
    assert.deepEqual(await me.client.messages.sendText(chat, "before restart", { clientMessageId: k }), first);
    assert.deepEqual(await heads(), before);
    await expectError(me.client.messages.sendText(chat, "something else", { clientMessageId: k }), Errors.duplicateMessage);
  });
});
