// Messages refused: bad text, subjects and effects, replies and formatting that point
// nowhere, unknown or invisible chats and messages, edits and unsends of someone else's
// message, tapbacks on unsent messages, forged page tokens. Every refusal appends nothing
// to any log.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";
import { direct } from "../lib/messages.mjs";
import { RawClient, RawError, encode } from "../lib/raw.mjs";

const TEXT_LIMIT = 20_000;

describe("message errors", () => {
  /** @type {Server} */ let server;
  let me, alice, bob, carol;
  let chat, otherChat, mine, hers;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
    carol = await server.person("carol@example.com");
    chat = (await me.chats.create([alice.address, bob.address, uniqueEmail()])).chat.guid;
    otherChat = (await me.chats.create([alice.address, uniqueEmail()])).chat.guid;
    mine = await me.client.messages.sendText(chat, "my message");
    hers = await alice.client.messages.sendText(chat, "alice's message");
  });
  after(() => server?.cleanup());

  /** Every log's head, to prove a refusal appended nothing. */
  const heads = async () => Promise.all([me, alice, bob, carol].map((p) => p.head()));

  /** Assert `call()` is refused as `kind` (with `context`) and no log moved. */
  async function refused(call, kind, context = {}) {
    const before = await heads();
    const err = await expectError(call, kind, context);
    assert.deepEqual(await heads(), before, "a refused write appends nothing to any log");
    return err;
  }

  describe("sendText: text", () => {
    test("empty text -> invalidArgument field=text reason=empty", async () => {
      await refused(() => me.client.messages.sendText(chat, ""), Errors.invalidArgument, { field: "text", reason: "empty" });
    });

    test("whitespace only is empty too", async () => {
      await refused(() => me.client.messages.sendText(chat, "  \n\t "), Errors.invalidArgument, {
        field: "text",
        reason: "empty",
      });
    });

    test(`more than ${TEXT_LIMIT} characters -> invalidArgument reason=tooLong limit=${TEXT_LIMIT}`, async () => {
      await refused(() => me.client.messages.sendText(chat, "x".repeat(TEXT_LIMIT + 1)), Errors.invalidArgument, {
        field: "text",
        reason: "tooLong",
        limit: String(TEXT_LIMIT),
      });
    });

    test(`exactly ${TEXT_LIMIT} characters is accepted`, async () => {
      const sent = await me.client.messages.sendText(chat, "y".repeat(TEXT_LIMIT));
      assert.equal(sent.content.text.length, TEXT_LIMIT);
    });

    for (const [name, ch] of [
      ["NUL", "\u0000"],
      ["BEL", "\u0007"],
      ["ESC", "\u001b"],
      ["DEL", "\u007f"],
    ]) {
      test(`a control character (${name}) -> invalidArgument reason=controlCharacter`, async () => {
        await refused(() => me.client.messages.sendText(chat, `bad${ch}text`), Errors.invalidArgument, {
          field: "text",
          reason: "controlCharacter",
        });
      });
    }
  });

  describe("sendText: other fields", () => {
    test("a subject over 1,000 characters -> invalidArgument field=subject reason=tooLong", async () => {
      await refused(() => me.client.messages.sendText(chat, "hi", { subject: "s".repeat(1_001) }), Errors.invalidArgument, {
        field: "subject",
        reason: "tooLong",
        limit: "1000",
      });
    });

    test("a subject of exactly 1,000 characters is accepted", async () => {
      const sent = await me.client.messages.sendText(chat, "hi", { subject: "s".repeat(1_000) });
      assert.equal(sent.subject.length, 1_000);
    });

    test("an effect id over 200 characters -> invalidArgument reason=tooLong", async () => {
      await refused(() => me.client.messages.sendText(chat, "hi", { effect: "e".repeat(201) }), Errors.invalidArgument, {
        field: /^effect/i,
        reason: "tooLong",
        limit: "200",
      });
    });

    test("replyTo an unknown message -> messageNotFound field=replyTo naming it", async () => {
      const guid = randomUUID().toUpperCase();
      await refused(() => me.client.messages.sendText(chat, "re: nothing", { replyTo: guid }), Errors.messageNotFound, {
        field: "replyTo",
        messageguid: guid,
      });
    });

    test("replyTo a message of another chat -> messageNotFound", async () => {
      const elsewhere = await me.client.messages.sendText(otherChat, "in the other chat");
      await refused(() => me.client.messages.sendText(chat, "wrong chat", { replyTo: elsewhere.guid }), Errors.messageNotFound, {
        field: "replyTo",
        messageguid: elsewhere.guid,
      });
    });

    for (const [what, range] of [
      ["past the end", { start: 5, length: 10 }],
      ["starting past the end", { start: 50, length: 1 }],
    ]) {
      test(`a formatting range ${what} -> invalidArgument field=formatting reason=outOfRange`, async () => {
        await refused(
          () => me.client.messages.sendText(chat, "short text", { formatting: [{ type: "bold", ...range }] }),
          Errors.invalidArgument,
          { field: "formatting", reason: "outOfRange" },
        );
      });
    }

    test("a formatting range ending exactly at the end (UTF-16) is accepted", async () => {
      const text = "wave 👋";
      const sent = await me.client.messages.sendText(chat, text, {
        formatting: [{ type: "bold", start: 0, length: text.length }],
      });
      assert.equal(sent.content.formatting[0].length, text.length);
    });
  });

  describe("chats", () => {
    test("an unknown group -> chatNotFound naming it", async () => {
      const guid = "any;+;chat000000000000000042";
      await refused(() => me.client.messages.sendText(guid, "hello?"), Errors.chatNotFound, { chatguid: guid });
    });

    test("a group I am not in -> chatNotFound", async () => {
      await refused(() => carol.client.messages.sendText(chat, "let me in"), Errors.chatNotFound, { chatguid: chat });
    });

    test("a direct chat to an unreachable address -> addressNotFound", async () => {
      const gone = uniqueEmail("gone");
      await server.markUnreachable(gone);
      await refused(() => me.client.messages.sendText(direct(gone), "hello?"), Errors.addressNotFound, { address: gone });
    });

    test("listInChat of a chat I cannot see -> chatNotFound", async () => {
      await expectError(carol.client.messages.listInChat(chat), Errors.chatNotFound, { chatguid: chat });
    });
  });

  describe("unknown and invisible messages", () => {
    const unknown = () => randomUUID().toUpperCase();

    test("get an unknown guid -> messageNotFound field=messageGuid", async () => {
      await expectError(me.client.messages.get(unknown()), Errors.messageNotFound, { field: "messageGuid" });
    });

    test("get a message of a chat I am not in -> messageNotFound", async () => {
      await expectError(carol.client.messages.get(mine.guid), Errors.messageNotFound, { field: "messageGuid" });
    });

    test("edit, unsend, setReaction, notifySilenced of an unknown guid -> messageNotFound", async () => {
      const guid = unknown();
      await refused(() => me.client.messages.edit(chat, guid, "new"), Errors.messageNotFound);
      await refused(() => me.client.messages.unsend(chat, guid), Errors.messageNotFound);
      await refused(() => me.client.messages.setReaction(chat, guid, { kind: "like" }, true), Errors.messageNotFound);
      await refused(() => me.client.messages.notifySilenced(chat, guid), Errors.messageNotFound);
    });

    test("a message named with the wrong chat -> messageNotFound", async () => {
      await refused(() => me.client.messages.setReaction(otherChat, mine.guid, { kind: "like" }, true), Errors.messageNotFound);
      await refused(() => me.client.messages.edit(otherChat, mine.guid, "moved?"), Errors.messageNotFound);
    });
  });

  describe("edit and unsend: only my own messages", () => {
    test("editing someone else's message -> preconditionFailed reason=notFromMe", async () => {
      await refused(() => me.client.messages.edit(chat, hers.guid, "my words now"), Errors.preconditionFailed, {
        reason: "notFromMe",
      });
      assert.equal((await me.client.messages.get(hers.guid)).content.text, "alice's message");
    });

    test("unsending someone else's message -> preconditionFailed reason=notFromMe", async () => {
      await refused(() => me.client.messages.unsend(chat, hers.guid), Errors.preconditionFailed, { reason: "notFromMe" });
      assert.equal((await me.client.messages.get(hers.guid)).dateRetracted, undefined);
    });

  });

  describe("unsent messages", () => {
    let unsent;
    before(async () => {
      unsent = await me.client.messages.sendText(chat, "gone soon");
      await me.client.messages.unsend(chat, unsent.guid);
    });

    test("unsending twice -> preconditionFailed reason=messageUnsent", async () => {
      await refused(() => me.client.messages.unsend(chat, unsent.guid), Errors.preconditionFailed, { reason: "messageUnsent" });
    });

    test("editing an unsent message -> preconditionFailed reason=messageUnsent", async () => {
      await refused(() => me.client.messages.edit(chat, unsent.guid, "back?"), Errors.preconditionFailed, {
        reason: "messageUnsent",
      });
    });

    test("reacting to an unsent message -> preconditionFailed reason=messageUnsent", async () => {
      await refused(() => alice.client.messages.setReaction(chat, unsent.guid, { kind: "love" }, true), Errors.preconditionFailed, {
        reason: "messageUnsent",
      });
    });

  });

  describe("tapbacks", () => {
    test("a sticker tapback (sent raw: the SDK refuses it) -> operationNotSupported", async () => {
      const raw = new RawClient(server.address);
      try {
        const request = encode([
          [1, encode([[1, chat], [2, mine.guid]])],
          [2, encode([[1, 7]])], // MESSAGE_REACTION_KIND_STICKER
          [3, true],
        ]);
        const before = await heads();
        const err = await raw
          .call("/photon.imessage.v1.MessageService/SetReaction", request, { token: alice.token })
          .then(() => assert.fail("expected operationNotSupported"), (e) => e);
        assert.ok(err instanceof RawError, String(err));
        assert.equal(err.grpcCode, 9, "FAILED_PRECONDITION");
        assert.equal(err.code, "operationNotSupported");
        assert.deepEqual(await heads(), before);
      } finally {
        raw.close();
      }
    });

  });

  describe("page tokens", () => {
    test("a forged page token -> invalidArgument field=pageToken reason=invalidPageToken", async () => {
      for (const token of ["not-a-token", "AAAA", Buffer.from('{"after":1}').toString("base64")]) {
        await expectError(me.client.messages.listInChat(chat, { pageToken: token }), Errors.invalidArgument, {
          field: "pageToken",
          reason: "invalidPageToken",
        });
        await expectError(me.client.messages.listRecent({ pageToken: token }), Errors.invalidArgument, {
          field: "pageToken",
          reason: "invalidPageToken",
        });
      }
    });

    test("a real token with one character changed -> invalidPageToken", async () => {
      const { nextPageToken } = await me.client.messages.listInChat(chat, { pageSize: 1 });
      assert.ok(nextPageToken, "the chat has more than one message");
      const i = Math.floor(nextPageToken.length / 2);
      const flipped = nextPageToken.slice(0, i) + (nextPageToken[i] === "A" ? "B" : "A") + nextPageToken.slice(i + 1);
      await expectError(me.client.messages.listInChat(chat, { pageToken: flipped }), Errors.invalidArgument, {
        field: "pageToken",
        reason: "invalidPageToken",
      });
    });

    test("a token from another chat -> invalidPageToken", async () => {
      await me.client.messages.sendText(otherChat, "two");
      await me.client.messages.sendText(otherChat, "three");
      const { nextPageToken } = await me.client.messages.listInChat(otherChat, { pageSize: 1 });
      assert.ok(nextPageToken);
      await expectError(me.client.messages.listInChat(chat, { pageToken: nextPageToken }), Errors.invalidArgument, {
        field: "pageToken",
        reason: "invalidPageToken",
      });
    });

    // pageSize 0 is left out: the server takes it as "unset" (the default, 50).
    for (const pageSize of [-1, 1_001]) {
      test(`pageSize ${pageSize} -> invalidArgument field=pageSize reason=outOfRange limit=1000`, async () => {
        await expectError(me.client.messages.listInChat(chat, { pageSize }), Errors.invalidArgument, {
          field: "pageSize",
          reason: "outOfRange",
          limit: "1000",
        });
        await expectError(me.client.messages.listRecent({ pageSize }), Errors.invalidArgument, {
          field: "pageSize",
          reason: "outOfRange",
          limit: "1000",
        });
      });
    }
  });

  test("the server keeps working after all of this", async () => {
    const sent = await me.client.messages.sendText(chat, "still here");
    assert.equal((await alice.client.messages.get(sent.guid)).content.text, "still here");
  });
});
