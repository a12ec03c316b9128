// The console's conversation view in a real headless Chromium, against the real binary, with
// the official SDK on the other side: messages as bubbles (mine on the right), the sender in
// groups, replies, tapbacks, "Edited", unsent messages, group changes as grey lines, the typing
// indicator, and a compose box that sends as the account or as a puppet — each seen by the SDK
// too.
//
// IMGROUPS_CHROMIUM: the browser executable (default /usr/bin/chromium).
// IMGROUPS_CONVERSATION_SCREENSHOT=path: where to write a screenshot of a conversation
// (`docs/conversation.png` is made with IMGROUPS_CONVERSATION_SCREENSHOT=../../docs/conversation.png).

import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { Server, uniqueEmail } from "../lib/harness.mjs";

const CHROMIUM = process.env.IMGROUPS_CHROMIUM ?? "/usr/bin/chromium";
/** Anything the console shows from the server must appear within this long. */
const SHOWN_WITHIN_MS = 5_000;

describe("console conversation view", () => {
  /** @type {Server} */ let server;
  let browser, admin, me, alice, base;

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    me = server.me();
    alice = await server.person("alice@example.com");
    admin = (await server.cli("admin", "token")).trim();
    base = `http://${server.httpAddress}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // CI runs as root, where Chromium's sandbox cannot start.
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    });
  });
  after(async () => {
    await browser?.close();
    await server?.cleanup();
  });

  async function signedIn() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const p = await context.newPage();
    p.on("pageerror", (err) => assert.fail(`console page error: ${err.message}`));
    await p.goto(`${base}/console/`);
    await p.getByLabel("Admin token", { exact: true }).fill(admin);
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByLabel("Account", { exact: true }).waitFor();
    await p.getByLabel("Account", { exact: true }).selectOption(me.address);
    await p.waitForFunction(
      (a) => document.querySelector("#account").value === a && document.querySelector("#groups-page").textContent !== "",
      me.address,
    );
    return p;
  }

  function card(p, guid) {
    return p.locator("li.group", { has: p.getByText(guid, { exact: true }) });
  }

  function bubble(p, text) {
    return p.locator("#bubbles li.bubble", { hasText: text });
  }

  test("a conversation between the account, an SDK client and a puppet, as Messages shows it", async () => {
    const zoe = uniqueEmail("zoe");
    const { chat } = await me.chats.create([alice.address, zoe]);
    await alice.groups.setDisplayName(chat.guid, "Trip");
    const hello = await alice.client.messages.sendText(chat.guid, "hello from alice");

    const p = await signedIn();
    await card(p, chat.guid).getByRole("button", { name: "Open conversation" }).click();
    const view = p.getByRole("log", { name: "Messages" });
    await view.waitFor();
    await p.locator("#conversation-title").getByText("Trip", { exact: true }).waitFor({ timeout: SHOWN_WITHIN_MS });

    // Theirs on the left, with the sender; the rename as a grey line before it.
    const theirs = bubble(p, "hello from alice");
    await theirs.waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.match(await theirs.getAttribute("class"), /theirs/);
    assert.match(await theirs.textContent(), /alice@example\.com/);
    await p.locator("#bubbles li.system", { hasText: "alice@example.com named the conversation \u201cTrip\u201d" }).waitFor();

    // The compose box sends as the account: alice's log has it, the bubble is mine.
    const aliceHead = await alice.head();
    await p.getByLabel("Message text").fill("hi from the console");
    await p.getByRole("button", { name: "Send", exact: true }).click();
    const mine = bubble(p, "hi from the console");
    await mine.waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.match(await mine.getAttribute("class"), /mine/);
    const received = await alice.eventsAfter(aliceHead);
    assert.ok(
      received.some((e) => e.type === "message.received" && e.message?.content?.text === "hi from the console" && !e.isFromMe),
      JSON.stringify(received),
    );

    // As a puppet: the bubble is theirs, with the puppet as sender.
    await p.getByLabel("a puppet").check();
    await p.getByLabel("Puppet address").fill(zoe);
    await p.getByLabel("Message text").fill("zoe says hi");
    await p.getByRole("button", { name: "Send", exact: true }).click();
    const fromZoe = bubble(p, "zoe says hi");
    await fromZoe.waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.match(await fromZoe.getAttribute("class"), /theirs/);
    assert.match(await fromZoe.textContent(), new RegExp(zoe.replace(/[.+]/g, "\\$&")));
    const recent = await alice.client.messages.listInChat(chat.guid, { pageSize: 1 });
    assert.equal(recent.messages[0].content.text, "zoe says hi");
    assert.equal(recent.messages[0].sender.address, zoe);
    await p.getByLabel("the account").check();

    // A tapback from the console, seen by the SDK; one from the SDK, seen in the console.
    await theirs.getByRole("button", { name: /React like/ }).click();
    await p.waitForFunction(
      () => [...document.querySelectorAll("#bubbles li.bubble")].some((b) => b.textContent.includes("hello from alice") && b.querySelector(".tapbacks")?.textContent.includes("you")),
      undefined,
      { timeout: SHOWN_WITHIN_MS },
    );
    const liked = await alice.client.messages.get(hello.guid);
    assert.equal(liked.appliedReactions.length, 1);
    assert.equal(liked.appliedReactions[0].reaction.kind, "like");
    assert.equal(liked.appliedReactions[0].sender.address, me.address);

    // An edit shows "Edited"; a reply quotes its message; an unsend leaves "Message unsent".
    await alice.client.messages.edit(chat.guid, hello.guid, "hello (edited)");
    const edited = bubble(p, "hello (edited)");
    await edited.waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.match(await edited.textContent(), /Edited/);
    await alice.client.messages.sendText(chat.guid, "a reply", { replyTo: hello.guid });
    const reply = bubble(p, "a reply");
    await reply.waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.match(await reply.locator(".quote").textContent(), /hello \(edited\)/);
    const oops = await alice.client.messages.sendText(chat.guid, "oops, wrong chat");
    await bubble(p, "oops, wrong chat").waitFor({ timeout: SHOWN_WITHIN_MS });
    await alice.client.messages.unsend(chat.guid, oops.guid);
    await bubble(p, "Message unsent").waitFor({ timeout: SHOWN_WITHIN_MS });
    assert.equal(await bubble(p, "oops, wrong chat").count(), 0);

    // Typing, set through the SDK, shows until it is cleared.
    await alice.client.chats.setTyping(chat.guid, true);
    await p.locator("#typing", { hasText: "alice@example.com is typing" }).waitFor({ timeout: SHOWN_WITHIN_MS });
    await alice.client.chats.setTyping(chat.guid, false);
    await p.waitForFunction(() => document.querySelector("#typing").textContent === "", undefined, {
      timeout: SHOWN_WITHIN_MS,
    });

    // Order on screen is the order of the chat: the rename line first, the unsent one last.
    const lines = await p.locator("#bubbles > li").allTextContents();
    assert.ok(lines[0].includes("named the conversation"), lines[0]);
    assert.ok(lines.at(-1).includes("Message unsent"), lines.at(-1));

    const path = process.env.IMGROUPS_CONVERSATION_SCREENSHOT
      ? resolve(process.env.IMGROUPS_CONVERSATION_SCREENSHOT)
      : join(tmpdir(), `imgroups-conversation-${process.pid}.png`);
    await p.locator("#conversation").screenshot({ path });
    await p.context().close();
  });
});
