// docs/behaviour.md §4 setDisplayName.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, assertGroupChat, assertGroupEvents, expectError } from "../lib/expect.mjs";

describe("groups.setDisplayName", () => {
  /** @type {Server} */ let server;
  let me, alice;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(() => server?.cleanup());

  async function newGroup() {
    const others = [alice.address, uniqueEmail()];
    const { chat } = await me.chats.create(others);
    return { guid: chat.guid, others };
  }

  test("renames the group and returns the updated chat", async () => {
    const { guid, others } = await newGroup();
    const chat = await me.groups.setDisplayName(guid, "Weekend Trip");
    assertGroupChat(chat, { participants: others, displayName: "Weekend Trip" });
    assert.equal(chat.guid, guid);
    assert.equal((await me.chats.get(guid)).displayName, "Weekend Trip");
    assert.equal((await alice.chats.get(guid)).displayName, "Weekend Trip", "every member sees the name");
  });

  test("emits one displayNameChanged, isFromMe only for the renamer", async () => {
    const { guid } = await newGroup();
    const [myHead, aliceHead] = [await me.head(), await alice.head()];

    await me.groups.setDisplayName(guid, "Book Club");

    const change = { type: "displayNameChanged", displayName: "Book Club" };
    assertGroupEvents(await me.eventsAfter(myHead), [
      { chatGuid: guid, isFromMe: true, actor: me.address, change },
    ]);
    assertGroupEvents(await alice.eventsAfter(aliceHead), [
      { chatGuid: guid, isFromMe: false, actor: me.address, change },
    ]);
  });

  test("another member can rename; the event names them as actor", async () => {
    const { guid } = await newGroup();
    const myHead = await me.head();
    await alice.groups.setDisplayName(guid, "Alice's Name");
    assertGroupEvents(await me.eventsAfter(myHead), [
      {
        chatGuid: guid,
        isFromMe: false,
        actor: alice.address,
        change: { type: "displayNameChanged", displayName: "Alice's Name" },
      },
    ]);
  });

  test("the name is trimmed", async () => {
    const { guid } = await newGroup();
    const chat = await me.groups.setDisplayName(guid, "   Padded Name \t ");
    assert.equal(chat.displayName, "Padded Name");
  });

  test("the same name again succeeds with no event", async () => {
    const { guid } = await newGroup();
    await me.groups.setDisplayName(guid, "Same");
    const [myHead, aliceHead] = [await me.head(), await alice.head()];

    const chat = await me.groups.setDisplayName(guid, "Same");
    assert.equal(chat.displayName, "Same");
    const trimmedSame = await me.groups.setDisplayName(guid, "  Same  ");
    assert.equal(trimmedSame.displayName, "Same");

    assert.deepEqual(await me.eventsAfter(myHead), []);
    assert.deepEqual(await alice.eventsAfter(aliceHead), []);
  });

  test("256 characters is allowed (counted as characters, not bytes)", async () => {
    const { guid } = await newGroup();
    const ascii = "n".repeat(256);
    assert.equal((await me.groups.setDisplayName(guid, ascii)).displayName, ascii);
    const accented = "é".repeat(256); // 512 bytes of UTF-8
    assert.equal((await me.groups.setDisplayName(guid, accented)).displayName, accented);
  });

  test("longer than 256 characters -> invalidArgument reason=tooLong limit=256", async () => {
    const { guid } = await newGroup();
    const head = await me.head();
    await expectError(me.groups.setDisplayName(guid, "x".repeat(257)), Errors.invalidArgument, {
      reason: "tooLong",
      limit: "256",
    });
    assert.equal((await me.chats.get(guid)).displayName, "", "name unchanged");
    assert.deepEqual(await me.eventsAfter(head), [], "no event");
  });

  test("an unknown group -> NotFoundError chatNotFound", async () => {
    const guid = "any;+;chat999999999999999999";
    await expectError(me.groups.setDisplayName(guid, "Nope"), Errors.chatNotFound, { chatguid: guid });
  });

  test("a direct chat guid -> ValidationError operationNotSupported (FAILED_PRECONDITION)", async () => {
    const guid = "any;-;+15551234567";
    await expectError(me.groups.setDisplayName(guid, "Nope"), Errors.operationNotSupported, { chatguid: guid });
  });
});
