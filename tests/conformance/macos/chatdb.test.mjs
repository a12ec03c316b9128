// `serve --backend chatdb`: the official SDK against imgroups reading a Mac's Messages database
// (a fixture chat.db with the real schema, built by `imgroups-fake-helper fixture`) and writing
// through the Messages helper (`imgroups-fake-helper --connect`, which writes the rows Messages
// would). Runs once, on the default store: it is about the backend, not the store
// (`npm run test:macos`).
//
// Binaries: IMGROUPS_BIN (see lib/harness.mjs) and IMGROUPS_FAKE_HELPER, by default
// `imgroups-fake-helper` next to IMGROUPS_BIN (`cargo build -p imgroups-chatdb --features
// testing --bin imgroups-fake-helper`).

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { BIN, Server, StreamCollector, catchUp, subscribeLive, waitFor } from "../lib/harness.mjs";
import { Errors, addresses, assertGroupEvent, expectError } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";
import { assertMessage } from "../lib/messages.mjs";

const FAKE_HELPER = process.env.IMGROUPS_FAKE_HELPER ?? join(dirname(BIN), "imgroups-fake-helper");
const ME = "me@icloud.com";
const GUID = "any;+;chat100";
const execFileAsync = promisify(execFile);

/** A fresh home with `Library/Messages/chat.db` holding "Book club" and its history. */
async function fixtureHome() {
  if (!existsSync(FAKE_HELPER)) {
    throw new Error(
      `fake helper not found at ${FAKE_HELPER}: run \`cargo build -p imgroups-chatdb --features testing ` +
        "--bin imgroups-fake-helper` or set IMGROUPS_FAKE_HELPER",
    );
  }
  const home = await mkdtemp(join(tmpdir(), "imgroups-macos-"));
  const { stdout } = await execFileAsync(FAKE_HELPER, ["fixture", "--home", home]);
  assert.match(stdout, /^fixture \S+chat\.db iMessage;\+;chat100\n$/);
  return home;
}

/** `serve --backend chatdb` on `home`, with `extra` flags. */
function serveChatDb(home, extra = []) {
  return Server.start({
    account: ME,
    heartbeatSecs: 1,
    serveArgs: ["--backend", "chatdb", "--home", home, "--chatdb-rescan-ms", "200", ...extra],
  });
}

/**
 * The fake helper connected to `address`: resolves once it printed `connected`. `typing` lists
 * the typing indicators it showed or hid in Messages (`["on", chatGuid]`, as sent), which
 * Messages does not store: the binary prints them.
 */
async function startHelper(home, address) {
  const child = spawn(FAKE_HELPER, ["--db", join(home, "Library/Messages/chat.db"), "--connect", address], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolveExit) => child.once("exit", resolveExit));
  const lines = createInterface({ input: child.stdout });
  const connected = new Promise((resolveConnected) =>
    lines.on("line", (line) => line.startsWith("connected ") && resolveConnected(true)),
  );
  const typing = [];
  lines.on("line", (line) => {
    const [word, state, ...guid] = line.split(" ");
    if (word === "typing") typing.push([state, guid.join(" ")]);
  });
  if (!(await waitFor(Promise.race([connected, exited.then(() => false)]), 10_000))) {
    child.kill("SIGKILL");
    throw new Error(`fake helper did not connect to ${address}\n--- stderr ---\n${stderr}`);
  }
  return {
    typing,
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

const event = (change, actor = ME) => ({ chatGuid: GUID, isFromMe: actor === ME, actor, change });

// The fixture's history: 5 group changes in "Book club", then (read after them) its message
// "hello" and the other chats' messages: 4 in the text-only group, 1 in the direct chat.
const GROUP_CHANGES = 5;
const HISTORY = GROUP_CHANGES + 1 + 4 + 1;
const groupEvents = (events) => events.filter((e) => e.type === "group.changed");

/** Whether `check()` became true within `ms` (polled every 20 ms). */
async function until(check, ms) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe("macOS backend: chat.db and the Messages helper, through the official SDK", () => {
  /** @type {Server} */ let server;
  let home, helper, me;

  before(async () => {
    home = await fixtureHome();
    server = await serveChatDb(home, ["--helper", "127.0.0.1:0"]);
    assert.match(server.helperAddress ?? "", /^127\.0\.0\.1:\d+$/, "serve printed `helper listening on`");
    helper = await startHelper(home, server.helperAddress);
    me = server.me();
  });
  after(async () => {
    await helper?.kill();
    await server?.cleanup();
    if (home) await rm(home, { recursive: true, force: true });
  });

  test("catch-up shows the imported history in date order, the chat its current state", async () => {
    const { events: all, head } = await me.log(0);
    assert.equal(head, HISTORY);
    const events = groupEvents(all);
    assert.deepEqual(
      all.slice(GROUP_CHANGES).map((e) => e.type),
      Array(HISTORY - GROUP_CHANGES).fill("message.received"),
    );
    const shown = JSON.stringify(events);
    assert.deepEqual(
      events.map((e) => [e.sequence, e.chatGuid, e.actor?.address, e.isFromMe, e.change?.type]),
      [
        [1, GUID, ME, true, "displayNameChanged"],
        [2, GUID, "alice@example.com", false, "participantAdded"],
        [3, GUID, "bob@example.com", false, "participantLeft"],
        [4, GUID, "+15551230001", false, "iconChanged"],
        [5, GUID, "alice@example.com", false, "participantAdded"],
      ],
      shown,
    );
    assert.equal(events[0].change.displayName, "Book club");
    assert.equal(events[1].change.participant.address, "dave@example.com");
    assert.equal(events[2].change.participant.address, "bob@example.com");
    assert.equal(events[4].change.participant.address, "erin@example.com");
    // chat.db's dates, not the import's: 2024-01-01 plus the row's minutes.
    assert.deepEqual(
      events.map((e) => e.occurredAt.toISOString()),
      [1, 2, 3, 4, 5].map((m) => new Date(Date.UTC(2024, 0, 1, 0, m)).toISOString()),
    );

    const chat = await me.chats.get(GUID);
    assert.equal(chat.displayName, "Book club");
    assert.deepEqual(addresses(chat).sort(), ["+15551230001", "alice@example.com", "dave@example.com", "erin@example.com"]);
    const icon = await me.groups.getIcon(GUID);
    assert.equal(icon.mimeType, "image/png");
  });

  /**
   * Make one write as me with a live subscription open; the write's answer comes back only once
   * its event is in the log, and that event is exactly the one the subscription sees.
   */
  async function write(call, expected) {
    const head = await me.head();
    const live = await subscribeLive(server, me);
    try {
      const answer = await call();
      const logged = await me.eventsAfter(head);
      assert.equal(logged.length, 1, `one event in the log when the answer came: ${JSON.stringify(logged)}`);
      assertGroupEvent(logged[0], expected);
      assert.equal(logged[0].sequence, head + 1);
      const [seen] = await live.count(1, 10_000);
      assert.deepEqual(seen, logged[0], "the live event is the log's");
      return answer;
    } finally {
      await live.close();
    }
  }

  test("setDisplayName: the chat returned and the event carry the new name", async () => {
    const chat = await write(
      () => me.groups.setDisplayName(GUID, "Readers"),
      event({ type: "displayNameChanged", displayName: "Readers" }),
    );
    assert.equal(chat.displayName, "Readers");
    assert.equal((await me.chats.get(GUID)).displayName, "Readers");
  });

  test("addParticipants: the chat returned lists the new member, the event names them", async () => {
    const chat = await write(
      () => me.groups.addParticipants(GUID, ["frank@example.com"]),
      event({ type: "participantAdded", participant: "frank@example.com" }),
    );
    assert.ok(addresses(chat).includes("frank@example.com"), JSON.stringify(addresses(chat)));
  });

  test("removeParticipants: the chat returned no longer lists them, the event names them", async () => {
    const chat = await write(
      () => me.groups.removeParticipants(GUID, ["frank@example.com"]),
      event({ type: "participantRemoved", participant: "frank@example.com" }),
    );
    assert.ok(!addresses(chat).includes("frank@example.com"), JSON.stringify(addresses(chat)));
  });

  test("setIcon, then removeIcon: one event each, getIcon follows", async () => {
    const bytes = png(7);
    await write(() => me.groups.setIcon(GUID, bytes), event({ type: "iconChanged" }));
    const icon = await me.groups.getIcon(GUID);
    assert.deepEqual(Buffer.from(icon.data), Buffer.from(bytes), "the photo Messages stored");

    await write(() => me.groups.removeIcon(GUID), event({ type: "iconRemoved" }));
    await expectError(me.groups.getIcon(GUID), Errors.groupIconNotFound);
  });

  test("bad input is refused by the rules, before Messages is asked: nothing recorded", async () => {
    const head = await me.head();
    await expectError(me.groups.removeParticipants(GUID, ["nobody@example.com"]), Errors.preconditionFailed, {
      reason: "notParticipant",
    });
    await expectError(me.groups.addParticipants(GUID, ["alice@example.com"]), Errors.preconditionFailed, {
      reason: "alreadyParticipant",
    });
    assert.equal(await me.head(), head, "no events");
  });

  test("with the helper gone a valid write fails unavailable and retryable; the rules still answer first", async () => {
    await helper.kill();
    helper = null;
    const head = await me.head();
    // The SDK retries a retryable error a few times itself; then it surfaces.
    const err = await me.groups.setDisplayName(GUID, "Nobody hears this").then(
      () => assert.fail("rename succeeded without a helper"),
      (e) => e,
    );
    assert.equal(err.constructor.name, "ConnectionError", `${err.constructor.name}: ${err.message}`);
    assert.equal(err.grpcCode, 14, "UNAVAILABLE");
    assert.equal(err.retryable, true);
    // A refusal needs no helper: it still comes from the rules.
    await expectError(me.groups.removeParticipants(GUID, ["nobody@example.com"]), Errors.preconditionFailed, {
      reason: "notParticipant",
    });
    assert.equal(await me.head(), head, "no events");
    assert.equal((await me.chats.get(GUID)).displayName, "Readers", "nothing changed");

    // The helper comes back (as the real one reconnects): writes work again.
    helper = await startHelper(home, server.helperAddress);
    const chat = await write(
      () => me.groups.setDisplayName(GUID, "Readers again"),
      event({ type: "displayNameChanged", displayName: "Readers again" }),
    );
    assert.equal(chat.displayName, "Readers again");
  });

  test("leave: resolves, and the event says I left", async () => {
    await write(() => me.groups.leave(GUID), event({ type: "participantLeft", participant: ME }));
  });
});

describe("macOS backend without --helper: read-only", () => {
  /** @type {Server} */ let server;
  let home, me;

  before(async () => {
    home = await fixtureHome();
    server = await serveChatDb(home);
    assert.equal(server.helperAddress, undefined, "no helper awaited");
    me = server.me();
  });
  after(async () => {
    await server?.cleanup();
    if (home) await rm(home, { recursive: true, force: true });
  });

  test("reads work: the history, the chat, its photo", async () => {
    const { events, head } = await catchUp(me.client, 0);
    assert.equal(head, HISTORY);
    assert.equal(events.length, HISTORY);
    assert.equal(groupEvents(events).length, GROUP_CHANGES);
    assert.equal((await me.chats.get(GUID)).displayName, "Book club");
    assert.equal((await me.groups.getIcon(GUID)).mimeType, "image/png");
  });

  test("every group write answers operationNotSupported, naming --helper; nothing recorded", async () => {
    const writes = [
      () => me.groups.setDisplayName(GUID, "Nope"),
      () => me.groups.addParticipants(GUID, ["frank@example.com"]),
      () => me.groups.removeParticipants(GUID, ["alice@example.com"]),
      () => me.groups.setIcon(GUID, png(8)),
      () => me.groups.removeIcon(GUID),
      () => me.groups.leave(GUID),
    ];
    for (const call of writes) {
      const err = await expectError(call, Errors.operationNotSupported);
      assert.match(err.message, /--helper/);
    }
    assert.equal(await me.head(), HISTORY, "nothing recorded");
  });
});

// The fixture also holds (imgroups_chatdb::testing::more_chats): a group in macOS 26's
// `any;+;` form that only ever had text messages (no group-change row: Messages writes none
// for a group's first members), with a short code among its members; an SMS group; and a
// one-to-one chat. The fake helper finds chats by their exact chat.guid, as the real one does.
const TEXT_ONLY = "any;+;7e3a91c2";
const SMS = "any;+;5a5a5a5a";
const DIRECT = "any;-;+15550009999";

describe("macOS backend: an any;+; group with only text messages, an SMS group, a direct chat", () => {
  /** @type {Server} */ let server;
  let home, helper, me;

  before(async () => {
    home = await fixtureHome();
    server = await serveChatDb(home, ["--helper", "127.0.0.1:0"]);
    helper = await startHelper(home, server.helperAddress);
    me = server.me();
  });
  after(async () => {
    await helper?.kill();
    await server?.cleanup();
    if (home) await rm(home, { recursive: true, force: true });
  });

  const inGroup = (chatGuid, change) => ({ chatGuid, isFromMe: true, actor: ME, change });

  /** One write as me; answered once its one event is in the log, which a live stream sees. */
  async function writeTo(call, expected) {
    const head = await me.head();
    const live = await subscribeLive(server, me);
    try {
      const answer = await call();
      const logged = await me.eventsAfter(head);
      assert.equal(logged.length, 1, `one event in the log when the answer came: ${JSON.stringify(logged)}`);
      assertGroupEvent(logged[0], expected);
      const [seen] = await live.count(1, 10_000);
      assert.deepEqual(seen, logged[0], "the live event is the log's");
      return answer;
    } finally {
      await live.close();
    }
  }

  test("the text-only group is listed with its members, the short code included", async () => {
    const chat = await me.chats.get(TEXT_ONLY);
    assert.deepEqual(addresses(chat).sort(), ["+15551230002", "262966", "gina@example.com", "hank@example.com"]);
    const { events } = await me.log(0);
    assert.ok(!groupEvents(events).some((e) => e.chatGuid === TEXT_ONLY), "no history: it never had a group change");
    assert.equal(events.filter((e) => e.chatGuid === TEXT_ONLY && e.type === "message.received").length, 4);
  });

  test("every group operation on the text-only any;+; group goes through the helper", async () => {
    const renamed = await writeTo(
      () => me.groups.setDisplayName(TEXT_ONLY, "Text only"),
      inGroup(TEXT_ONLY, { type: "displayNameChanged", displayName: "Text only" }),
    );
    assert.equal(renamed.displayName, "Text only");

    const added = await writeTo(
      () => me.groups.addParticipants(TEXT_ONLY, ["frank@example.com"]),
      inGroup(TEXT_ONLY, { type: "participantAdded", participant: "frank@example.com" }),
    );
    assert.ok(addresses(added).includes("frank@example.com"));

    const removed = await writeTo(
      () => me.groups.removeParticipants(TEXT_ONLY, ["frank@example.com"]),
      inGroup(TEXT_ONLY, { type: "participantRemoved", participant: "frank@example.com" }),
    );
    assert.ok(!addresses(removed).includes("frank@example.com"));

    // The photo reaches Messages (written where Messages may read it): it is set, not removed.
    const bytes = png(11);
    await writeTo(() => me.groups.setIcon(TEXT_ONLY, bytes), inGroup(TEXT_ONLY, { type: "iconChanged" }));
    assert.deepEqual(Buffer.from((await me.groups.getIcon(TEXT_ONLY)).data), Buffer.from(bytes));
    await writeTo(() => me.groups.removeIcon(TEXT_ONLY), inGroup(TEXT_ONLY, { type: "iconRemoved" }));
    await expectError(me.groups.getIcon(TEXT_ONLY), Errors.groupIconNotFound);

    await writeTo(() => me.groups.leave(TEXT_ONLY), inGroup(TEXT_ONLY, { type: "participantLeft", participant: ME }));
  });

  test("the SMS group is listed; every write is refused as operationNotSupported, naming SMS/RCS", async () => {
    const chat = await me.chats.get(SMS);
    assert.deepEqual(addresses(chat).sort(), ["+15550002222", "+15550003333"]);
    const head = await me.head();
    const writes = [
      () => me.groups.setDisplayName(SMS, "Nope"),
      () => me.groups.addParticipants(SMS, ["frank@example.com"]),
      () => me.groups.setIcon(SMS, png(12)),
    ];
    for (const call of writes) {
      const err = await expectError(call, Errors.operationNotSupported);
      assert.match(err.message, /SMS\/RCS/);
      assert.equal(err.retryable, false);
    }
    assert.equal(await me.head(), head, "nothing recorded");
  });

  test("a direct chat: group operations do not apply and change nothing", async () => {
    const head = await me.head();
    for (const call of [
      () => me.groups.setDisplayName(DIRECT, "Nope"),
      () => me.groups.addParticipants(DIRECT, ["frank@example.com"]),
      () => me.groups.leave(DIRECT),
    ]) {
      const err = await call().then(
        () => assert.fail("a group write on a direct chat succeeded"),
        (e) => e,
      );
      assert.ok(["invalidArgument", "operationNotSupported", "chatNotFound"].includes(err.code), `${err.code}: ${err.message}`);
      assert.equal(err.retryable, false);
    }
    assert.equal(await me.head(), head, "nothing recorded");
  });
});

describe("macOS backend: conversations through chat.db and the Messages helper", () => {
  /** @type {Server} */ let server;
  let home, helper, me;

  before(async () => {
    home = await fixtureHome();
    server = await serveChatDb(home, ["--helper", "127.0.0.1:0"]);
    helper = await startHelper(home, server.helperAddress);
    me = server.me();
  });
  after(async () => {
    await helper?.kill();
    await server?.cleanup();
    if (home) await rm(home, { recursive: true, force: true });
  });

  /** A live `messages.subscribeEvents` stream of mine, once its first heartbeat came. */
  async function subscribeMessages() {
    let onFirst;
    const firstHeartbeat = new Promise((resolveFirst) => (onFirst = resolveFirst));
    const client = server.client(me.token, { onHeartbeat: () => onFirst("live") });
    const stream = new StreamCollector(client.messages.subscribeEvents());
    const outcome = await waitFor(Promise.race([firstHeartbeat, stream.done.then(() => "ended")]), 5_000);
    if (outcome !== "live") {
      await stream.close();
      throw stream.error ?? new Error("message stream not live within 5 s");
    }
    return stream;
  }

  /** One message write; answered once its one event is in the log, which a live stream sees. */
  async function act(call, type, chatGuid) {
    const head = await me.head();
    const live = await subscribeMessages();
    try {
      const answer = await call();
      const logged = await me.eventsAfter(head);
      assert.deepEqual(
        logged.map((e) => [e.type, e.chatGuid, e.isFromMe, e.sequence]),
        [[type, chatGuid, true, head + 1]],
        `one event in the log when the answer came: ${JSON.stringify(logged)}`,
      );
      const [seen] = await live.count(1, 10_000);
      assert.deepEqual(seen, logged[0], "the live event is the log's");
      return { answer, event: logged[0] };
    } finally {
      await live.close();
    }
  }

  test("the history: each chat's messages, with their senders and chat.db's dates", async () => {
    const { messages: inGroup } = await me.client.messages.listInChat(GUID);
    assert.deepEqual(
      inGroup.map((m) => [m.guid, m.content.text, m.isFromMe, m.sender?.address]),
      [["BC-TEXT", "hello", false, "alice@example.com"]],
    );
    assert.equal(inGroup[0].dateCreated.toISOString(), new Date(Date.UTC(2024, 0, 1, 0, 6)).toISOString());
    const { messages: inDirect } = await me.client.messages.listInChat(DIRECT);
    assert.deepEqual(
      inDirect.map((m) => [m.content.text, m.isFromMe, m.sender?.address]),
      [["hey", false, "+15550009999"]],
    );
  });

  for (const [name, chat] of [
    ["a group", GUID],
    ["a direct chat", DIRECT],
  ]) {
    test(`${name}: send, tapback on and off, edit, unsend — each through Messages, one event each`, async () => {
      const replyTo = chat === GUID ? "BC-TEXT" : "DIRECT-1";
      const { answer: sent, event } = await act(
        () => me.client.messages.sendText(chat, `hello from the SDK to ${name}`, { replyTo }),
        "message.received",
        chat,
      );
      assertMessage(sent, { chatGuid: chat, text: `hello from the SDK to ${name}`, isFromMe: true });
      assert.equal(sent.replyTargetGuid, replyTo);
      assert.equal(event.message.guid, sent.guid, "the event names the message chat.db has");
      assert.equal((await me.client.messages.get(sent.guid)).content.text, `hello from the SDK to ${name}`);

      const { answer: loved } = await act(
        () => me.client.messages.setReaction(chat, sent.guid, { kind: "love" }, true),
        "message.reactionAdded",
        chat,
      );
      assert.equal(loved.appliedReactions.length, 1, JSON.stringify(loved.appliedReactions));
      const { answer: unloved } = await act(
        () => me.client.messages.setReaction(chat, sent.guid, { kind: "love" }, false),
        "message.reactionRemoved",
        chat,
      );
      assert.deepEqual(unloved.appliedReactions, []);

      const { answer: edited } = await act(
        () => me.client.messages.edit(chat, sent.guid, "edited in Messages"),
        "message.edited",
        chat,
      );
      assert.equal(edited.content.text, "edited in Messages");
      assert.ok(edited.dateEdited, "dateEdited set");

      await act(() => me.client.messages.unsend(chat, sent.guid), "message.unsent", chat);
      const gone = await me.client.messages.get(sent.guid);
      assert.ok(gone.dateRetracted, "dateRetracted set");
      assert.ok(!gone.content?.text, "the text is gone");
    });
  }

  test("the rules answer first: someone else's message, an unknown one; nothing recorded", async () => {
    const head = await me.head();
    await expectError(me.client.messages.edit(GUID, "BC-TEXT", "mine now"), Errors.preconditionFailed, {
      reason: "notFromMe",
    });
    await expectError(me.client.messages.unsend(DIRECT, "NO-SUCH-MESSAGE"), Errors.messageNotFound);
    assert.equal(await me.head(), head, "no events");
  });

  test("markRead: Messages marks the chat read; answered once chat.markedRead is in the log", async () => {
    const [hey] = (await me.client.messages.listInChat(DIRECT, { isRead: false })).messages;
    assert.equal(hey?.guid, "DIRECT-1", "the message I received is unread");
    const head = await me.head();

    await me.chats.markRead(DIRECT);

    const logged = await me.eventsAfter(head);
    assert.deepEqual(
      logged.map((e) => [e.type, e.chatGuid, e.isFromMe, e.actor?.address]),
      [["chat.markedRead", DIRECT, true, ME]],
      JSON.stringify(logged),
    );
    const read = await me.client.messages.get("DIRECT-1");
    assert.ok(read.dateRead, "dateRead set, from chat.db");
    assert.deepEqual((await me.client.messages.listInChat(DIRECT, { isRead: false })).messages, []);

    // Nothing unread any more: nothing changes, nothing is recorded.
    await me.chats.markRead(DIRECT);
    assert.equal(await me.head(), head + 1);
  });

  test("setTyping shows and hides the indicator in Messages, with the chat's GUID; nothing is logged", async () => {
    const head = await me.head();
    await me.chats.setTyping(GUID, true);
    await me.chats.setTyping(GUID, false);
    await me.chats.setTyping(DIRECT, true);
    // The fake prints each one after answering it: wait for the lines.
    assert.ok(await until(() => helper.typing.length >= 3, 5_000), JSON.stringify(helper.typing));
    assert.deepEqual(helper.typing, [
      ["on", "iMessage;+;chat100"],
      ["off", "iMessage;+;chat100"],
      ["on", DIRECT],
    ]);
    await expectError(me.chats.setTyping(SMS, true), Errors.operationNotSupported);
    await expectError(me.chats.setTyping("any;+;nosuchchat", true), Errors.chatNotFound);
    assert.equal(helper.typing.length, 3, "Messages was not asked");
    assert.equal(await me.head(), head, "typing is never logged");
  });

  test("an SMS group: sending is refused as operationNotSupported, naming SMS/RCS", async () => {
    const err = await expectError(me.client.messages.sendText(SMS, "hi"), Errors.operationNotSupported);
    assert.match(err.message, /SMS\/RCS/);
  });
});

describe("macOS backend without --helper: messages are read, not written", () => {
  /** @type {Server} */ let server;
  let home, me;

  before(async () => {
    home = await fixtureHome();
    server = await serveChatDb(home);
    me = server.me();
  });
  after(async () => {
    await server?.cleanup();
    if (home) await rm(home, { recursive: true, force: true });
  });

  test("setTyping answers operationNotSupported, naming --helper, as the writes do", async () => {
    const err = await expectError(me.chats.setTyping(GUID, true), Errors.operationNotSupported);
    assert.match(err.message, /--helper/);
  });

  test("sendText answers operationNotSupported, naming --helper", async () => {
    const { messages } = await me.client.messages.listInChat(GUID);
    assert.equal(messages[0].content.text, "hello");
    const err = await expectError(me.client.messages.sendText(GUID, "hi"), Errors.operationNotSupported);
    assert.match(err.message, /--helper/);
  });
});
