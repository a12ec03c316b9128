// docs/behaviour.md §3 last row: RPCs outside the groups surface answer UNIMPLEMENTED
// with error-code operationNotSupported, which the SDK surfaces as a plain
// IMessageError (grpcCode 12). If one of these gets implemented, move it out
// of this list.

import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";

describe("unimplemented RPCs", () => {
  /** @type {Server} */ let server;
  let me, guid;

  before(async () => {
    server = await Server.start();
    me = server.me();
    guid = (await me.chats.create([uniqueEmail(), uniqueEmail()])).chat.guid;
  });
  after(() => server?.cleanup());

  const calls = {
    "chats.setTyping": (c) => c.chats.setTyping(guid, true),
    "messages.sendText": (c) => c.messages.sendText(guid, "hello"),
    "messages.get": (c) => c.messages.get("00000000-0000-0000-0000-000000000000"),
    "polls.get": (c) => c.polls.get("00000000-0000-0000-0000-000000000000"),
    "locations.list": (c) => c.locations.list(),
    "attachments.get": (c) => c.attachments.get("00000000-0000-0000-0000-000000000000"),
  };

  for (const [name, call] of Object.entries(calls)) {
    test(`${name} -> IMessageError operationNotSupported (UNIMPLEMENTED)`, async () => {
      await expectError(call(me.client), Errors.unimplemented);
    });
  }

  test("the server keeps working afterwards", async () => {
    await me.chats.get(guid);
  });
});
