// docs/behaviour.md §7: per-account event logs read back with events.catchUp.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, catchUp, uniqueEmail } from "../lib/harness.mjs";
import {
  Errors,
  GROUP_GUID,
  assertConsecutive,
  assertGroupEvent,
  assertGroupEvents,
  expectError,
} from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

describe("event log", () => {
  /** @type {Server} */ let server;
  let me, alice, bob, carol;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
    carol = await server.person("carol@example.com");
  });
  after(() => server?.cleanup());

  test("a new account's log is empty: catchUp yields only complete{headSequence: 0}", async () => {
    assert.deepEqual(await carol.log(), { events: [], head: 0 });
  });

  test("creating a group: each other account gets participantAdded for itself (actor = creator); the creator gets nothing", async () => {
    const guest = uniqueEmail();
    const heads = { me: await me.head(), alice: await alice.head(), bob: await bob.head() };

    const { chat } = await me.chats.create([alice.address, bob.address, guest]);

    assert.deepEqual(await me.eventsAfter(heads.me), [], "creation emits no group event for the creator");
    const aliceEvents = await alice.eventsAfter(heads.alice);
    const bobEvents = await bob.eventsAfter(heads.bob);
    assertGroupEvents(aliceEvents, [
      { chatGuid: chat.guid, isFromMe: false, actor: me.address, change: { type: "participantAdded", participant: alice.address } },
    ]);
    assertGroupEvents(bobEvents, [
      { chatGuid: chat.guid, isFromMe: false, actor: me.address, change: { type: "participantAdded", participant: bob.address } },
    ]);
    assert.equal(aliceEvents[0].occurredAt.getTime(), bobEvents[0].occurredAt.getTime(), "one commit, one occurredAt");
    assert.deepEqual(await carol.log(), { events: [], head: 0 }, "non-members see nothing");
  });

  test("one change is appended to every member's log; isFromMe only for the actor", async () => {
    const { chat } = await me.chats.create([alice.address, bob.address]);
    const heads = [await me.head(), await alice.head(), await bob.head()];

    await bob.groups.setDisplayName(chat.guid, "From Bob");

    const change = { type: "displayNameChanged", displayName: "From Bob" };
    const logs = [await me.eventsAfter(heads[0]), await alice.eventsAfter(heads[1]), await bob.eventsAfter(heads[2])];
    assertGroupEvents(logs[0], [{ chatGuid: chat.guid, isFromMe: false, actor: bob.address, change }]);
    assertGroupEvents(logs[1], [{ chatGuid: chat.guid, isFromMe: false, actor: bob.address, change }]);
    assertGroupEvents(logs[2], [{ chatGuid: chat.guid, isFromMe: true, actor: bob.address, change }]);
    logs.forEach((log, i) => assert.equal(log[0].sequence, heads[i] + 1, "each log has its own sequence space"));
    assert.equal(logs[0][0].occurredAt.getTime(), logs[2][0].occurredAt.getTime(), "same occurredAt in every log");
  });

  test("a change made from another device of mine is isFromMe in my log", async () => {
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    const device2 = server.client(await server.createToken(me.address));
    const head = await me.head();
    await device2.groups.setDisplayName(chat.guid, "From my iPad");
    assertGroupEvents(await me.eventsAfter(head), [
      {
        chatGuid: chat.guid,
        isFromMe: true,
        actor: me.address,
        change: { type: "displayNameChanged", displayName: "From my iPad" },
      },
    ]);
  });

  test("events are in commit order across actors", async () => {
    const { chat } = await me.chats.create([alice.address, bob.address, uniqueEmail()]);
    const head = await me.head();
    await alice.groups.setDisplayName(chat.guid, "one");
    await me.groups.setDisplayName(chat.guid, "two");
    await bob.groups.setIcon(chat.guid, png(3));
    await me.groups.removeIcon(chat.guid);
    const events = await me.eventsAfter(head);
    assertConsecutive(events, head);
    assertGroupEvents(events, [
      { chatGuid: chat.guid, isFromMe: false, actor: alice.address, change: { type: "displayNameChanged", displayName: "one" } },
      { chatGuid: chat.guid, isFromMe: true, actor: me.address, change: { type: "displayNameChanged", displayName: "two" } },
      { chatGuid: chat.guid, isFromMe: false, actor: bob.address, change: { type: "iconChanged" } },
      { chatGuid: chat.guid, isFromMe: true, actor: me.address, change: { type: "iconRemoved" } },
    ]);
  });

  test("rejected writes append nothing to any log", async () => {
    const { chat } = await me.chats.create([alice.address, bob.address]);
    const heads = async () => [await me.head(), await alice.head(), await bob.head(), await carol.head()];
    const before = await heads();

    await expectError(me.groups.addParticipants(chat.guid, [uniqueEmail(), "bad"]), Errors.invalidArgument);
    await expectError(me.groups.addParticipants(chat.guid, [alice.address]), Errors.preconditionFailed);
    await expectError(me.groups.removeParticipants(chat.guid, [alice.address]), Errors.preconditionFailed);
    await expectError(me.groups.leave(chat.guid), Errors.preconditionFailed);
    await expectError(me.groups.setDisplayName(chat.guid, "z".repeat(300)), Errors.invalidArgument);
    await expectError(me.groups.setIcon(chat.guid, Buffer.from("text")), Errors.invalidArgument);
    await expectError(carol.groups.setDisplayName(chat.guid, "not mine"), Errors.chatNotFound);
    await expectError(me.chats.create([alice.address, "bad"]), Errors.invalidArgument);

    assert.deepEqual(await heads(), before);
  });

  test("catchUp(after) returns exactly the events after the cursor, then complete(head)", async () => {
    const { events: all, head } = await me.log();
    assert.ok(all.length >= 4, "earlier tests produced events");

    const cursor = all[1].sequence;
    const tail = await catchUp(me.client, cursor);
    assert.equal(tail.head, head);
    assert.deepEqual(tail.events, all.slice(2));

    assert.deepEqual(await catchUp(me.client, 0), { events: all, head }, "after=0 is from the start");
    assert.deepEqual(await catchUp(me.client, head), { events: [], head }, "after=head is empty");
  });

  test("every log is 1, 2, 3, … with no gaps, and every event is well formed", async () => {
    for (const person of [me, alice, bob, carol]) {
      const { events, head } = await person.log();
      assertConsecutive(events, 0);
      assert.equal(head, events.length, `${person.address}: head equals the last sequence`);
      for (const event of events) {
        assert.equal(event.type, "group.changed");
        assert.match(event.chatGuid, GROUP_GUID);
        assert.ok(event.actor, "every change here has a nameable actor");
        assert.equal(event.isFromMe, event.actor.address === person.address, "isFromMe iff the actor is this account");
        assertGroupEvent(event, { chatGuid: event.chatGuid, isFromMe: event.isFromMe, change: {} });
      }
    }
  });
});
