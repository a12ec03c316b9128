// chats.subscribeEvents (SubscribeChatEvents): the only chat event this server produces is
// chat.markedRead (message-events.test.mjs; backgrounds and archiving are out of scope), so
// without reads the stream carries heartbeats only. It must be a well-behaved stream:
// authenticated, filter validated like the group
// stream (unknown chat -> chatNotFound), heartbeats delivered to the client's onHeartbeat,
// and close() ends it cleanly.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, StreamCollector, uniqueEmail, waitFor } from "../lib/harness.mjs";
import { Errors, checkError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

const HEARTBEAT_WAIT_MS = 5_000;

describe("chats.subscribeEvents", () => {
  /** @type {Server} */ let server;
  let me, alice;
  const open = [];

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(async () => {
    await Promise.allSettled(open.map((s) => s.close()));
    await server?.cleanup();
  });

  /**
   * Open a chat-event stream on its own client, counting that client's heartbeats.
   * @returns {StreamCollector & {heartbeats: () => number, heartbeat: (n: number) => Promise<void>}}
   */
  function subscribe(person, filter) {
    let heartbeats = 0;
    const waiters = [];
    const client = server.client(person.token, {
      onHeartbeat: () => {
        heartbeats += 1;
        for (const w of waiters.splice(0)) w();
      },
    });
    const stream = new StreamCollector(client.chats.subscribeEvents(filter));
    open.push(stream);
    stream.heartbeats = () => heartbeats;
    /** Wait until at least `n` heartbeats were seen; fail if the stream ends first. */
    stream.heartbeat = async (n) => {
      const deadline = Date.now() + HEARTBEAT_WAIT_MS * n;
      while (heartbeats < n) {
        if (stream.ended) throw stream.error ?? new Error(`stream ended after ${heartbeats} heartbeat(s)`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${heartbeats} of ${n} heartbeat(s) (server runs with --heartbeat-secs 1)`);
        await waitFor(Promise.race([new Promise((r) => waiters.push(r)), stream.done]), left);
      }
    };
    return stream;
  }

  test("an idle stream yields no events, and heartbeats reach onHeartbeat", async () => {
    const stream = subscribe(me);
    await stream.heartbeat(2);
    assert.deepEqual(stream.events, [], "heartbeats are not events");
    assert.equal(stream.error, undefined);
    await stream.close();
  });

  test("group changes do not appear on the chat stream (they are group events)", async () => {
    const stream = subscribe(me);
    await stream.heartbeat(1); // registered
    const { chat } = await alice.chats.create([me.address, uniqueEmail()]);
    await alice.groups.setDisplayName(chat.guid, "not a chat event");
    await alice.groups.setIcon(chat.guid, png(4));
    await me.groups.setDisplayName(chat.guid, "mine either");
    await me.chats.create([uniqueEmail(), uniqueEmail()]);
    const seen = stream.heartbeats();
    await stream.heartbeat(seen + 1); // a heartbeat after the changes: the stream is still alive
    assert.deepEqual(stream.events, [], "no chat events");
    assert.equal(stream.ended, false);
    await stream.close();
  });

  test("a {chat} filter for a group I am in is accepted and heartbeats", async () => {
    const { chat } = await alice.chats.create([me.address, uniqueEmail()]);
    const stream = subscribe(me, { chat: chat.guid });
    await stream.heartbeat(1);
    assert.deepEqual(stream.events, []);
    await stream.close();
  });

  test("a {chat} filter for an unknown chat fails with NotFoundError chatNotFound", async () => {
    const guid = "any;+;chat000000000000000077";
    const stream = subscribe(me, { chat: guid });
    checkError(await stream.failure(), Errors.chatNotFound, { chatguid: guid });
    assert.equal(stream.heartbeats(), 0, "no heartbeat before the failure");
  });

  test("a {chat} filter for a group of others I am not in fails with chatNotFound", async () => {
    const bob = await server.person(uniqueEmail("bob"));
    const { chat } = await alice.chats.create([bob.address, uniqueEmail()]);
    const stream = subscribe(me, { chat: chat.guid });
    checkError(await stream.failure(), Errors.chatNotFound, { chatguid: chat.guid });
  });

  test("no token -> AuthenticationError unauthenticated", async () => {
    const stream = new StreamCollector(server.client("").chats.subscribeEvents());
    open.push(stream);
    checkError(await stream.failure(), Errors.unauthenticated);
  });

  test("close() ends the stream cleanly and its heartbeats stop", async () => {
    const stream = subscribe(me);
    await stream.heartbeat(1);
    await stream.close();
    assert.equal(await waitFor(stream.done.then(() => "done"), 2_000), "done", "iteration ends after close()");
    assert.equal(stream.ended, true);
    assert.equal(stream.error, undefined, "closing is not an error");
    const after = stream.heartbeats();

    // A second stream's two heartbeats span more than one heartbeat period of the first.
    const other = subscribe(me);
    await other.heartbeat(2);
    assert.equal(stream.heartbeats(), after, "no heartbeat reaches a closed stream's client");
    assert.deepEqual(stream.events, []);
    await other.close();
  });
});
