// docs/behaviour.md §3: errors every group method shares (unknown group, a group
// that is not mine, a direct-chat GUID), checked for each method.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

/** Every GroupService unary method, called with harmless valid arguments. */
const METHODS = {
  setDisplayName: (groups, guid) => groups.setDisplayName(guid, "A Name"),
  addParticipants: (groups, guid) => groups.addParticipants(guid, ["somebody-new@example.com"]),
  removeParticipants: (groups, guid) => groups.removeParticipants(guid, ["somebody@example.com"]),
  leave: (groups, guid) => groups.leave(guid),
  setIcon: (groups, guid) => groups.setIcon(guid, png()),
  getIcon: (groups, guid) => groups.getIcon(guid),
  removeIcon: (groups, guid) => groups.removeIcon(guid),
};

describe("errors shared by every group method", () => {
  /** @type {Server} */ let server;
  let me, alice;
  let othersGroup, directGuid;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    // A group I am not in, and a real direct chat of mine.
    othersGroup = (await alice.chats.create([uniqueEmail(), uniqueEmail(), uniqueEmail()])).chat.guid;
    directGuid = (await me.chats.create(["+15559990000"])).chat.guid;
  });
  after(() => server?.cleanup());

  for (const [name, call] of Object.entries(METHODS)) {
    describe(name, () => {
      test("unknown group -> NotFoundError chatNotFound (context chatguid)", async () => {
        const guid = "any;+;chat123456789012345678";
        await expectError(call(me.groups, guid), Errors.chatNotFound, { chatguid: guid });
      });

      test("a group I am not a member of -> chatNotFound", async () => {
        await expectError(call(me.groups, othersGroup), Errors.chatNotFound, { chatguid: othersGroup });
      });

      test("an existing direct chat -> operationNotSupported (FAILED_PRECONDITION)", async () => {
        await expectError(call(me.groups, directGuid), Errors.operationNotSupported, { chatguid: directGuid });
      });

      test("a never-created direct chat -> operationNotSupported", async () => {
        const guid = "any;-;newperson@example.com";
        await expectError(call(me.groups, guid), Errors.operationNotSupported, { chatguid: guid });
      });
    });
  }

  test("none of the rejected calls appended an event", async () => {
    // alice made one group (no event for the creator); nobody else acted on it.
    assert.deepEqual(await me.log(), { events: [], head: 0 });
    assert.deepEqual(await alice.log(), { events: [], head: 0 });
  });
});
