// docs/behaviour.md §3 (revocation): revoking a token also ends the streams opened with it.
// A live subscription whose token is revoked fails with the SDK's AuthenticationError
// (tokenBlocked), within about a second on the server (the bound here is generous); a stream
// of another token goes on.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, subscribeLive, uniqueEmail } from "../lib/harness.mjs";
import { Errors, checkError } from "../lib/expect.mjs";

describe("revocation ends open streams", () => {
  /** @type {Server} */ let server;
  let me;
  const open = [];

  before(async () => {
    server = await Server.start();
    me = server.me();
  });
  after(async () => {
    await Promise.allSettled(open.map((s) => s.close()));
    await server?.cleanup();
  });

  test("a subscription's iterator rejects with tokenBlocked once its token is revoked", async () => {
    const token = await server.createToken(me.address);
    const device = { address: me.address, token };
    const revoked = await subscribeLive(server, device);
    const kept = await subscribeLive(server, me);
    open.push(revoked, kept);

    await server.revokeToken(token);

    const err = await revoked.failure(10_000);
    checkError(err, Errors.tokenBlocked);

    // The other token's stream still delivers.
    const { chat } = await me.chats.create([uniqueEmail(), uniqueEmail()]);
    await me.groups.setDisplayName(chat.guid, "After revocation");
    const events = await kept.until(
      (seen) => seen.some((e) => e.chatGuid === chat.guid),
      10_000,
      "the rename on the other stream",
    );
    assert.ok(events.length > 0);
  });
});
