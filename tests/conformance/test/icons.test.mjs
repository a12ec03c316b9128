// docs/behaviour.md §4 setIcon / getIcon / removeIcon.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, assertGroupEvents, expectError } from "../lib/expect.mjs";
import { INVALID_IMAGES, VALID_IMAGES, png, pngOfSize } from "../lib/images.mjs";

const MiB = 1024 * 1024;

describe("group icons", () => {
  /** @type {Server} */ let server;
  let me, alice;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(() => server?.cleanup());

  async function newGroup() {
    const { chat } = await me.chats.create([alice.address, uniqueEmail()]);
    return chat.guid;
  }

  function assertIcon(icon, bytes, mimeType) {
    assert.equal(icon.mimeType, mimeType);
    assert.ok(icon.data instanceof Uint8Array, "data is bytes");
    assert.ok(Buffer.from(icon.data).equals(bytes), `icon bytes round-trip exactly (${icon.data.length} vs ${bytes.length})`);
  }

  test("a new group has no icon -> NotFoundError groupIconNotFound", async () => {
    const guid = await newGroup();
    await expectError(me.groups.getIcon(guid), Errors.groupIconNotFound);
  });

  for (const { name, bytes, mimeType } of VALID_IMAGES) {
    test(`${name} round-trips exact bytes as ${mimeType}`, async () => {
      const guid = await newGroup();
      await me.groups.setIcon(guid, bytes);
      assertIcon(await me.groups.getIcon(guid), bytes, mimeType);
      assertIcon(await alice.groups.getIcon(guid), bytes, mimeType); // every member sees it
    });
  }

  test("setIcon logs one iconChanged for every member", async () => {
    const guid = await newGroup();
    const [myHead, aliceHead] = [await me.head(), await alice.head()];
    await me.groups.setIcon(guid, png(10));
    assertGroupEvents(await me.eventsAfter(myHead), [
      { chatGuid: guid, isFromMe: true, actor: me.address, change: { type: "iconChanged" } },
    ]);
    assertGroupEvents(await alice.eventsAfter(aliceHead), [
      { chatGuid: guid, isFromMe: false, actor: me.address, change: { type: "iconChanged" } },
    ]);
  });

  test("a different icon replaces the old one with a new event; identical bytes add no event", async () => {
    const guid = await newGroup();
    await me.groups.setIcon(guid, png(20));
    const head = await me.head();

    await me.groups.setIcon(guid, png(20)); // same bytes
    assert.deepEqual(await me.eventsAfter(head), [], "same bytes: no event");

    await alice.groups.setIcon(guid, png(21));
    assertIcon(await me.groups.getIcon(guid), png(21), "image/png");
    assertGroupEvents(await me.eventsAfter(head), [
      { chatGuid: guid, isFromMe: false, actor: alice.address, change: { type: "iconChanged" } },
    ]);
  });

  for (const { name, bytes } of INVALID_IMAGES) {
    test(`${name} -> invalidArgument reason=unsupportedImageType`, async () => {
      const guid = await newGroup();
      const head = await me.head();
      await expectError(me.groups.setIcon(guid, bytes), Errors.invalidArgument, { reason: "unsupportedImageType" });
      await expectError(me.groups.getIcon(guid), Errors.groupIconNotFound);
      assert.deepEqual(await me.eventsAfter(head), []);
    });
  }

  test("a rejected icon leaves the current icon in place", async () => {
    const guid = await newGroup();
    await me.groups.setIcon(guid, png(30));
    await expectError(me.groups.setIcon(guid, Buffer.from("nope")), Errors.invalidArgument);
    assertIcon(await me.groups.getIcon(guid), png(30), "image/png");
  });

  test("empty data -> invalidArgument field=data", async () => {
    const guid = await newGroup();
    await expectError(me.groups.setIcon(guid, new Uint8Array(0)), Errors.invalidArgument, { field: "data" });
  });

  test("exactly 10 MiB is accepted", async () => {
    const guid = await newGroup();
    const big = pngOfSize(10 * MiB);
    await me.groups.setIcon(guid, big);
    assertIcon(await me.groups.getIcon(guid), big, "image/png");
  });

  test("more than 10 MiB -> invalidArgument reason=tooLarge with the limit", async () => {
    const guid = await newGroup();
    const head = await me.head();
    await expectError(me.groups.setIcon(guid, pngOfSize(10 * MiB + 1)), Errors.invalidArgument, {
      reason: "tooLarge",
      limit: String(10 * MiB),
    });
    await expectError(me.groups.getIcon(guid), Errors.groupIconNotFound);
    assert.deepEqual(await me.eventsAfter(head), []);
  });

  test("removeIcon clears it with one iconRemoved; repeating succeeds with no event", async () => {
    const guid = await newGroup();
    await me.groups.setIcon(guid, png(40));
    const [myHead, aliceHead] = [await me.head(), await alice.head()];

    await me.groups.removeIcon(guid);
    await me.groups.removeIcon(guid);
    await alice.groups.removeIcon(guid);

    await expectError(me.groups.getIcon(guid), Errors.groupIconNotFound);
    assertGroupEvents(await me.eventsAfter(myHead), [
      { chatGuid: guid, isFromMe: true, actor: me.address, change: { type: "iconRemoved" } },
    ]);
    assertGroupEvents(await alice.eventsAfter(aliceHead), [
      { chatGuid: guid, isFromMe: false, actor: me.address, change: { type: "iconRemoved" } },
    ]);
  });

  test("removeIcon on a group that never had one succeeds with no event", async () => {
    const guid = await newGroup();
    const head = await me.head();
    await me.groups.removeIcon(guid);
    assert.deepEqual(await me.eventsAfter(head), []);
  });

  test("an icon can be set again after removal", async () => {
    const guid = await newGroup();
    await me.groups.setIcon(guid, png(50));
    await me.groups.removeIcon(guid);
    const head = await me.head();
    await me.groups.setIcon(guid, png(50));
    assertIcon(await me.groups.getIcon(guid), png(50), "image/png");
    assert.equal((await me.eventsAfter(head)).length, 1, "iconChanged again");
  });
});
