// docs/behaviour.md §3 (auth rows) and §8: bearer tokens, devices, revocation, CLI.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, catchUp } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";

describe("auth", () => {
  /** @type {Server} */ let server;
  let me;

  before(async () => {
    server = await Server.start();
    me = server.me();
  });
  after(() => server?.cleanup());

  test("serve prints the default account and a token on first start", () => {
    assert.equal(server.account, "me@imgroups.local");
    assert.match(server.token, /^\S{16,}$/, "a token long enough to carry 128 random bits");
  });

  test("the printed token works", async () => {
    assert.equal(typeof (await me.chats.count()), "number");
  });

  test("no token -> AuthenticationError unauthenticated", async () => {
    const anonymous = server.client("");
    await expectError(anonymous.chats.count(), Errors.unauthenticated);
    await expectError(anonymous.groups.getIcon("any;+;chat000000000000000001"), Errors.unauthenticated);
  });

  test("unknown token -> AuthenticationError unauthenticated", async () => {
    const stranger = server.client("not-a-real-token-0123456789abcdef");
    await expectError(stranger.chats.count(), Errors.unauthenticated);
    await expectError(
      stranger.chats.create(["alice@example.com", "bob@example.com"]),
      Errors.unauthenticated,
    );
  });

  test("auth also guards streams: catchUp with an unknown token fails", async () => {
    const stranger = server.client("not-a-real-token-0123456789abcdef");
    await expectError(catchUp(stranger), Errors.unauthenticated);
  });

  test("account add prints a working token for the new account", async () => {
    const token = await server.addAccount("auth-alice@example.com");
    const alice = server.client(token);
    assert.equal(await alice.chats.count(), 0, "a new account sees no chats");
  });

  test("a second device token acts as the same account", async () => {
    const token = await server.createToken(me.address);
    assert.notEqual(token, server.token);
    const device2 = server.client(token);
    const { chat } = await device2.chats.create(["dev-a@example.com", "dev-b@example.com"]);
    // The chat made from device 2 is my chat: visible with the first token.
    assert.equal((await me.chats.get(chat.guid)).guid, chat.guid);
  });

  test("revoked token -> AuthenticationError tokenBlocked; other tokens keep working", async () => {
    const token = await server.createToken(me.address);
    const device = server.client(token);
    await device.chats.count();

    await server.revokeToken(token);

    await expectError(device.chats.count(), Errors.tokenBlocked);
    await expectError(catchUp(device), Errors.tokenBlocked);
    assert.equal(typeof (await me.chats.count()), "number", "the original token is unaffected");
  });

  test("token list never prints a secret", async () => {
    const token = await server.createToken(me.address);
    const listing = await server.listTokens();
    assert.ok(listing.length > 0, "token list prints something");
    for (const secret of [token, server.token]) {
      assert.ok(!listing.includes(secret), "token list must not contain a token secret");
    }
  });

  test("tokens are never logged", () => {
    assert.ok(!server.stderr.includes(server.token), "server stderr must not contain the token");
  });
});
