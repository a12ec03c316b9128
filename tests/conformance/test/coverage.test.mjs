// Every public method of the official SDK, called over gRPC and over HTTP: it is either
// implemented (answers, or fails with an error of its own kind, never UNIMPLEMENTED) or it
// answers UNIMPLEMENTED / operationNotSupported, exactly as the table of docs/protocol.md §13
// says. The method list comes from the SDK's own type declarations, so a method missing from
// the table (or from the calls below) fails the test.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";

import { REPO_ROOT, Server, catchUp, uniqueEmail, waitFor } from "../lib/harness.mjs";
import { Errors, Status, checkError, describeError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";
import { GrpcClients } from "../lib/messages.mjs";

const UNKNOWN = "00000000-0000-0000-0000-000000000000";

/** `resource.method` names declared in one of the SDK's .d.ts files (interfaces `*Resource`). */
async function declaredMethods(file) {
  const require = createRequire(import.meta.url);
  const dist = dirname(require.resolve("@photon-ai/advanced-imessage/grpc"));
  const text = await readFile(join(dist, file), "utf8");
  const names = [];
  for (const [, resource, body] of text.matchAll(/interface (\w+)Resource \{([\s\S]*?)\n\}/g)) {
    const ns = resource[0].toLowerCase() + resource.slice(1);
    for (const [, method] of body.matchAll(/^ {4}(\w+)(?:<[^>]*>)?\(/gm)) names.push(`${ns}.${method}`);
  }
  assert.ok(names.length > 20, `found the resources in ${file}`);
  return names.sort();
}

/** The table of docs/protocol.md §13: method -> "implemented" | "UNIMPLEMENTED". */
async function documented() {
  const doc = await readFile(join(REPO_ROOT, "docs/protocol.md"), "utf8");
  const start = doc.indexOf("## 13. Every SDK method");
  assert.ok(start >= 0, "docs/protocol.md has section 13");
  const table = new Map();
  for (const [, method, status] of doc.slice(start).matchAll(/^\| `([\w.]+)` \| `[\w/]+` \| (implemented|UNIMPLEMENTED)\b/gm)) {
    table.set(method, status);
  }
  return table;
}

/**
 * One call per SDK method. `ctx` holds a group, a direct chat, a message of mine and one of
 * alice's, made in before(). A call returns a promise or a stream.
 */
const CALLS = {
  "addresses.get": (c) => c.addresses.get("alice@example.com"),
  "addresses.isFocusSilenced": (c) => c.addresses.isFocusSilenced("alice@example.com"),
  "addresses.isIMessageAvailable": (c) => c.addresses.isIMessageAvailable("alice@example.com"),
  "attachments.downloadStream": (c) => c.attachments.downloadStream(UNKNOWN),
  "attachments.get": (c) => c.attachments.get(UNKNOWN),
  "attachments.upload": (c) => c.attachments.upload({ data: png(1), fileName: "a.png" }),
  "chats.count": (c) => c.chats.count(),
  "chats.create": (c) => c.chats.create([uniqueEmail(), uniqueEmail()]),
  "chats.get": (c, ctx) => c.chats.get(ctx.group),
  "chats.hasBackground": (c, ctx) => c.chats.hasBackground(ctx.group),
  "chats.markRead": (c, ctx) => c.chats.markRead(ctx.group),
  "chats.removeBackground": (c, ctx) => c.chats.removeBackground(ctx.group),
  "chats.setBackground": (c, ctx) => c.chats.setBackground(ctx.group, png(2)),
  "chats.setTyping": (c, ctx) => c.chats.setTyping(ctx.group, true),
  "chats.shareContactInfo": (c, ctx) => c.chats.shareContactInfo(ctx.direct),
  "chats.subscribeEvents": (c) => c.chats.subscribeEvents(),
  "events.catchUp": (c) => c.events.catchUp(0),
  "groups.addParticipants": (c, ctx) => c.groups.addParticipants(ctx.group, [uniqueEmail()]),
  "groups.getIcon": (c, ctx) => c.groups.getIcon(ctx.group),
  "groups.leave": async (c) => {
    const { chat } = await c.chats.create([uniqueEmail(), uniqueEmail(), uniqueEmail()]);
    return c.groups.leave(chat.guid);
  },
  "groups.removeIcon": (c, ctx) => c.groups.removeIcon(ctx.group),
  "groups.removeParticipants": async (c, ctx) => {
    const extra = uniqueEmail();
    await c.groups.addParticipants(ctx.group, [extra]);
    return c.groups.removeParticipants(ctx.group, [extra]);
  },
  "groups.setDisplayName": (c, ctx) => c.groups.setDisplayName(ctx.group, "Coverage"),
  "groups.setIcon": (c, ctx) => c.groups.setIcon(ctx.group, png(3)),
  "groups.subscribeEvents": (c) => c.groups.subscribeEvents(),
  "locations.get": (c) => c.locations.get("alice@example.com"),
  "locations.list": (c) => c.locations.list(),
  "locations.request": (c, ctx) => c.locations.request(ctx.group, "alice@example.com"),
  "locations.watch": (c) => c.locations.watch(),
  "messages.edit": async (c, ctx) => {
    const sent = await c.messages.sendText(ctx.group, "to edit");
    return c.messages.edit(ctx.group, sent.guid, "edited");
  },
  "messages.get": (c, ctx) => c.messages.get(ctx.mine.guid),
  "messages.getEmbeddedMedia": (c, ctx) => c.messages.getEmbeddedMedia(ctx.group, ctx.mine.guid),
  "messages.listInChat": (c, ctx) => c.messages.listInChat(ctx.group, { pageSize: 5 }),
  "messages.listRecent": (c) => c.messages.listRecent({ pageSize: 5 }),
  "messages.notifySilenced": (c, ctx) => c.messages.notifySilenced(ctx.group, ctx.mine.guid),
  "messages.placeSticker": (c, ctx) => c.messages.placeSticker(ctx.group, ctx.mine.guid, UNKNOWN, { x: 0.5, y: 0.5 }),
  "messages.sendAttachment": (c, ctx) => c.messages.sendAttachment(ctx.group, UNKNOWN),
  "messages.sendCustomizedMiniApp": (c, ctx) => c.messages.sendCustomizedMiniApp(ctx.group, MINI_APP),
  "messages.sendMultipart": (c, ctx) => c.messages.sendMultipart(ctx.group, [{ text: "one" }, { text: "two" }]),
  "messages.sendText": (c, ctx) => c.messages.sendText(ctx.group, "coverage"),
  "messages.setReaction": (c, ctx) => c.messages.setReaction(ctx.group, ctx.hers.guid, { kind: "like" }, true),
  "messages.subscribeEvents": (c) => c.messages.subscribeEvents(),
  "messages.unsend": async (c, ctx) => {
    const sent = await c.messages.sendText(ctx.group, "to unsend");
    return c.messages.unsend(ctx.group, sent.guid);
  },
  "messages.updateCustomizedMiniApp": (c, ctx) =>
    c.messages.updateCustomizedMiniApp(
      { chatGuid: ctx.group, messageGuid: ctx.mine.guid, sessionId: UNKNOWN, targetMessageGuid: ctx.mine.guid },
      MINI_APP,
    ),
  "polls.addOption": (c) => c.polls.addOption(UNKNOWN, "maybe"),
  "polls.create": (c, ctx) => c.polls.create(ctx.group, "Lunch?", ["yes", "no"]),
  "polls.get": (c) => c.polls.get(UNKNOWN),
  "polls.subscribeEvents": (c) => c.polls.subscribeEvents(),
  "polls.unvote": (c) => c.polls.unvote(UNKNOWN),
  "polls.vote": (c) => c.polls.vote(UNKNOWN, "1"),
};

const MINI_APP = {
  appName: "Coverage",
  extensionBundleId: "com.example.coverage.extension",
  layout: { caption: "hello" },
  teamId: "ABCDE12345",
  url: "https://example.com/card",
};

const isStream = (value) => value && typeof value[Symbol.asyncIterator] === "function" && typeof value.close === "function";

/**
 * Run one call. A promise settles; a stream is read until its first event, its end or its
 * failure, or until `heartbeat` resolves (the stream is live and idle).
 * @returns {Promise<{ok: true} | {error: unknown}>}
 */
async function run(call, client, ctx, heartbeat) {
  try {
    const value = call(client, ctx);
    if (!isStream(value)) {
      await value;
      return { ok: true };
    }
    const iterator = value[Symbol.asyncIterator]();
    try {
      const first = iterator.next().then(() => "frame");
      const outcome = await waitFor(Promise.race([first, heartbeat]), 10_000);
      if (!outcome) throw new Error("the stream neither answered nor failed within 10 s");
      return { ok: true };
    } finally {
      await value.close();
    }
  } catch (error) {
    return { error };
  }
}

describe("coverage: every SDK method is implemented or UNIMPLEMENTED as docs/protocol.md §13 says", () => {
  /** @type {Server} */ let server;
  /** @type {GrpcClients} */ let grpc;
  let me, alice, table, ctx;
  let heartbeatResolve;
  let heartbeat;

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    grpc = new GrpcClients(server);
    me = server.me();
    alice = await server.person("alice@example.com");
    table = await documented();
    const group = (await me.chats.create([alice.address, uniqueEmail(), uniqueEmail()])).chat.guid;
    const direct = (await me.chats.create([alice.address])).chat.guid;
    ctx = {
      group,
      direct,
      mine: await me.client.messages.sendText(group, "mine"),
      hers: await alice.client.messages.sendText(group, "hers"),
    };
  });
  after(async () => {
    await grpc?.closeAll();
    await server?.cleanup();
  });

  test("the table lists exactly the methods the SDK declares, and every one has a call here", async () => {
    const grpcMethods = await declaredMethods("grpc.d.ts");
    const httpMethods = await declaredMethods("http.d.ts");
    assert.deepEqual([...table.keys()].sort(), grpcMethods, "docs/protocol.md §13 rows = grpc.d.ts methods");
    assert.deepEqual(Object.keys(CALLS).sort(), grpcMethods, "CALLS = grpc.d.ts methods");
    for (const m of httpMethods) assert.ok(grpcMethods.includes(m), `${m} (HTTP) is in the gRPC client too`);
  });

  for (const transport of ["grpc", "http"]) {
    test(`over ${transport}: each method answers as the table says`, { timeout: 120_000 }, async () => {
      const methods = transport === "grpc" ? await declaredMethods("grpc.d.ts") : await declaredMethods("http.d.ts");
      const client =
        transport === "grpc"
          ? grpc.client(me, { onHeartbeat: () => heartbeatResolve?.("heartbeat") })
          : server.httpClient(me.token);
      const wrong = [];
      for (const method of methods) {
        heartbeat = new Promise((resolveBeat) => (heartbeatResolve = resolveBeat));
        const status = table.get(method);
        const result = await run(CALLS[method], client, ctx, heartbeat);
        if (status === "UNIMPLEMENTED") {
          try {
            assert.ok("error" in result, "expected UNIMPLEMENTED, got an answer");
            checkError(result.error, Errors.unimplemented);
          } catch (err) {
            wrong.push(`${method}: ${err.message}`);
          }
        } else if ("error" in result && result.error?.grpcCode === Status.UNIMPLEMENTED) {
          wrong.push(`${method}: documented as implemented, answered ${describeError(result.error)}`);
        } else if ("error" in result && !(result.error?.code && result.error.code !== "internalError")) {
          // An implemented method may refuse this particular call, but with an error of its own.
          wrong.push(`${method}: implemented but failed without an error code: ${describeError(result.error)}`);
        }
      }
      assert.equal(wrong.length, 0, `${wrong.length} method(s) not as documented:\n${wrong.join("\n")}`);
    });
  }

  test("implemented methods that take no special setup answer successfully (gRPC)", async () => {
    const client = grpc.client(me);
    for (const method of [
      "addresses.get",
      "addresses.isFocusSilenced",
      "addresses.isIMessageAvailable",
      "chats.markRead",
      "chats.setTyping",
      "messages.edit",
      "messages.get",
      "messages.listInChat",
      "messages.listRecent",
      "messages.notifySilenced",
      "messages.sendText",
      "messages.setReaction",
      "messages.unsend",
    ]) {
      const result = await run(CALLS[method], client, ctx, new Promise(() => {}));
      assert.ok(result.ok, `${method}: ${"error" in result ? describeError(result.error) : ""}`);
    }
    const { head } = await catchUp(client);
    assert.ok(head > 0);
  });
});
