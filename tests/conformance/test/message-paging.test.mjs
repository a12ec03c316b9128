// Paging: messages.listInChat and messages.listRecent over a chat of 2,000 messages, newest
// first, while other messages keep arriving. A page token is stable: paging to the end never
// repeats a message and never skips one, and the concatenated pages are the chat's history
// in reverse commit order (the order of the log). Filters: isFromMe, isRead, before, after.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, catchUp, uniqueEmail } from "../lib/harness.mjs";
import { listAll, settle } from "../lib/messages.mjs";

const COUNT = 2_000;
const SENDERS = 8;

describe("message paging", () => {
  /** @type {Server} */ let server;
  let me, alice;
  let chat;
  /** Guids of the chat's messages in commit order (from alice's log), refreshed by history(). */
  let committed;

  /** The chat's message guids in commit order, as alice's log has them. */
  async function history() {
    const { events } = await catchUp(alice.client, 0, 60_000);
    return events.filter((e) => e.type === "message.received" && e.chatGuid === chat).map((e) => e.message.guid);
  }

  before(
    async () => {
      server = await Server.start();
      me = server.me();
      alice = await server.person("alice@example.com");
      chat = (await me.chats.create([alice.address, uniqueEmail()])).chat.guid;
      // 2,000 messages from 8 concurrent senders, half mine, half alice's.
      let next = 0;
      await Promise.all(
        Array.from({ length: SENDERS }, async () => {
          while (next < COUNT) {
            const i = next++;
            const from = i % 2 === 0 ? me : alice;
            await from.client.messages.sendText(chat, `m${String(i).padStart(4, "0")}`);
          }
        }),
      );
      committed = await history();
      assert.equal(committed.length, COUNT);
    },
    { timeout: 300_000 },
  );
  after(() => server?.cleanup());

  test("pageSize 100 to the end while messages keep arriving: no duplicate, no gap, newest first", { timeout: 120_000 }, async () => {
    let stop = false;
    let arrived = 0;
    const writer = (async () => {
      while (!stop) {
        await me.client.messages.sendText(chat, `live ${arrived}`);
        arrived += 1;
      }
    })();
    try {
      await settle(50);
      const pages = [];
      let pageToken;
      do {
        const page = await alice.client.messages.listInChat(chat, { pageSize: 100, ...(pageToken ? { pageToken } : {}) });
        pages.push(page);
        pageToken = page.nextPageToken;
        assert.ok(page.messages.length <= 100, "at most pageSize per page");
        if (pageToken) assert.equal(page.messages.length, 100, "only the last page is short");
        assert.ok(pages.length <= 100, "paging ends");
      } while (pageToken);
      stop = true;
      await writer;
      assert.ok(arrived > 0, "messages arrived while paging");

      const listed = pages.flatMap((p) => p.messages.map((m) => m.guid));
      assert.equal(new Set(listed).size, listed.length, "no message twice");

      const all = await history();
      const newestAtStart = all.indexOf(listed[0]);
      assert.ok(newestAtStart >= COUNT - 1, "the first page starts at the newest message of its time");
      assert.deepEqual(
        listed,
        all.slice(0, newestAtStart + 1).reverse(),
        "the pages are the history up to the first page, newest first, without gaps",
      );
      const listedSet = new Set(listed);
      assert.deepEqual(committed.filter((guid) => !listedSet.has(guid)), [], "all 2,000 are listed");
      assert.ok(pages.length >= COUNT / 100, `${pages.length} pages`);

      const dates = pages.flatMap((p) => p.messages.map((m) => m.dateCreated.getTime()));
      for (let i = 1; i < dates.length; i++) assert.ok(dates[i] <= dates[i - 1], `dateCreated never increases (at ${i})`);
    } finally {
      stop = true;
      await writer.catch(() => {});
    }
  });

  test("a token keeps working after more messages arrived: the next page continues where the last ended", async () => {
    const first = await alice.client.messages.listInChat(chat, { pageSize: 10 });
    for (let i = 0; i < 5; i++) await me.client.messages.sendText(chat, `between pages ${i}`);
    const second = await alice.client.messages.listInChat(chat, { pageSize: 10, pageToken: first.nextPageToken });
    const all = (await history()).reverse();
    const start = all.indexOf(first.messages[0].guid);
    assert.deepEqual(
      [...first.messages, ...second.messages].map((m) => m.guid),
      all.slice(start, start + 20),
    );
    // The same token again gives the same page.
    const again = await alice.client.messages.listInChat(chat, { pageSize: 10, pageToken: first.nextPageToken });
    assert.deepEqual(again.messages.map((m) => m.guid), second.messages.map((m) => m.guid));
  });

  test("pageSize defaults to 50; 1 and 1,000 are allowed", async () => {
    const all = (await history()).reverse();
    const page = await alice.client.messages.listInChat(chat);
    assert.equal(page.messages.length, 50);
    assert.deepEqual(page.messages.map((m) => m.guid), all.slice(0, 50));
    assert.ok(page.nextPageToken);
    assert.equal((await alice.client.messages.listInChat(chat, { pageSize: 1 })).messages.length, 1);
    const big = await alice.client.messages.listInChat(chat, { pageSize: 1_000 });
    assert.deepEqual(big.messages.map((m) => m.guid), all.slice(0, 1_000));
  });

  test("the last page has no nextPageToken", async () => {
    const small = (await me.chats.create([alice.address, uniqueEmail()])).chat.guid;
    for (let i = 0; i < 3; i++) await me.client.messages.sendText(small, `s${i}`);
    const { pages, messages } = await listAll(alice.client, small, { pageSize: 2 });
    assert.deepEqual(messages.map((m) => m.content.text), ["s2", "s1", "s0"]);
    assert.equal(pages.length, 2, "a short page is the last one");
    assert.ok(pages[0].nextPageToken, "a full page that is not the last has a token");
    const exact = await alice.client.messages.listInChat(small, { pageSize: 3 });
    assert.equal(exact.messages.length, 3);
    if (exact.nextPageToken) {
      const tail = await alice.client.messages.listInChat(small, { pageSize: 3, pageToken: exact.nextPageToken });
      assert.deepEqual(tail.messages, [], "a token after the last message leads to an empty last page");
      assert.equal(tail.nextPageToken, undefined);
    }
  });

  test("isFromMe filters by sender in the caller's view, across pages", { timeout: 60_000 }, async () => {
    const mine = await listAll(alice.client, chat, { pageSize: 500, isFromMe: true });
    const theirs = await listAll(alice.client, chat, { pageSize: 500, isFromMe: false });
    assert.ok(mine.messages.every((m) => m.isFromMe === true));
    assert.ok(theirs.messages.every((m) => m.isFromMe === false));
    const all = await history();
    assert.equal(mine.messages.length + theirs.messages.length, all.length, "the two halves make the whole");
    assert.equal(mine.messages.length, COUNT / 2, "alice sent half of the 2,000");
  });

  test("isRead: only incoming messages have a read state; markRead moves them all to read", { timeout: 60_000 }, async () => {
    const unreadBefore = await listAll(alice.client, chat, { pageSize: 1_000, isRead: false });
    assert.ok(unreadBefore.messages.length >= COUNT / 2, "my messages are unread for alice");
    assert.ok(unreadBefore.messages.every((m) => !m.isFromMe), "her own messages are never unread");
    await alice.chats.markRead(chat);
    assert.deepEqual((await alice.client.messages.listInChat(chat, { isRead: false })).messages, []);
    const read = await listAll(alice.client, chat, { pageSize: 1_000, isRead: true });
    assert.equal(read.messages.length, (await history()).length, "everything is read now");
  });

  test("before and after bound dateCreated", { timeout: 60_000 }, async () => {
    const { messages: all } = await listAll(alice.client, chat, { pageSize: 1_000 });
    const pivot = all[Math.floor(all.length / 2)].dateCreated;
    const older = await listAll(alice.client, chat, { pageSize: 1_000, before: pivot });
    const newer = await listAll(alice.client, chat, { pageSize: 1_000, after: pivot });
    assert.ok(older.messages.length > 0 && newer.messages.length > 0);
    // Whether a message created exactly at the bound is included is not part of the contract.
    assert.ok(older.messages.every((m) => m.dateCreated <= pivot), "before: nothing newer than the bound");
    assert.ok(newer.messages.every((m) => m.dateCreated >= pivot), "after: nothing older than the bound");
    for (const [filtered, wanted, what] of [
      [older, (m) => m.dateCreated < pivot, "before"],
      [newer, (m) => m.dateCreated > pivot, "after"],
    ]) {
      const listed = new Set(filtered.messages.map((m) => m.guid));
      assert.deepEqual(all.filter(wanted).filter((m) => !listed.has(m.guid)), [], `${what}: every message past the bound`);
      const order = all.map((m) => m.guid).filter((guid) => listed.has(guid));
      assert.deepEqual(filtered.messages.map((m) => m.guid), order, `${what}: newest first, as unfiltered`);
    }
  });

  test("listRecent pages every chat's messages, newest first, without duplicates", { timeout: 120_000 }, async () => {
    const other = (await me.chats.create([alice.address, uniqueEmail()])).chat.guid;
    const latest = await me.client.messages.sendText(other, "the very latest");
    const first = await alice.client.messages.listRecent({ pageSize: 5 });
    assert.equal(first.messages[0].guid, latest.guid, "the newest message of any chat comes first");

    const { messages } = await listAll(alice.client, null, { pageSize: 1_000 });
    const guids = messages.map((m) => m.guid);
    assert.equal(new Set(guids).size, guids.length, "no message twice");
    const { events } = await catchUp(alice.client, 0, 60_000);
    const logged = events.filter((e) => e.type === "message.received").map((e) => e.message.guid);
    assert.deepEqual(guids, logged.reverse(), "listRecent is alice's whole message history, newest first");
  });
});
