// docs/behaviour.md §4 leave: size rule, invisibility afterwards, re-adding.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, addresses, assertGroupChat, assertGroupEvents, expectError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

describe("groups.leave", () => {
  /** @type {Server} */ let server;
  let me, alice, bob;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("bob@example.com");
  });
  after(() => server?.cleanup());

  test("with only 2 others -> preconditionFailed reason=groupTooSmall, nothing changes", async () => {
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    const heads = [await me.head(), await alice.head()];
    await expectError(me.groups.leave(chat.guid), Errors.preconditionFailed, { reason: "groupTooSmall" });
    assertGroupChat(await me.chats.get(chat.guid));
    assert.ok(addresses(await alice.chats.get(chat.guid)).includes(me.address), "still a member");
    assert.deepEqual([await me.head(), await alice.head()], heads, "no events");
  });

  describe("with 3 others", () => {
    let guid, others, countBefore, myHead, aliceHead;

    before(async () => {
      others = [alice.address, bob.address, uniqueEmail()];
      ({
        chat: { guid },
      } = await me.chats.create(others));
      countBefore = await me.chats.count();
      [myHead, aliceHead] = [await me.head(), await alice.head()];
      await me.groups.leave(guid); // resolves with nothing
    });

    test("succeeds and logs participantLeft (actor = participant = me) for me", async () => {
      assertGroupEvents(await me.eventsAfter(myHead), [
        { chatGuid: guid, isFromMe: true, actor: me.address, change: { type: "participantLeft", participant: me.address } },
      ]);
    });

    test("other members see me leave", async () => {
      assertGroupEvents(await alice.eventsAfter(aliceHead), [
        { chatGuid: guid, isFromMe: false, actor: me.address, change: { type: "participantLeft", participant: me.address } },
      ]);
      assert.deepEqual(addresses(await alice.chats.get(guid)), [bob.address, others[2]], "I am no longer listed");
    });

    test("the chat is invisible to me: get / group methods -> chatNotFound, count drops", async () => {
      const notFound = { chatguid: guid };
      await expectError(me.chats.get(guid), Errors.chatNotFound, notFound);
      await expectError(me.groups.setDisplayName(guid, "Back?"), Errors.chatNotFound, notFound);
      await expectError(me.groups.getIcon(guid), Errors.chatNotFound, notFound);
      await expectError(me.groups.setIcon(guid, png()), Errors.chatNotFound, notFound);
      await expectError(me.groups.removeIcon(guid), Errors.chatNotFound, notFound);
      await expectError(me.groups.addParticipants(guid, [uniqueEmail()]), Errors.chatNotFound, notFound);
      await expectError(me.groups.removeParticipants(guid, [bob.address]), Errors.chatNotFound, notFound);
      await expectError(me.groups.leave(guid), Errors.chatNotFound, notFound);
      assert.equal(await me.chats.count(), countBefore - 1);
    });

    test("creating the same participant set makes a new group", async () => {
      const { chat } = await me.chats.create(others);
      assert.notEqual(chat.guid, guid, "a left group is not resolved by create");
      await expectError(me.chats.get(guid), Errors.chatNotFound);
    });

    test("another member adding me back makes it visible again, with participantAdded for me", async () => {
      const head = await me.head();
      const count = await me.chats.count();

      await alice.groups.addParticipants(guid, [me.address]);

      const chat = await me.chats.get(guid);
      assertGroupChat(chat);
      assert.ok(!addresses(chat).includes(me.address), "I am never in my own participant list");
      assert.ok(addresses(chat).includes(alice.address));
      assert.equal(await me.chats.count(), count + 1);
      assertGroupEvents(await me.eventsAfter(head), [
        { chatGuid: guid, isFromMe: false, actor: alice.address, change: { type: "participantAdded", participant: me.address } },
      ]);
      // And I can act on it again.
      assert.equal((await me.groups.setDisplayName(guid, "I'm back")).displayName, "I'm back");
    });
  });

  test("another account leaving: actor = participant = the leaver in my log", async () => {
    const { chat } = await me.chats.create([alice.address, bob.address, uniqueEmail(), uniqueEmail()]);
    const head = await me.head();
    await bob.groups.leave(chat.guid);
    assertGroupEvents(await me.eventsAfter(head), [
      { chatGuid: chat.guid, isFromMe: false, actor: bob.address, change: { type: "participantLeft", participant: bob.address } },
    ]);
    assert.ok(!addresses(await me.chats.get(chat.guid)).includes(bob.address));
    await expectError(bob.chats.get(chat.guid), Errors.chatNotFound);
  });
});
