// docs/behaviour.md §7 (catch-up decision) and `serve --retain-events N`: keep only the newest N events
// per account; a catch-up that would have to skip pruned events fails with preconditionFailed
// (reason=cursorTooOld, oldest=<oldest retained sequence>), never a silent gap.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, catchUp, uniqueEmail } from "../lib/harness.mjs";
import { Errors, assertConsecutive, assertGroupEvents, expectError } from "../lib/expect.mjs";

const KEEP = 5;

/** Expect catchUp(after) to fail with cursorTooOld naming `oldest`. */
function expectTooOld(client, after, oldest) {
  return expectError(() => catchUp(client, after), Errors.preconditionFailed, {
    reason: "cursorTooOld",
    oldest: String(oldest),
  });
}

describe(`--retain-events ${KEEP}`, () => {
  /** @type {Server} */ let server;
  let me, alice, bob;
  let guid;
  const names = [];

  before(async () => {
    server = await Server.start({ serveArgs: ["--retain-events", String(KEEP)] });
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("bob@example.com");

    // me: 1 participantAdded (alice made the group) + 11 renames = 12 events.
    // alice (the creator, no event for creating): 11 renames, all isFromMe.
    guid = (await alice.chats.create([me.address, uniqueEmail()])).chat.guid;
    for (let i = 1; i <= 11; i += 1) {
      names.push(`rename ${i}`);
      await alice.groups.setDisplayName(guid, names.at(-1));
    }
    // bob: fewer events than KEEP, nothing pruned.
    const other = (await bob.chats.create([me.address, uniqueEmail()])).chat.guid;
    await bob.groups.setDisplayName(other, "bob's");
    await bob.groups.setDisplayName(other, "bob's again");
  });
  after(() => server?.cleanup());

  // me's log: 1 added(alice's group), 2..12 renames, 13 added(bob's group), 14 rename, 15 rename.
  const ME_HEAD = 15;
  const ME_OLDEST = ME_HEAD - KEEP + 1; // 11

  test("catchUp(0) and catchUp() fail with preconditionFailed reason=cursorTooOld and the oldest kept sequence", async () => {
    const err = await expectTooOld(me.client, 0, ME_OLDEST);
    assert.equal(err.grpcCode, 9, "FAILED_PRECONDITION");
    assert.equal(err.retryable, false);
    await expectTooOld(me.client, undefined, ME_OLDEST);
  });

  test("every cursor below oldest-1 fails the same way", async () => {
    for (let after = 1; after < ME_OLDEST - 1; after += 1) {
      await expectTooOld(me.client, after, ME_OLDEST);
    }
  });

  test("catchUp(oldest-1) returns exactly the retained events, then complete(head)", async () => {
    const { events, head } = await catchUp(me.client, ME_OLDEST - 1);
    assert.equal(head, ME_HEAD);
    assertConsecutive(events, ME_OLDEST - 1);
    assert.equal(events.length, KEEP);
    assertGroupEvents(events.slice(0, 2), [
      { chatGuid: guid, isFromMe: false, actor: alice.address, change: { type: "displayNameChanged", displayName: "rename 10" } },
      { chatGuid: guid, isFromMe: false, actor: alice.address, change: { type: "displayNameChanged", displayName: "rename 11" } },
    ]);
    assert.equal(events[2].change.type, "participantAdded");
    assert.equal(events[2].change.participant.address, me.address);
    assert.equal(events[2].actor.address, bob.address);
    assert.deepEqual(
      events.slice(3).map((e) => e.change.displayName),
      ["bob's", "bob's again"],
    );
  });

  test("later cursors return the matching tail; after=head is empty", async () => {
    const { events: retained } = await catchUp(me.client, ME_OLDEST - 1);
    for (let after = ME_OLDEST; after <= ME_HEAD; after += 1) {
      assert.deepEqual(
        await catchUp(me.client, after),
        { events: retained.slice(after - (ME_OLDEST - 1)), head: ME_HEAD },
        `catchUp(${after})`,
      );
    }
  });

  test("retention is per account: each log keeps its own newest N", async () => {
    // alice: 11 renames (sequences 1..11) -> keeps 7..11.
    await expectTooOld(alice.client, 0, 7);
    await expectTooOld(alice.client, 5, 7);
    const { events, head } = await catchUp(alice.client, 6);
    assert.equal(head, 11);
    assertConsecutive(events, 6);
    assert.deepEqual(
      events.map((e) => [e.isFromMe, e.change.displayName]),
      names.slice(6, 11).map((name) => [true, name]),
    );
    // bob: made his group (no event for the creator) and renamed it twice: 2 events ≤ N, all kept.
    const bobLog = await catchUp(bob.client, 0);
    assertConsecutive(bobLog.events, 0);
    assert.equal(bobLog.head, bobLog.events.length);
    assert.equal(bobLog.head, 2, "bob's 2 events, nothing pruned");
  });

  test("retention survives a restart and moves on with new writes", async () => {
    await server.restart();
    await expectTooOld(me.client, ME_OLDEST - 2, ME_OLDEST);
    assert.equal((await catchUp(me.client, ME_OLDEST - 1)).events.length, KEEP);

    await alice.groups.setDisplayName(guid, "after restart");
    const oldest = ME_OLDEST + 1;
    await expectTooOld(me.client, ME_OLDEST - 1, oldest);
    const { events, head } = await catchUp(me.client, oldest - 1);
    assert.equal(head, ME_HEAD + 1);
    assertConsecutive(events, oldest - 1);
    assert.equal(events.at(-1).change.displayName, "after restart");
  });

  test("under concurrent writes a catch-up from the oldest cursor never has a gap", async () => {
    // Pruning moves on while catch-ups run: each one either fails with cursorTooOld or sends
    // after+1..head with no gap. Bounded by a number of attempts, not by time.
    const group = (await alice.chats.create([me.address, bob.address, uniqueEmail()])).chat.guid;
    let writing = true;
    let writes = 0;
    const writer = (async () => {
      while (writing) {
        writes += 1;
        await alice.groups.setDisplayName(group, `race ${writes}`);
      }
    })();
    const outcomes = { ok: 0, tooOld: 0 };
    try {
      for (let i = 0; i < 60; i += 1) {
        let oldest;
        try {
          await catchUp(me.client, 0);
          assert.fail("catchUp(0) must fail once events were pruned");
        } catch (err) {
          if (err.code !== "preconditionFailed") throw err;
          oldest = Number(err.context?.oldest);
        }
        assert.ok(Number.isSafeInteger(oldest) && oldest > 1, `oldest is a sequence: ${oldest}`);
        try {
          const { events, head } = await catchUp(me.client, oldest - 1);
          assert.deepEqual(
            events.map((e) => e.sequence),
            Array.from({ length: head - oldest + 1 }, (_, k) => oldest + k),
            `catchUp(${oldest - 1}) accepted the cursor and ended with complete(${head}), so it must send ` +
              `${oldest}..${head} with no gap (a pruned event must give cursorTooOld instead)`,
          );
          outcomes.ok += 1;
        } catch (err) {
          if (err.code !== "preconditionFailed" || err.context?.reason !== "cursorTooOld") throw err;
          assert.ok(Number(err.context.oldest) > oldest, "the oldest kept sequence only moves forward");
          outcomes.tooOld += 1;
        }
      }
    } finally {
      writing = false;
      await writer;
    }
    assert.ok(writes > 1, "writes happened during the catch-ups");
    assert.ok(outcomes.ok > 0, `some catch-ups from the oldest cursor succeed: ${JSON.stringify(outcomes)}`);
  });
});

describe("without --retain-events", () => {
  /** @type {Server} */ let server;
  after(() => server?.cleanup());

  test("every event is kept: catchUp(0) returns them all", async () => {
    server = await Server.start();
    const me = server.me();
    const alice = await server.person("alice@example.com");
    const { chat } = await alice.chats.create([me.address, uniqueEmail()]);
    for (let i = 1; i <= 11; i += 1) await alice.groups.setDisplayName(chat.guid, `rename ${i}`);

    const { events, head } = await catchUp(me.client, 0);
    assert.equal(head, 12);
    assertConsecutive(events, 0);
    assert.equal(events[0].change.type, "participantAdded");
    assert.deepEqual(
      events.slice(1).map((e) => e.change.displayName),
      Array.from({ length: 11 }, (_, i) => `rename ${i + 1}`),
    );
    assert.deepEqual(await catchUp(me.client), { events, head }, "no cursor = from the start");
    assert.equal((await catchUp(alice.client, 0)).head, 11);
  });
});
