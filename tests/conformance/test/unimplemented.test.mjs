// docs/behaviour.md §3 last row: RPCs this server does not serve (the UNIMPLEMENTED rows of
// docs/protocol.md §13) answer UNIMPLEMENTED with error-code operationNotSupported, which
// the SDK surfaces as a plain IMessageError (grpcCode 12). If one of these gets
// implemented, move it out of this list. coverage.test.mjs checks every SDK method.

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
    "messages.sendAttachment": (c) => c.messages.sendAttachment(guid, "00000000-0000-0000-0000-000000000000"),
    "messages.placeSticker": (c) =>
      c.messages.placeSticker(guid, "00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000001", {
        x: 0.5,
        y: 0.5,
      }),
    "polls.create": (c) => c.polls.create(guid, "Lunch?", ["yes", "no"]),
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
