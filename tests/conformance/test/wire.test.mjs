// Wire-level checks for inputs the SDK will not send: malformed and legacy
// GUIDs, untrimmed or blank names, empty address lists (docs/behaviour.md §2–§4).
// Raw gRPC via @grpc/grpc-js; assertions read status and trailers directly.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Status } from "../lib/expect.mjs";
import { Paths, RawClient, RawError, Requests, decodeChatResponse } from "../lib/raw.mjs";

/** Await a raw call that must fail; check status, error-code, x-retryable and context. */
async function expectRawError(promise, grpcCode, code, context = {}) {
  const err = await promise.then(
    (ok) => assert.fail(`expected ${code}, got a response of ${ok.length} bytes`),
    (e) => e,
  );
  assert.ok(err instanceof RawError, String(err));
  const shown = JSON.stringify({ grpcCode: err.grpcCode, code: err.code, context: err.context, details: err.details });
  assert.equal(err.grpcCode, grpcCode, shown);
  assert.equal(err.code, code, `error-code trailer; ${shown}`);
  assert.equal(err.retryable, false, shown);
  for (const [key, value] of Object.entries(context)) assert.equal(err.context[key], value, `context.${key}; ${shown}`);
  return err;
}

describe("wire-level input handling", () => {
  /** @type {Server} */ let server;
  /** @type {RawClient} */ let raw;
  let me, guid, others, call;

  before(async () => {
    server = await Server.start();
    me = server.me();
    others = [uniqueEmail(), uniqueEmail(), uniqueEmail()];
    guid = (await me.chats.create(others)).chat.guid;
    raw = new RawClient(server.address);
    call = (path, request) => raw.call(path, request, { token: me.token });
  });
  after(async () => {
    raw?.close();
    await server?.cleanup();
  });

  const malformed = ["", "nonsense", "any;+;", "any;+", "any;x;chat123", "any;;chat123"];
  for (const bad of malformed) {
    test(`malformed GUID ${JSON.stringify(bad)} -> INVALID_ARGUMENT invalidArgument field=chatGuid`, async () => {
      await expectRawError(call(Paths.getChat, Requests.chatOnly(bad)), Status.INVALID_ARGUMENT, "invalidArgument", {
        field: "chatGuid",
      });
      await expectRawError(
        call(Paths.setDisplayName, Requests.setDisplayName(bad, "Name")),
        Status.INVALID_ARGUMENT,
        "invalidArgument",
        { field: "chatGuid" },
      );
      await expectRawError(call(Paths.getIcon, Requests.chatOnly(bad)), Status.INVALID_ARGUMENT, "invalidArgument", {
        field: "chatGuid",
      });
    });
  }

  for (const prefix of ["iMessage", "SMS", "RCS"]) {
    test(`legacy prefix ${prefix};+; is accepted and answered as any;+;`, async () => {
      const legacy = guid.replace(/^any;/, `${prefix};`);
      assert.equal(decodeChatResponse(await call(Paths.getChat, Requests.chatOnly(legacy))).guid, guid);
      const renamed = decodeChatResponse(await call(Paths.setDisplayName, Requests.setDisplayName(legacy, `Via ${prefix}`)));
      assert.equal(renamed.guid, guid);
      assert.equal(renamed.displayName, `Via ${prefix}`);
    });
  }

  test("the server trims the display name", async () => {
    const chat = decodeChatResponse(await call(Paths.setDisplayName, Requests.setDisplayName(guid, "  \t Trimmed  \n")));
    assert.equal(chat.displayName, "Trimmed");
  });

  for (const blank of ["", "   ", "\t\n"]) {
    test(`display name ${JSON.stringify(blank)} -> invalidArgument field=displayName`, async () => {
      await expectRawError(
        call(Paths.setDisplayName, Requests.setDisplayName(guid, blank)),
        Status.INVALID_ARGUMENT,
        "invalidArgument",
        { field: "displayName" },
      );
    });
  }

  test("an empty address list -> invalidArgument (add and remove)", async () => {
    await expectRawError(call(Paths.addParticipants, Requests.addParticipants(guid, [])), Status.INVALID_ARGUMENT, "invalidArgument");
    await expectRawError(
      call(Paths.removeParticipants, Requests.removeParticipants(guid, [])),
      Status.INVALID_ARGUMENT,
      "invalidArgument",
    );
  });

  test("an empty address inside the list -> invalidArgument", async () => {
    await expectRawError(
      call(Paths.addParticipants, Requests.addParticipants(guid, [uniqueEmail(), ""])),
      Status.INVALID_ARGUMENT,
      "invalidArgument",
      { field: "addresses" },
    );
  });

  test("a missing authorization header -> UNAUTHENTICATED with error-code in the trailers", async () => {
    await expectRawError(raw.call(Paths.getChat, Requests.chatOnly(guid)), Status.UNAUTHENTICATED, "unauthenticated");
  });

  test("a non-Bearer authorization header -> UNAUTHENTICATED", async () => {
    await expectRawError(
      raw.call(Paths.getChat, Requests.chatOnly(guid), { headers: { authorization: me.token } }),
      Status.UNAUTHENTICATED,
      "unauthenticated",
    );
  });

  test("nothing above changed the group's membership or appended membership events", async () => {
    const chat = decodeChatResponse(await call(Paths.getChat, Requests.chatOnly(guid)));
    assert.deepEqual(chat.participants, others);
    const { events } = await me.log();
    assert.ok(
      events.every((e) => e.change.type === "displayNameChanged"),
      `only renames happened: ${JSON.stringify(events.map((e) => e.change))}`,
    );
  });
});
