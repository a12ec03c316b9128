// Helpers for the message, chat-event and address tests: message GUIDs, the shape of a
// message in one account's view, message events read back from the log, live
// Subscribe* streams on any resource, and paging through a chat to its end.
//
// Streams always go over gRPC (the SDK has no event streams over HTTP), so these helpers
// build their own gRPC clients instead of using Person.client, which may be an HTTP client
// under IMGROUPS_TRANSPORT=http.

import assert from "node:assert/strict";

import { createGrpcClient } from "@photon-ai/advanced-imessage/grpc";

import { StreamCollector, waitFor } from "./harness.mjs";
import { assertRecent } from "./expect.mjs";

/** Message GUIDs: upper-case UUID v4, the same in every member's view. */
export const MESSAGE_GUID = /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/;

/** The direct chat GUID of `address`, as seen by the other side. */
export const direct = (address) => `any;-;${address}`;

/**
 * Assert one account's view of a text message.
 * @param {object} message an SDK Message
 * @param {{guid?: string, chatGuid: string, text?: string, isFromMe: boolean, sender?: string}} expected
 *   `sender` is the sender's address, required when isFromMe is false.
 */
export function assertMessage(message, expected) {
  const shown = JSON.stringify(message);
  if (expected.guid !== undefined) assert.equal(message.guid, expected.guid, `guid; got ${shown}`);
  assert.match(message.guid, MESSAGE_GUID, `guid is an upper-case UUID v4; got ${shown}`);
  if ("text" in expected) assert.equal(message.content.text, expected.text, `content.text; got ${shown}`);
  assert.equal(message.isFromMe, expected.isFromMe, `isFromMe; got ${shown}`);
  assert.deepEqual(message.chatGuids, [expected.chatGuid], `chatGuids; got ${shown}`);
  assertRecent(message.dateCreated, "dateCreated");
  assert.equal(message.itemType, "normal", `itemType; got ${shown}`);
  if (expected.isFromMe) {
    assert.equal(message.sender, undefined, `my own message has no sender; got ${shown}`);
    assert.equal(message.isSent, true, `isSent; got ${shown}`);
    assert.equal(message.isDelivered, true, `isDelivered; got ${shown}`);
  } else {
    assert.equal(message.sender?.address, expected.sender, `sender; got ${shown}`);
    assert.equal(message.sender?.service, "iMessage", `sender.service; got ${shown}`);
  }
}

/** Events of `person`'s log after `head`, only those whose type starts with `prefix`. */
export async function eventsOfKind(person, head, prefix) {
  return (await person.eventsAfter(head)).filter((e) => e.type.startsWith(prefix));
}

/** Assert a message event's envelope: type, chat, isFromMe, actor (when given), sequence > 0. */
export function assertEnvelope(event, { type, chatGuid, isFromMe, actor }) {
  const shown = JSON.stringify(event);
  assert.equal(event.type, type, `type; got ${shown}`);
  assert.equal(event.chatGuid, chatGuid, `chatGuid; got ${shown}`);
  assert.equal(event.isFromMe, isFromMe, `isFromMe; got ${shown}`);
  assertRecent(event.occurredAt);
  assert.ok(Number.isSafeInteger(event.sequence) && event.sequence >= 1, `sequence; got ${shown}`);
  if (actor !== undefined) assert.equal(event.actor?.address, actor, `actor; got ${shown}`);
}

/**
 * A gRPC SDK client for `person`, whatever IMGROUPS_TRANSPORT says; closed by `closeAll()`.
 */
export class GrpcClients {
  #clients = [];
  #streams = [];
  #server;

  constructor(server) {
    this.#server = server;
  }

  client(person, options = {}) {
    const client = createGrpcClient({ address: this.#server.address, token: person.token, tls: false, ...options });
    this.#clients.push(client);
    return client;
  }

  /**
   * Open `<resource>.subscribeEvents(filter)` as `person` and resolve once it is live (its first
   * frame, a heartbeat: the server must run with a short --heartbeat-secs).
   * @param {"groups" | "messages" | "chats" | "polls"} resource
   * @returns {Promise<StreamCollector & {heartbeats: () => number}>}
   */
  async live(person, resource, filter, timeoutMs = 5_000) {
    let heartbeats = 0;
    let onFirst;
    const first = new Promise((resolveFirst) => (onFirst = resolveFirst));
    const client = this.client(person, {
      onHeartbeat: () => {
        heartbeats += 1;
        onFirst("live");
      },
    });
    const stream = new StreamCollector(client[resource].subscribeEvents(filter));
    this.#streams.push(stream);
    stream.heartbeats = () => heartbeats;
    const outcome = await waitFor(Promise.race([first, stream.done.then(() => "ended")]), timeoutMs);
    if (outcome !== "live") {
      await stream.close();
      throw stream.error ?? new Error(`${resource}.subscribeEvents not live within ${timeoutMs} ms`);
    }
    return stream;
  }

  /** Open a stream without waiting for it to be live (for streams expected to fail). */
  open(person, resource, filter) {
    const stream = new StreamCollector(this.client(person)[resource].subscribeEvents(filter));
    this.#streams.push(stream);
    return stream;
  }

  async closeAll() {
    await Promise.allSettled(this.#streams.map((s) => s.close()));
    await Promise.allSettled(this.#clients.map((c) => c.close()));
    this.#streams = [];
    this.#clients = [];
  }
}

/**
 * Page through `messages.listInChat(chat)` (or listRecent when `chat` is null) to the end.
 * @returns {Promise<{messages: object[], pages: object[]}>}
 */
export async function listAll(client, chat, filter = {}, maxPages = 1_000) {
  const pages = [];
  let pageToken;
  for (;;) {
    const options = { ...filter, ...(pageToken ? { pageToken } : {}) };
    const page = chat === null ? await client.messages.listRecent(options) : await client.messages.listInChat(chat, options);
    pages.push(page);
    pageToken = page.nextPageToken;
    if (!pageToken) break;
    assert.ok(pages.length < maxPages, `more than ${maxPages} pages`);
  }
  return { messages: pages.flatMap((p) => p.messages), pages };
}

/** Resolve after `ms` (only to give a would-be duplicate time to show up; never to wait for a start). */
export const settle = (ms = 200) => new Promise((resolveLater) => setTimeout(resolveLater, ms));
