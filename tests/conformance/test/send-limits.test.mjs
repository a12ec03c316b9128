// `serve --limits FILE` (docs/simulator.md, "Send limits"): each limit a real line meets is
// refused with the SDK's own code as a RateLimitError (retryable, `context.retryafter`; over
// HTTP also `retryAfter`, from the `Retry-After` header), and the same send succeeds once the
// controllable clock (`serve --seed`) has been moved by the hint with `sim clock advance` —
// no sleeping.

import assert from "node:assert/strict";
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { RateLimitError } from "@photon-ai/advanced-imessage/grpc";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { describeError } from "../lib/expect.mjs";

const RESOURCE_EXHAUSTED = 8;

/** Small numbers, so that each limit is reached in a few sends. */
const LIMITS = `
messages_per_day = 4
burst_messages = 2
burst_window_secs = 10
recipients_per_day = 2
new_contacts_per_day = 1
duplicate_messages = 2
duplicate_window_secs = 3600
`;

/** A server of its own with `limits` (TOML) and a controllable clock; `stop()` removes all. */
async function limitedServer(limits, seed) {
  const dir = await mkdtemp(join(tmpdir(), "imgroups-limits-"));
  const file = join(dir, "limits.toml");
  await writeFile(file, limits);
  const server = await Server.start({ serveArgs: ["--seed", String(seed), "--limits", file] });
  const stop = async () => {
    await server.cleanup();
    await rm(dir, { recursive: true, force: true });
  };
  return { server, stop };
}

/** Asserts `promise` rejects as a send limit `code` and returns its retry hint, in s. */
async function refused(promise, code) {
  let caught;
  await assert.rejects(promise, (err) => {
    caught = err;
    return true;
  });
  const shown = describeError(caught);
  assert.ok(caught instanceof RateLimitError, `expected RateLimitError, got ${shown}`);
  assert.equal(caught.code, code, shown);
  assert.equal(caught.grpcCode, RESOURCE_EXHAUSTED, shown);
  assert.equal(caught.retryable, true, shown);
  const secs = Number(caught.context?.retryafter);
  assert.ok(Number.isInteger(secs) && secs > 0, `a retry hint; got ${shown}`);
  return { secs, err: caught };
}

describe("send limits (serve --limits) through the official SDK", () => {
  /** @type {Server} */ let server;
  let stop;

  before(async () => {
    ({ server, stop } = await limitedServer(LIMITS, 1));
  });
  after(async () => {
    await stop?.();
  });

  const advance = (secs) => server.cli("sim", "clock", "advance", `${secs}s`);

  /** A fresh account (its own line) and a direct chat of it with a new person. */
  async function line() {
    const person = await server.person(uniqueEmail("line"));
    const { chat } = await person.chats.create([uniqueEmail("friend")]);
    return { person, chat: chat.guid };
  }


  test("burstRateExceeded: the third message in 10 s waits 10 s", async () => {
    const { person, chat } = await line();
    await person.client.messages.sendText(chat, "one");
    await person.client.messages.sendText(chat, "two");
    const { secs } = await refused(person.client.messages.sendText(chat, "three"), "burstRateExceeded");
    assert.equal(secs, 10);
    // The SDK's HTTP transport reads the same hint from Retry-After, in milliseconds.
    const http = server.httpClient(person.token);
    const { err } = await refused(http.messages.sendText(chat, "three"), "burstRateExceeded");
    assert.equal(err.retryAfter, 10_000);
    await advance(secs);
    const sent = await person.client.messages.sendText(chat, "three");
    assert.equal(sent.content?.text ?? sent.text, "three");
  });

  test("dailyLimitExceeded: the fifth message in 24 h waits for the first to age out", async () => {
    const { person, chat } = await line();
    for (const text of ["a", "b"]) await person.client.messages.sendText(chat, text);
    await advance(10);
    for (const text of ["c", "d"]) await person.client.messages.sendText(chat, text);
    const { secs } = await refused(person.client.messages.sendText(chat, "e"), "dailyLimitExceeded");
    assert.equal(secs, 86_400 - 10);
    await advance(secs);
    await person.client.messages.sendText(chat, "e");
  });

  test("contentDuplicateExceeded: the same text a third time in an hour", async () => {
    const { person, chat } = await line();
    await person.client.messages.sendText(chat, "promo");
    await advance(10);
    await person.client.messages.sendText(chat, "promo");
    await advance(10);
    const { secs } = await refused(person.client.messages.sendText(chat, "promo"), "contentDuplicateExceeded");
    assert.equal(secs, 3580);
    await advance(secs);
    await person.client.messages.sendText(chat, "promo");
  });

  test("newContactThrottled: a second new person in a day, named in the context", async () => {
    const { person, chat } = await line();
    const stranger = uniqueEmail("stranger");
    const { chat: other } = await person.chats.create([stranger]);
    await person.client.messages.sendText(chat, "hello");
    await advance(60);
    const { secs, err } = await refused(
      person.client.messages.sendText(other.guid, "hello stranger"),
      "newContactThrottled",
    );
    assert.equal(secs, 86_400 - 60);
    assert.equal(err.context.address, stranger);
    await advance(secs);
    await person.client.messages.sendText(other.guid, "hello stranger");
  });

  test("recipientLimitExceeded: a third different person in a day, old contacts included", async () => {
    const person = await server.person(uniqueEmail("line"));
    const [x, y, z] = [uniqueEmail("x"), uniqueEmail("y"), uniqueEmail("z")];
    const chats = [];
    for (const who of [x, y, z]) chats.push((await person.chats.create([who])).chat.guid);
    // One new person a day (new_contacts_per_day = 1): x on day one, y on day two.
    await person.client.messages.sendText(chats[0], "day one");
    await advance(86_400);
    await person.client.messages.sendText(chats[1], "day two");
    await advance(86_400);
    await person.client.messages.sendText(chats[0], "day three, x");
    await advance(10);
    await person.client.messages.sendText(chats[1], "day three, y");
    await advance(10);
    const { secs } = await refused(
      person.client.messages.sendText(chats[2], "day three, z"),
      "recipientLimitExceeded",
    );
    assert.equal(secs, 86_400 - 20);
    await advance(secs);
    await person.client.messages.sendText(chats[2], "day three, z");
  });
});

// A server of its own: with the numbers above, the daily limit would answer before a person
// cools down.
describe("send limits: recipientCoolingDown through the official SDK", () => {
  /** @type {Server} */ let server;
  let stop;

  before(async () => {
    ({ server, stop } = await limitedServer("messages_per_recipient = 2\ncooling_window_secs = 600\n", 2));
  });
  after(async () => {
    await stop?.();
  });

  test("a third message to one person in 10 min waits; others are still reachable", async () => {
    const person = await server.person(uniqueEmail("line"));
    const [friend, other] = [uniqueEmail("friend"), uniqueEmail("other")];
    const { chat } = await person.chats.create([friend]);
    const { chat: group } = await person.chats.create([friend, other]);
    await person.client.messages.sendText(chat.guid, "one");
    await server.cli("sim", "clock", "advance", "60s");
    // A group's message reaches each member: the friend's second.
    await person.client.messages.sendText(group.guid, "two, to everyone");
    const { secs, err } = await refused(person.client.messages.sendText(chat.guid, "three"), "recipientCoolingDown");
    assert.equal(err.context?.address, friend, describeError(err));
    assert.equal(secs, 600 - 60);
    // Someone else is not cooling down.
    const { chat: apart } = await person.chats.create([other]);
    await person.client.messages.sendText(apart.guid, "hello other");
    await server.cli("sim", "clock", "advance", "540s");
    await person.client.messages.sendText(chat.guid, "three");
  });
});

// The send/receive ratio needs answers from someone: a puppet (`sim act … say`) gives them.
describe("send limits: sendReceiveRatioExceeded through the official SDK", () => {
  /** @type {Server} */ let server;
  let stop;

  before(async () => {
    ({ server, stop } = await limitedServer("sends_per_receive = 2\nratio_after_messages = 2\n", 3));
  });
  after(async () => {
    await stop?.();
  });

  const refusedForRatio = async (promise) => (await refused(promise, "sendReceiveRatioExceeded")).secs;

  test("a line nobody answers waits for its sends to age out; answers let it talk again", async () => {
    const person = await server.person(uniqueEmail("line"));
    const zoe = uniqueEmail("zoe");
    const { chat } = await person.chats.create([zoe, uniqueEmail("amy")]);
    await person.client.messages.sendText(chat.guid, "one");
    await server.cli("sim", "clock", "advance", "10s");
    await person.client.messages.sendText(chat.guid, "two");
    const secs = await refusedForRatio(person.client.messages.sendText(chat.guid, "three"));
    assert.equal(secs, 86_400 - 10);
    await server.cli("sim", "clock", "advance", `${secs}s`);
    await person.client.messages.sendText(chat.guid, "three");

    // Two sent in the day again ("two", "three"), none received: refused; one answer is not
    // enough for a third (3 > 2 × 1), a second is.
    await refusedForRatio(person.client.messages.sendText(chat.guid, "four"));
    await server.cli("sim", "act", zoe, "say", chat.guid, "hi!");
    await refusedForRatio(person.client.messages.sendText(chat.guid, "four"));
    await server.cli("sim", "act", zoe, "say", chat.guid, "are you there?");
    await person.client.messages.sendText(chat.guid, "four");
  });
});
