// docs/behaviour.md §7: live groups.subscribeEvents streams (live-only, filtered).
//
// A subscription is live from the moment the server registers it, which the
// client cannot observe directly. The server runs with --heartbeat-secs 1, so
// the first heartbeat on a fresh stream proves it is registered; every test
// waits for it before making the change it expects to see.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, StreamCollector, uniqueEmail, waitFor } from "../lib/harness.mjs";
import { Errors, assertGroupEvent, assertGroupEvents, checkError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

const HEARTBEAT_WAIT_MS = 5_000;

describe("groups.subscribeEvents", () => {
  /** @type {Server} */ let server;
  let me, alice, bob;
  const open = [];

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("bob@example.com");
  });
  after(async () => {
    await Promise.allSettled(open.map((s) => s.close()));
    await server?.cleanup();
  });

  /**
   * Subscribe as `person` and resolve once the stream is live (first heartbeat).
   * @returns {Promise<StreamCollector & {heartbeats: () => number}>}
   */
  async function subscribe(person, filter) {
    let heartbeats = 0;
    let onFirst;
    const firstHeartbeat = new Promise((resolveFirst) => (onFirst = resolveFirst));
    const client = server.client(person.token, {
      onHeartbeat: () => {
        heartbeats += 1;
        onFirst("live");
      },
    });
    const stream = new StreamCollector(client.groups.subscribeEvents(filter));
    stream.heartbeats = () => heartbeats;
    open.push(stream);

    const outcome = await waitFor(Promise.race([firstHeartbeat, stream.done.then(() => "ended")]), HEARTBEAT_WAIT_MS);
    if (outcome === "ended") throw stream.error ?? new Error("stream ended before its first heartbeat");
    if (outcome !== "live") {
      throw new Error(`no heartbeat within ${HEARTBEAT_WAIT_MS} ms (server runs with --heartbeat-secs 1)`);
    }
    return stream;
  }

  async function newGroup() {
    const { chat } = await me.chats.create([alice.address, bob.address, uniqueEmail()]);
    return chat.guid;
  }

  test("an idle stream receives heartbeats", async () => {
    const stream = await subscribe(me);
    const seen = stream.heartbeats();
    await new Promise((r) => setTimeout(r, 2_200));
    assert.ok(stream.heartbeats() > seen, "another heartbeat within ~2 s");
    assert.deepEqual(stream.events, [], "heartbeats are not events");
    await stream.close();
  });

  test("a change by another account is delivered live, same as in the log", async () => {
    const guid = await newGroup();
    const head = await me.head();
    const stream = await subscribe(me);

    await alice.groups.setDisplayName(guid, "Live Name");

    const [event] = await stream.count(1);
    assertGroupEvent(event, {
      chatGuid: guid,
      isFromMe: false,
      actor: alice.address,
      change: { type: "displayNameChanged", displayName: "Live Name" },
    });
    assert.equal(event.sequence, head + 1);
    assert.deepEqual(await me.eventsAfter(head), [event], "identical to the catch-up copy");
    await stream.close();
  });

  test("my own writes are delivered too, with isFromMe", async () => {
    const guid = await newGroup();
    const stream = await subscribe(me);
    await me.groups.setIcon(guid, png(8));
    const [event] = await stream.count(1);
    assertGroupEvent(event, { chatGuid: guid, isFromMe: true, actor: me.address, change: { type: "iconChanged" } });
    await stream.close();
  });

  test("live-only: nothing committed before the subscription is replayed", async () => {
    const guid = await newGroup();
    await alice.groups.setDisplayName(guid, "Before");
    const head = await me.head();
    const stream = await subscribe(me);

    await alice.groups.setDisplayName(guid, "After");

    const events = await stream.count(1);
    assert.equal(events[0].sequence, head + 1, "the first event delivered is the first one after subscribing");
    assert.equal(events[0].change.displayName, "After");
    await stream.close();
  });

  test("several changes arrive in sequence order, each exactly once", async () => {
    const guid = await newGroup();
    const head = await me.head();
    const stream = await subscribe(me);
    const added = [uniqueEmail(), uniqueEmail(), uniqueEmail()];

    await alice.groups.addParticipants(guid, added);
    await bob.groups.setDisplayName(guid, "Busy");
    await me.groups.removeIcon(guid); // no icon: no event

    const events = await stream.count(4);
    await new Promise((r) => setTimeout(r, 300)); // give a duplicate the chance to show up
    assert.equal(stream.events.length, 4, "no duplicates, no event for the no-op");
    assert.deepEqual(
      events.map((e) => e.sequence),
      [head + 1, head + 2, head + 3, head + 4],
    );
    assert.deepEqual(stream.events, await me.eventsAfter(head));
    await stream.close();
  });

  test("filter by chat: only that group's events", async () => {
    const watched = await newGroup();
    const ignored = await newGroup();
    const stream = await subscribe(me, { chat: watched });

    await alice.groups.setDisplayName(ignored, "Ignored");
    await alice.groups.setDisplayName(watched, "Watched");
    await bob.groups.setDisplayName(ignored, "Ignored again");
    await bob.groups.setDisplayName(watched, "Watched again");

    const events = await stream.count(2);
    await new Promise((r) => setTimeout(r, 300));
    assertGroupEvents(stream.events, [
      { chatGuid: watched, isFromMe: false, actor: alice.address, change: { type: "displayNameChanged", displayName: "Watched" } },
      { chatGuid: watched, isFromMe: false, actor: bob.address, change: { type: "displayNameChanged", displayName: "Watched again" } },
    ]);
    assert.ok(events[1].sequence > events[0].sequence);
    await stream.close();
  });

  test("each account's stream carries its own sequences and isFromMe", async () => {
    const guid = await newGroup();
    const [mine, hers] = [await subscribe(me), await subscribe(alice)];
    const [myHead, aliceHead] = [await me.head(), await alice.head()];

    await alice.groups.setDisplayName(guid, "Per Account");

    const [[myEvent], [herEvent]] = [await mine.count(1), await hers.count(1)];
    assert.equal(myEvent.isFromMe, false);
    assert.equal(herEvent.isFromMe, true);
    assert.equal(myEvent.sequence, myHead + 1);
    assert.equal(herEvent.sequence, aliceHead + 1);
    await Promise.all([mine.close(), hers.close()]);
  });

  test("an unknown chat -> the stream fails with NotFoundError chatNotFound", async () => {
    const guid = "any;+;chat000000000000000042";
    const stream = new StreamCollector(me.client.groups.subscribeEvents({ chat: guid }));
    open.push(stream);
    checkError(await stream.failure(), Errors.chatNotFound, { chatguid: guid });
  });

  test("a chat I left -> chatNotFound", async () => {
    const guid = await newGroup();
    await me.groups.leave(guid);
    const stream = new StreamCollector(me.client.groups.subscribeEvents({ chat: guid }));
    open.push(stream);
    checkError(await stream.failure(), Errors.chatNotFound, { chatguid: guid });
  });

  test("no token -> the stream fails with AuthenticationError", async () => {
    const stream = new StreamCollector(server.client("").groups.subscribeEvents());
    open.push(stream);
    checkError(await stream.failure(), Errors.unauthenticated);
  });
});
