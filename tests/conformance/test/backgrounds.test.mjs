// chats.setBackground / removeBackground / hasBackground and shareContactInfo: a chat's
// background is shared by everyone in it; setting or removing one is a chat event in every
// member's log; the same image again, or removing none, records nothing. Images are checked
// like group icons.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

describe("chat backgrounds and contact sharing", () => {
  /** @type {Server} */ let server;
  let me, alice;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(() => server?.cleanup());

  test("a group's background: set, seen by every member, unchanged by the same image, removed", async () => {
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    assert.equal(await me.chats.hasBackground(chat.guid), false);
    const [mine, hers] = [await me.head(), await alice.head()];

    await alice.chats.setBackground(chat.guid, png(7));
    assert.equal(await me.chats.hasBackground(chat.guid), true, "shared by everyone in the chat");
    assert.equal(await alice.chats.hasBackground(chat.guid), true);
    for (const [person, head, fromMe] of [
      [me, mine, false],
      [alice, hers, true],
    ]) {
      const events = await person.eventsAfter(head);
      assert.deepEqual(
        events.map((e) => e.type),
        ["chat.backgroundChanged"],
        JSON.stringify(events),
      );
      assert.equal(events[0].chatGuid, chat.guid);
      assert.equal(events[0].isFromMe, fromMe);
      assert.equal(events[0].actor?.address, alice.address);
    }

    // The same image again changes nothing; another one is a change.
    const afterSet = await me.head();
    await me.chats.setBackground(chat.guid, png(7));
    assert.equal(await me.head(), afterSet, "the same image records nothing");
    await me.chats.setBackground(chat.guid, png(8));
    assert.deepEqual((await me.eventsAfter(afterSet)).map((e) => e.type), ["chat.backgroundChanged"]);

    const beforeRemove = await alice.head();
    await me.chats.removeBackground(chat.guid);
    assert.equal(await alice.chats.hasBackground(chat.guid), false);
    const removed = await alice.eventsAfter(beforeRemove);
    assert.deepEqual(removed.map((e) => e.type), ["chat.backgroundRemoved"]);
    assert.equal(removed[0].actor?.address, me.address);
    const afterRemove = await alice.head();
    await me.chats.removeBackground(chat.guid);
    assert.equal(await alice.head(), afterRemove, "removing none records nothing");
  });

  test("a direct chat's background is the same chat for both sides", async () => {
    const { chat } = await me.chats.create([alice.address]);
    // Creating a direct chat makes only mine; a message makes hers.
    await expectError(() => alice.chats.hasBackground(`any;-;${me.address}`), Errors.chatNotFound);
    await me.client.messages.sendText(chat.guid, "hi");
    await me.chats.setBackground(chat.guid, png(3));
    assert.equal(await alice.chats.hasBackground(`any;-;${me.address}`), true);
    const events = await alice.eventsAfter(0);
    const last = events.at(-1);
    assert.equal(last.type, "chat.backgroundChanged");
    assert.equal(last.chatGuid, `any;-;${me.address}`, "each side names the chat by the other");
  });

  test("bad input changes nothing", async () => {
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    const head = await me.head();
    await expectError(() => me.chats.setBackground(chat.guid, Buffer.from("not an image")), Errors.invalidArgument, {
      field: "data",
    });
    await expectError(() => me.chats.setBackground(chat.guid, Buffer.alloc(0)), Errors.invalidArgument);
    await expectError(() => me.chats.setBackground("any;+;chat000000000000000001", png(1)), Errors.chatNotFound);
    await expectError(() => me.chats.hasBackground("any;+;chat000000000000000001"), Errors.chatNotFound);
    await expectError(() => me.chats.removeBackground("any;+;chat000000000000000001"), Errors.chatNotFound);
    assert.equal(await me.head(), head);
    assert.equal(await me.chats.hasBackground(chat.guid), false);
  });

  test("shareContactInfo: checks the chat, records nothing", async () => {
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    const [mine, hers] = [await me.head(), await alice.head()];
    await me.chats.shareContactInfo(chat.guid);
    assert.equal(await me.head(), mine);
    assert.equal(await alice.head(), hers);
    await expectError(() => me.chats.shareContactInfo("any;+;chat000000000000000001"), Errors.chatNotFound);
  });
});
