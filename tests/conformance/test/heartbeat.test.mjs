// Heartbeats mean "this client got nothing for a while": traffic for other accounts or other
// chats must not suppress them (docs/behaviour.md §7).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { Server, StreamCollector, uniqueEmail } from "../lib/harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("heartbeats under other people's traffic", () => {
  let server, me, alice, bob, quiet, busy;

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("bob@example.com");
    quiet = (await alice.chats.create([me.address, uniqueEmail()])).chat.guid;
    busy = (await alice.chats.create([bob.address, uniqueEmail()])).chat.guid; // I am not in it
  });
  after(() => server?.cleanup());

  for (const [label, filter] of [
    ["filtered to a quiet chat", () => ({ chat: quiet })],
    ["unfiltered", () => undefined],
  ]) {
    test(`a ${label} stream keeps getting heartbeats while others write elsewhere`, async () => {
      let heartbeats = 0;
      const client = server.client(me.token, { onHeartbeat: () => (heartbeats += 1) });
      const stream = new StreamCollector(client.groups.subscribeEvents(filter()));
      try {
        let writing = true;
        let writes = 0;
        const writer = (async () => {
          while (writing) await alice.groups.setDisplayName(busy, `busy ${++writes}`);
        })();
        await sleep(3500);
        writing = false;
        await writer;
        assert.ok(writes > 10, `others kept writing (${writes} writes)`);
        assert.ok(heartbeats >= 2, `expected >= 2 heartbeats in 3.5 s, got ${heartbeats}`);
        assert.equal(stream.events.length, 0, "nothing of mine changed");
      } finally {
        await stream.close();
      }
    });
  }
});
