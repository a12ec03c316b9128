// docs/behaviour.md §6: client_message_id and x-idempotency-key.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, addresses, assertGroupEvents, expectError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";
import { Paths, RawClient, RawError, Requests, decodeChatResponse } from "../lib/raw.mjs";

describe("idempotency", () => {
  /** @type {Server} */ let server;
  let me, alice;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(() => server?.cleanup());

  /** A group of me + alice + `extra` guests. */
  async function newGroup(extra = 2) {
    const others = [alice.address, ...Array.from({ length: extra }, () => uniqueEmail())];
    const { chat } = await me.chats.create(others);
    return { guid: chat.guid, others };
  }

  const key = () => `cmid-${randomUUID()}`;

  test("same clientMessageId + same request -> same response, no second effect", async () => {
    const { guid, others } = await newGroup();
    const k = key();
    const newcomer = uniqueEmail();
    const first = await me.groups.addParticipants(guid, [newcomer], { clientMessageId: k });
    const head = await me.head();

    // Without idempotency this would fail with alreadyParticipant.
    const again = await me.groups.addParticipants(guid, [newcomer], { clientMessageId: k });

    assert.deepEqual(again, first);
    assert.deepEqual(addresses(await me.chats.get(guid)), [...others, newcomer]);
    assert.deepEqual(await me.eventsAfter(head), [], "no new event");
  });

  test("a replay returns the original response even after the state moved on", async () => {
    const { guid } = await newGroup();
    const k = key();
    const original = await me.groups.setDisplayName(guid, "First", { clientMessageId: k });
    await me.groups.setDisplayName(guid, "Second");
    const head = await me.head();

    const replay = await me.groups.setDisplayName(guid, "First", { clientMessageId: k });

    assert.deepEqual(replay, original, "the original snapshot, name First");
    assert.equal((await me.chats.get(guid)).displayName, "Second", "no new effect");
    assert.deepEqual(await me.eventsAfter(head), []);
  });

  test("an error response is replayed too, even when the request would now succeed", async () => {
    const { guid, others } = await newGroup(3);
    const k = key();
    const outsider = uniqueEmail();
    await expectError(
      me.groups.removeParticipants(guid, [outsider], { clientMessageId: k }),
      Errors.preconditionFailed,
      { reason: "notParticipant" },
    );
    await me.groups.addParticipants(guid, [outsider]);
    const head = await me.head();

    await expectError(
      me.groups.removeParticipants(guid, [outsider], { clientMessageId: k }),
      Errors.preconditionFailed,
      { reason: "notParticipant" },
    );
    assert.deepEqual(addresses(await me.chats.get(guid)), [...others, outsider], "outsider was not removed");
    assert.deepEqual(await me.eventsAfter(head), []);
  });

  test("leave replays successfully although the chat is now invisible", async () => {
    const { guid } = await newGroup(3);
    const k = key();
    await me.groups.leave(guid, { clientMessageId: k });
    const head = await me.head();
    await me.groups.leave(guid, { clientMessageId: k });
    assert.deepEqual(await me.eventsAfter(head), []);
    await expectError(me.groups.leave(guid, { clientMessageId: key() }), Errors.chatNotFound);
  });

  test("setIcon and removeIcon replays add no effect", async () => {
    const { guid } = await newGroup();
    const setKey = key();
    const removeKey = key();
    await me.groups.setIcon(guid, png(1), { clientMessageId: setKey });
    await me.groups.removeIcon(guid, { clientMessageId: removeKey });
    await me.groups.setIcon(guid, png(2));
    const head = await me.head();

    await me.groups.setIcon(guid, png(1), { clientMessageId: setKey });
    await me.groups.removeIcon(guid, { clientMessageId: removeKey });

    const icon = await me.groups.getIcon(guid);
    assert.ok(Buffer.from(icon.data).equals(png(2)), "the newer icon is still there");
    assert.deepEqual(await me.eventsAfter(head), []);
  });

  test("chats.create replays the same chat and the same initial message", async () => {
    const k = key();
    const others = [alice.address, uniqueEmail()];
    const aliceHead = await alice.head();
    const first = await me.chats.create(others, { message: "hi all", clientMessageId: k });
    const again = await me.chats.create(others, { message: "hi all", clientMessageId: k });
    assert.deepEqual(again, first);
    // Only group events count here: the initial message is a real message, so alice's log
    // also holds its message.received (message-idempotency.test.mjs checks that it is one).
    const groupEvents = (await alice.eventsAfter(aliceHead)).filter((e) => e.type === "group.changed");
    assert.equal(groupEvents.length, 1, "alice was added once");
  });

  test("same key + different request -> ValidationError duplicateMessage (FAILED_PRECONDITION)", async () => {
    const { guid } = await newGroup();
    const other = await newGroup();
    const k = key();
    await me.groups.setDisplayName(guid, "A", { clientMessageId: k });
    const head = await me.head();

    await expectError(me.groups.setDisplayName(guid, "B", { clientMessageId: k }), Errors.duplicateMessage);
    await expectError(me.groups.setDisplayName(other.guid, "A", { clientMessageId: k }), Errors.duplicateMessage);

    assert.equal((await me.chats.get(guid)).displayName, "A");
    assert.equal((await me.chats.get(other.guid)).displayName, "");
    assert.deepEqual(await me.eventsAfter(head), []);
  });

  test("keys are scoped per method", async () => {
    const { guid, others } = await newGroup();
    const k = key();
    const newcomer = uniqueEmail();
    await me.groups.setDisplayName(guid, "Scoped", { clientMessageId: k });
    const chat = await me.groups.addParticipants(guid, [newcomer], { clientMessageId: k });
    assert.deepEqual(addresses(chat), [...others, newcomer]);
    assert.equal(chat.displayName, "Scoped");
  });

  test("keys are scoped per account", async () => {
    const { guid } = await newGroup();
    const k = key();
    await me.groups.setDisplayName(guid, "Mine", { clientMessageId: k });
    const head = await me.head();
    const chat = await alice.groups.setDisplayName(guid, "Hers", { clientMessageId: k });
    assert.equal(chat.displayName, "Hers");
    assertGroupEvents(await me.eventsAfter(head), [
      { chatGuid: guid, isFromMe: false, actor: alice.address, change: { type: "displayNameChanged", displayName: "Hers" } },
    ]);
  });

  test("concurrent calls with the same clientMessageId produce one effect", async () => {
    const { guid, others } = await newGroup();
    const k = key();
    const newcomer = uniqueEmail();
    const head = await me.head();

    const results = await Promise.all(
      Array.from({ length: 3 }, () => me.groups.addParticipants(guid, [newcomer], { clientMessageId: k })),
    );

    for (const result of results) assert.deepEqual(result, results[0]);
    assert.deepEqual(addresses(results[0]), [...others, newcomer]);
    assertGroupEvents(await me.eventsAfter(head), [
      { chatGuid: guid, isFromMe: true, actor: me.address, change: { type: "participantAdded", participant: newcomer } },
    ]);
  });

  test("x-idempotency-key metadata is a key when there is no clientMessageId", async () => {
    const { guid, others } = await newGroup();
    const raw = new RawClient(server.address);
    try {
      const headers = { "x-idempotency-key": randomUUID() };
      const newcomer = uniqueEmail();
      const request = Requests.addParticipants(guid, [newcomer]);
      const head = await me.head();

      const [a, b] = await Promise.all([
        raw.call(Paths.addParticipants, request, { token: me.token, headers }),
        raw.call(Paths.addParticipants, request, { token: me.token, headers }),
      ]);
      const c = await raw.call(Paths.addParticipants, request, { token: me.token, headers });

      for (const response of [a, b, c]) {
        assert.deepEqual(decodeChatResponse(response).participants, [...others, newcomer]);
      }
      assert.equal((await me.eventsAfter(head)).length, 1, "one participantAdded");

      const different = Requests.addParticipants(guid, [uniqueEmail()]);
      const err = await raw.call(Paths.addParticipants, different, { token: me.token, headers }).then(
        () => assert.fail("expected duplicateMessage"),
        (e) => e,
      );
      assert.ok(err instanceof RawError, String(err));
      assert.equal(err.grpcCode, 9);
      assert.equal(err.code, "duplicateMessage");
    } finally {
      raw.close();
    }
  });

  test("with autoIdempotency each call is a new write, and clientMessageId still decides replays", async () => {
    const { guid, others } = await newGroup();
    const auto = server.client(me.token, { autoIdempotency: true });
    const [x, y] = [uniqueEmail(), uniqueEmail()];
    await auto.groups.addParticipants(guid, [x]);
    const chat = await auto.groups.addParticipants(guid, [y]);
    assert.deepEqual(addresses(chat), [...others, x, y]);

    // Each call carries a fresh random x-idempotency-key, but client_message_id wins.
    const k = key();
    const z = uniqueEmail();
    const first = await auto.groups.addParticipants(guid, [z], { clientMessageId: k });
    const head = await me.head();
    assert.deepEqual(await auto.groups.addParticipants(guid, [z], { clientMessageId: k }), first);
    assert.deepEqual(await me.eventsAfter(head), []);
  });

  test("a replay after a server restart returns the original result with no new event", async () => {
    const { guid, others } = await newGroup();
    const k = key();
    const newcomer = uniqueEmail();
    const first = await me.groups.addParticipants(guid, [newcomer], { clientMessageId: k });
    const head = await me.head();

    await server.restart();

    const again = await me.groups.addParticipants(guid, [newcomer], { clientMessageId: k });
    assert.deepEqual(again, first);
    assert.deepEqual(addresses(await me.chats.get(guid)), [...others, newcomer]);
    assert.equal(await me.head(), head, "no new event");
    await expectError(
      me.groups.addParticipants(guid, [uniqueEmail()], { clientMessageId: k }),
      Errors.duplicateMessage,
    );
  });
});
