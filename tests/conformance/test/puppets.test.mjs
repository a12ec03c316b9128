// Puppets: people in the simulated network who are not accounts act too
// (`imgroups sim act ADDRESS rename|add|remove|leave|icon-set|icon-rm CHAT [ARGS]`), on a
// running server. Their changes reach every account in the group — live streams and the log —
// with the puppet as actor and isFromMe false, in contiguous sequences, exactly as a change by
// an account would. They obey the same rules: a non-member cannot act (chatNotFound), and so on.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { Server, subscribeLive, uniqueEmail } from "../lib/harness.mjs";
import { assertConsecutive, assertGroupEvent, assertGroupEvents } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

/** A puppet's change must reach a live subscriber this fast: no polling interval in between. */
const LIVE_WITHIN_MS = 1_000;

describe("puppets (sim act)", () => {
  /** @type {Server} */ let server;
  let me, alice;
  const zoe = "zoe@example.net";
  const open = [];

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(async () => {
    await Promise.allSettled(open.map((s) => s.close()));
    await server?.cleanup();
  });

  async function subscribe(person) {
    const stream = await subscribeLive(server, person);
    open.push(stream);
    return stream;
  }

  /** A group of me, alice, zoe (a puppet) and two more people. */
  async function groupWithZoe() {
    const { chat } = await me.chats.create([alice.address, zoe, uniqueEmail(), uniqueEmail()]);
    return chat.guid;
  }

  test("a puppet's rename reaches every account live, within a second, with the puppet as actor", async () => {
    const guid = await groupWithZoe();
    const [myHead, aliceHead] = [await me.head(), await alice.head()];
    const mine = await subscribe(me);
    const alices = await subscribe(alice);

    await server.act(zoe, "rename", guid, "Zoe was here");
    // The CLI has exited: the change is durable. It must be on the live streams promptly.
    const expected = {
      chatGuid: guid,
      isFromMe: false,
      actor: zoe,
      change: { type: "displayNameChanged", displayName: "Zoe was here" },
    };
    const [event] = await mine.count(1, LIVE_WITHIN_MS);
    assertGroupEvent(event, expected);
    assert.equal(event.sequence, myHead + 1);
    const [aliceEvent] = await alices.count(1, LIVE_WITHIN_MS);
    assertGroupEvent(aliceEvent, expected);
    assert.equal(aliceEvent.sequence, aliceHead + 1);

    assert.deepEqual(await me.eventsAfter(myHead), [event], "the live copy is the log's");
    const chat = await alice.chats.get(guid);
    assert.equal(chat.displayName, "Zoe was here");
    await mine.close();
    await alices.close();
  });

  test("add, remove, icon set and removed, leave: each seen by me and alice, in order, contiguous", async () => {
    const guid = await groupWithZoe();
    const [myHead, aliceHead] = [await me.head(), await alice.head()];
    const mine = await subscribe(me);
    const alices = await subscribe(alice);
    const carol = uniqueEmail("carol");
    const dave = uniqueEmail("dave");
    const icon = join(server.dataDir, "zoe-icon.png");
    await writeFile(icon, png(41));

    await server.act(zoe, "add", guid, carol, dave);
    await server.act(zoe, "remove", guid, dave);
    await server.act(zoe, "icon-set", guid, icon);
    await server.act(zoe, "icon-rm", guid);
    await server.act(zoe, "leave", guid);

    const by = (change) => ({ chatGuid: guid, isFromMe: false, actor: zoe, change });
    const expected = [
      by({ type: "participantAdded", participant: carol }),
      by({ type: "participantAdded", participant: dave }),
      by({ type: "participantRemoved", participant: dave }),
      by({ type: "iconChanged" }),
      by({ type: "iconRemoved" }),
      by({ type: "participantLeft", participant: zoe }),
    ];
    for (const [stream, head, person] of [
      [mine, myHead, me],
      [alices, aliceHead, alice],
    ]) {
      const events = await stream.count(expected.length, 5_000);
      await new Promise((r) => setTimeout(r, 200)); // a duplicate would show up by now
      assert.equal(stream.events.length, expected.length, `no duplicates for ${person.address}`);
      assertGroupEvents(events, expected);
      assertConsecutive(events, head);
      assert.deepEqual(await person.eventsAfter(head), events, "the live copies are the log's");
    }

    const chat = await me.chats.get(guid);
    const others = chat.participants.map((p) => p.address);
    assert.ok(others.includes(carol), "carol was added");
    assert.ok(!others.includes(dave), "dave was removed");
    assert.ok(!others.includes(zoe), "zoe left");
    await mine.close();
    await alices.close();
  });

  test("a puppet that is not a member gets chatNotFound, and nothing is appended", async () => {
    const guid = await groupWithZoe();
    const stranger = uniqueEmail("stranger");
    const head = await me.head();

    const failed = await server.cliFailure("sim", "act", stranger, "rename", guid, "Nope");
    assert.equal(failed.code, 1, "exit code 1: the operation failed");
    assert.match(failed.stderr, /^error: .*\(chatNotFound\)\n$/, "one line ending with the error code");
    assert.equal(failed.stdout, "");
    assert.equal(await me.head(), head, "no event");
    assert.ok(!(await me.chats.get(guid)).displayName, "no rename");
  });

  test("puppets obey the group rules: no removing themselves, no shrinking the group too far", async () => {
    // me, alice and zoe: two others from zoe's point of view, too few to remove or leave.
    const { chat } = await me.chats.create([alice.address, zoe]);
    const head = await me.head();

    const self = await server.cliFailure("sim", "act", zoe, "remove", chat.guid, zoe);
    assert.match(self.stderr, /\(preconditionFailed\)\n$/, self.stderr);
    const small = await server.cliFailure("sim", "act", zoe, "remove", chat.guid, alice.address);
    assert.match(small.stderr, /\(preconditionFailed\)\n$/, small.stderr);
    const leave = await server.cliFailure("sim", "act", zoe, "leave", chat.guid);
    assert.match(leave.stderr, /\(preconditionFailed\)\n$/, leave.stderr);
    const member = await server.cliFailure("sim", "act", zoe, "add", chat.guid, alice.address);
    assert.match(member.stderr, /\(preconditionFailed\)\n$/, member.stderr);
    const invalid = await server.cliFailure("sim", "act", zoe, "rename", chat.guid, "   ");
    assert.match(invalid.stderr, /\(invalidArgument\)\n$/, invalid.stderr);
    assert.equal(await me.head(), head, "no rejected change appended anything");
  });

  test("a puppet's change survives a restart of the server, exactly once", async () => {
    const guid = await groupWithZoe();
    const head = await me.head();
    await server.act(zoe, "rename", guid, "Before restart");
    await server.restart();
    const events = await me.eventsAfter(head);
    assert.equal(events.length, 1);
    assertGroupEvent(events[0], {
      chatGuid: guid,
      isFromMe: false,
      actor: zoe,
      change: { type: "displayNameChanged", displayName: "Before restart" },
    });
    // Writes after the restart continue the same sequence.
    await alice.groups.setDisplayName(guid, "After restart");
    const more = await me.eventsAfter(head);
    assertConsecutive(more, head);
    assert.equal(more.length, 2);
  });
});
