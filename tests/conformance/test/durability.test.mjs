// Durability: everything survives a graceful restart on the same data dir.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, assertGroupEvents, expectError } from "../lib/expect.mjs";
import { gif, png } from "../lib/images.mjs";

describe("durability across restarts", () => {
  /** @type {Server} */ let server;
  let me, alice, bob;
  let named, left, direct, revokedToken;

  /** Everything an account can observe about the chats made in before(). */
  async function snapshot(person) {
    const get = (guid) => person.chats.get(guid).catch((err) => ({ error: err.code }));
    const icon = (guid) => person.groups.getIcon(guid).catch((err) => ({ error: err.code }));
    return {
      count: await person.chats.count(),
      chats: [await get(named), await get(left), await get(direct)],
      icons: [await icon(named), await icon(left)],
      log: await person.log(),
    };
  }

  let before1;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");

    named = (await me.chats.create([alice.address, bob.address, uniqueEmail()])).chat.guid;
    await me.groups.setDisplayName(named, "Durable");
    await alice.groups.setIcon(named, png(5));
    await me.groups.addParticipants(named, [uniqueEmail()]);
    await bob.groups.removeParticipants(named, [alice.address]);

    left = (await alice.chats.create([me.address, bob.address, uniqueEmail()])).chat.guid;
    await alice.groups.setIcon(left, gif());
    await me.groups.leave(left);

    direct = (await me.chats.create(["+15552220000"], { message: "hello" })).chat.guid;

    revokedToken = await server.createToken(me.address);
    await server.revokeToken(revokedToken);

    before1 = { me: await snapshot(me), alice: await snapshot(alice), bob: await snapshot(bob) };
    await server.restart();
  });
  after(() => server?.cleanup());

  test("SIGTERM exits 0 and a restart prints no new token", () => {
    assert.equal(server.lastExitCode, 0, `exit code (signal ${server.lastExitSignal})`);
    assert.equal(server.printedTokens.length, 1, "token printed on first start only");
    assert.equal(server.account, "me@imgroups.local");
  });

  test("chats, names, membership, icons and event logs are unchanged", async () => {
    assert.deepEqual(await snapshot(me), before1.me);
    assert.deepEqual(await snapshot(alice), before1.alice);
    assert.deepEqual(await snapshot(bob), before1.bob);
  });

  test("the snapshot taken before the restart was the expected state", () => {
    const [namedChat, leftChat] = before1.me.chats;
    assert.equal(namedChat.displayName, "Durable");
    assert.equal(leftChat.error, "chatNotFound", "the left chat stays invisible");
    assert.equal(before1.me.icons[0].mimeType, "image/png");
    assert.equal(before1.alice.icons[1].mimeType, "image/gif");
    assert.ok(before1.me.log.head >= 5);
  });

  test("tokens survive: the printed one and added accounts work, revoked stays revoked", async () => {
    assert.equal(typeof (await me.chats.count()), "number");
    assert.equal(typeof (await alice.chats.count()), "number");
    await expectError(server.client(revokedToken).chats.count(), Errors.tokenBlocked);
  });

  test("sequences continue after the restart with no reuse", async () => {
    const head = await me.head();
    assert.equal(head, before1.me.log.head);
    await me.groups.setDisplayName(named, "After Restart");
    const events = await me.eventsAfter(head);
    assertGroupEvents(events, [
      {
        chatGuid: named,
        isFromMe: true,
        actor: me.address,
        change: { type: "displayNameChanged", displayName: "After Restart" },
      },
    ]);
    assert.equal(events[0].sequence, head + 1);
  });

  test("SIGINT also shuts down gracefully, and state survives again", async () => {
    const log = await me.log();
    await server.stop("SIGINT");
    assert.equal(server.lastExitCode, 0, `exit code (signal ${server.lastExitSignal})`);
    await server.restart();
    assert.deepEqual(await me.log(), log);
    assert.equal((await me.chats.get(named)).displayName, "After Restart");
  });
});
