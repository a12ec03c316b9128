// Messages: conversations between accounts in groups and direct chats, replies, tapbacks,
// edits, unsends, and what each member's log and `messages.get` show afterwards.
// Error cases are in message-errors.test.mjs; paging in message-paging.test.mjs; streams,
// read receipts and typing in message-events.test.mjs.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { MessageEffect } from "@photon-ai/advanced-imessage/grpc";

import { Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, assertRecent, expectError } from "../lib/expect.mjs";
import { MESSAGE_GUID, assertEnvelope, assertMessage, direct, eventsOfKind } from "../lib/messages.mjs";

describe("messages", () => {
  /** @type {Server} */ let server;
  let me, alice, bob, carol;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
    carol = await server.person("carol@example.com");
  });
  after(() => server?.cleanup());

  /** A group of me, alice, bob and one guest who is not an account. */
  async function group() {
    const { chat } = await me.chats.create([alice.address, bob.address, uniqueEmail()]);
    return chat.guid;
  }

  const heads = async (...people) => Promise.all(people.map((p) => p.head()));

  describe("sendText in a group", () => {
    test("answers the message as stored: guid, text, isFromMe, sent, delivered, the chat", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "hello, group");
      assertMessage(sent, { chatGuid: chat, text: "hello, group", isFromMe: true });
      assert.equal(sent.replyTargetGuid, undefined, "not a reply");
      assert.equal(sent.dateRetracted, undefined);
      assert.equal(sent.dateEdited, undefined);
      assert.deepEqual(sent.appliedReactions, []);
    });

    test("every member account gets message.received once; isFromMe and sender per view; outsiders nothing", async () => {
      const chat = await group();
      const [mine, alices, bobs, carols] = await heads(me, alice, bob, carol);

      const sent = await me.client.messages.sendText(chat, "to everyone");

      for (const [person, head, isFromMe] of [
        [me, mine, true],
        [alice, alices, false],
        [bob, bobs, false],
      ]) {
        const events = await person.eventsAfter(head);
        assert.equal(events.length, 1, `${person.address}: one event, got ${JSON.stringify(events)}`);
        const [event] = events;
        assertEnvelope(event, { type: "message.received", chatGuid: chat, isFromMe });
        assert.equal(event.sequence, head + 1, `${person.address}: next in its own sequence`);
        if (event.actor) assert.equal(event.actor.address, me.address, "actor, when named, is the sender");
        assertMessage(event.message, {
          guid: sent.guid,
          chatGuid: chat,
          text: "to everyone",
          isFromMe,
          sender: me.address,
        });
      }
      assert.equal(await carol.head(), carols, "a non-member's log is untouched");
    });

    test("three accounts talking: every log has the three messages in the same order, one guid each", async () => {
      const chat = await group();
      const [mine, alices, bobs] = await heads(me, alice, bob);

      const a = await alice.client.messages.sendText(chat, "one from alice");
      const b = await bob.client.messages.sendText(chat, "two from bob");
      const m = await me.client.messages.sendText(chat, "three from me");
      const sent = [a, b, m];
      const senders = [alice, bob, me];
      assert.equal(new Set(sent.map((s) => s.guid)).size, 3, "three distinct guids");

      for (const [person, head] of [
        [me, mine],
        [alice, alices],
        [bob, bobs],
      ]) {
        const events = await eventsOfKind(person, head, "message.");
        assert.deepEqual(
          events.map((e) => e.message.guid),
          sent.map((s) => s.guid),
          `${person.address} sees the messages in commit order`,
        );
        events.forEach((event, i) => {
          const isFromMe = senders[i] === person;
          assertEnvelope(event, { type: "message.received", chatGuid: chat, isFromMe });
          assertMessage(event.message, {
            guid: sent[i].guid,
            chatGuid: chat,
            text: sent[i].content.text,
            isFromMe,
            sender: senders[i].address,
          });
        });
      }

      const page = await alice.client.messages.listInChat(chat);
      assert.deepEqual(
        page.messages.map((x) => x.guid),
        [m.guid, b.guid, a.guid],
        "listInChat is newest first",
      );
      assert.deepEqual(page.messages.map((x) => x.isFromMe), [false, false, true], "alice's view");
    });

    test("subject, effect and formatting are stored, returned and delivered", async () => {
      const chat = await group();
      const head = await alice.head();
      const sent = await me.client.messages.sendText(chat, "Happy birthday!", {
        subject: "Today",
        effect: MessageEffect.confetti,
        formatting: [
          { type: "bold", start: 0, length: 5 },
          { type: "italic", start: 6, length: 9 },
        ],
      });
      const check = (message, who) => {
        assert.equal(message.subject, "Today", `${who}: subject`);
        assert.equal(message.content.expressiveSendStyleId, MessageEffect.confetti, `${who}: effect`);
        assert.deepEqual(
          message.content.formatting.map(({ type, start, length }) => ({ type, start, length })),
          [
            { type: "bold", start: 0, length: 5 },
            { type: "italic", start: 6, length: 9 },
          ],
          `${who}: formatting`,
        );
      };
      check(sent, "response");
      check((await eventsOfKind(alice, head, "message."))[0].message, "alice's event");
      check(await alice.client.messages.get(sent.guid), "alice's get");
    });

    test("newlines, tabs and non-ASCII text arrive unchanged; formatting counts UTF-16 units", async () => {
      const chat = await group();
      const text = "line one\n\tindented 👋 é\nline three";
      // "👋" is two UTF-16 code units: the range covers "indented 👋" exactly.
      const start = text.indexOf("indented");
      const length = "indented 👋".length;
      const sent = await me.client.messages.sendText(chat, text, { formatting: [{ type: "underline", start, length }] });
      assert.equal(sent.content.text, text);
      assert.equal((await bob.client.messages.get(sent.guid)).content.text, text);
    });

    test("messages.get is the caller's view; a non-member gets messageNotFound", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "whose view?");
      assertMessage(await me.client.messages.get(sent.guid), { guid: sent.guid, chatGuid: chat, text: "whose view?", isFromMe: true });
      assertMessage(await alice.client.messages.get(sent.guid), {
        guid: sent.guid,
        chatGuid: chat,
        text: "whose view?",
        isFromMe: false,
        sender: me.address,
      });
      await expectError(carol.client.messages.get(sent.guid), Errors.messageNotFound, { field: "messageGuid" });
    });

    test("a message from another device of mine is isFromMe in my log too", async () => {
      const chat = await group();
      const ipad = server.client(await server.createToken(me.address));
      const head = await me.head();
      const sent = await ipad.messages.sendText(chat, "from my iPad");
      const [event] = await me.eventsAfter(head);
      assertEnvelope(event, { type: "message.received", chatGuid: chat, isFromMe: true });
      assert.equal(event.message.guid, sent.guid);
      assert.equal(event.message.isFromMe, true);
    });
  });

  describe("chats.create with an initial message", () => {
    test("the initial message is a real message: every member gets message.received after the group's creation", async () => {
      const [mine, alices, bobs] = await heads(me, alice, bob);
      const { chat, initialMessage } = await me.chats.create([alice.address, bob.address, uniqueEmail()], {
        message: "welcome, all",
      });
      assertMessage(initialMessage, { chatGuid: chat.guid, text: "welcome, all", isFromMe: true });

      const myEvents = await me.eventsAfter(mine);
      assert.deepEqual(myEvents.map((e) => e.type), ["message.received"], "the creator: the message only");
      assert.equal(myEvents[0].message.guid, initialMessage.guid);
      assert.equal(myEvents[0].isFromMe, true);
      for (const [person, head] of [
        [alice, alices],
        [bob, bobs],
      ]) {
        const events = await person.eventsAfter(head);
        assert.deepEqual(
          events.map((e) => e.type),
          ["group.changed", "message.received"],
          `${person.address}: added to the group first, then the message`,
        );
        assertMessage(events[1].message, {
          guid: initialMessage.guid,
          chatGuid: chat.guid,
          text: "welcome, all",
          isFromMe: false,
          sender: me.address,
        });
      }
      const listed = await alice.client.messages.listInChat(chat.guid);
      assert.deepEqual(listed.messages.map((m) => m.guid), [initialMessage.guid]);
    });
  });

  describe("direct chats", () => {
    test("sending to any;-;ADDR without chats.create: the chat then exists for both sides", async () => {
      const dave = await server.person(uniqueEmail("dave"));
      const head = await dave.head();
      const sent = await me.client.messages.sendText(direct(dave.address), "hi dave");
      assertMessage(sent, { chatGuid: direct(dave.address), text: "hi dave", isFromMe: true });

      const events = await eventsOfKind(dave, head, "message.");
      assert.equal(events.length, 1);
      assertEnvelope(events[0], { type: "message.received", chatGuid: direct(me.address), isFromMe: false });
      assertMessage(events[0].message, {
        guid: sent.guid,
        chatGuid: direct(me.address),
        text: "hi dave",
        isFromMe: false,
        sender: me.address,
      });
      const seenByDave = await dave.chats.get(direct(me.address));
      assert.equal(seenByDave.isGroup, false);
      assert.deepEqual(seenByDave.participants.map((p) => p.address), [me.address]);
      assert.equal((await me.chats.get(direct(dave.address))).guid, direct(dave.address));

      const reply = await dave.client.messages.sendText(direct(me.address), "hi back", { replyTo: sent.guid });
      assert.equal(reply.replyTargetGuid, sent.guid, "the same message guid on both sides");
    });

    test("a direct chat with someone who is not an account works on my side", async () => {
      const guest = uniqueEmail("guest");
      const sent = await me.client.messages.sendText(direct(guest), "anyone there?");
      assertMessage(sent, { chatGuid: direct(guest), text: "anyone there?", isFromMe: true });
      assert.equal((await me.client.messages.get(sent.guid)).content.text, "anyone there?");
    });

    test("an unreachable address -> addressNotFound", async () => {
      const gone = uniqueEmail("gone");
      await server.markUnreachable(gone);
      await expectError(me.client.messages.sendText(direct(gone), "hello?"), Errors.addressNotFound, { address: gone });
    });
  });

  describe("replies", () => {
    test("replyTo a message of the chat: replyTargetGuid in the answer, every member's event and get", async () => {
      const chat = await group();
      const original = await me.client.messages.sendText(chat, "lunch?");
      const [mine, bobs] = await heads(me, bob);
      const reply = await alice.client.messages.sendText(chat, "yes!", { replyTo: original.guid });
      assert.equal(reply.replyTargetGuid, original.guid);
      for (const [person, head] of [
        [me, mine],
        [bob, bobs],
      ]) {
        const [event] = await eventsOfKind(person, head, "message.");
        assert.equal(event.message.replyTargetGuid, original.guid, `${person.address}'s event`);
      }
      assert.equal((await bob.client.messages.get(reply.guid)).replyTargetGuid, original.guid);

      // The object form names the same target.
      const again = await bob.client.messages.sendText(chat, "me too", { replyTo: { guid: original.guid } });
      assert.equal(again.replyTargetGuid, original.guid);
    });

    test("a reply to a reply points at its own target", async () => {
      const chat = await group();
      const first = await me.client.messages.sendText(chat, "a");
      const second = await alice.client.messages.sendText(chat, "b", { replyTo: first.guid });
      const third = await bob.client.messages.sendText(chat, "c", { replyTo: second.guid });
      assert.equal(third.replyTargetGuid, second.guid);
    });
  });

  describe("tapbacks", () => {
    test("setReaction adds one: the answer carries it; reactionAdded reaches every holder with the reactor as actor", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "react to me");
      const [mine, alices, bobs] = await heads(me, alice, bob);

      const reacted = await alice.client.messages.setReaction(chat, sent.guid, { kind: "love" }, true);
      assert.equal(reacted.guid, sent.guid);
      assert.equal(reacted.appliedReactions.length, 1, JSON.stringify(reacted.appliedReactions));
      const [applied] = reacted.appliedReactions;
      assert.equal(applied.reaction.kind, "love");
      assert.equal(applied.messageGuid, sent.guid);
      assert.equal(applied.isFromMe, true, "alice's own tapback, in alice's view");
      assertRecent(applied.dateCreated, "appliedReaction.dateCreated");

      for (const [person, head, isFromMe] of [
        [me, mine, false],
        [alice, alices, true],
        [bob, bobs, false],
      ]) {
        const events = await person.eventsAfter(head);
        assert.equal(events.length, 1, `${person.address}: ${JSON.stringify(events)}`);
        assertEnvelope(events[0], { type: "message.reactionAdded", chatGuid: chat, isFromMe, actor: alice.address });
        assert.equal(events[0].messageGuid, sent.guid);
        assert.equal(events[0].reaction.kind, "love");
      }

      const seenByMe = await me.client.messages.get(sent.guid);
      assert.equal(seenByMe.appliedReactions.length, 1);
      assert.equal(seenByMe.appliedReactions[0].isFromMe, false);
      assert.equal(seenByMe.appliedReactions[0].sender?.address, alice.address);
    });

    test("one tapback per person: another kind replaces it (reactionRemoved old, then reactionAdded new)", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "like or love?");
      await alice.client.messages.setReaction(chat, sent.guid, { kind: "love" }, true);
      const head = await me.head();

      const reacted = await alice.client.messages.setReaction(chat, sent.guid, { kind: "like" }, true);
      assert.deepEqual(reacted.appliedReactions.map((r) => r.reaction.kind), ["like"]);

      const events = await me.eventsAfter(head);
      assert.deepEqual(
        events.map((e) => [e.type, e.reaction?.kind]),
        [
          ["message.reactionRemoved", "love"],
          ["message.reactionAdded", "like"],
        ],
      );
      assert.deepEqual(events.map((e) => e.sequence), [head + 1, head + 2]);
      for (const e of events) assertEnvelope(e, { type: e.type, chatGuid: chat, isFromMe: false, actor: alice.address });
    });

    test("setting the tapback I already have changes nothing and records no event", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "twice?");
      const first = await alice.client.messages.setReaction(chat, sent.guid, { kind: "laugh" }, true);
      const before = await heads(me, alice, bob);
      const again = await alice.client.messages.setReaction(chat, sent.guid, { kind: "laugh" }, true);
      assert.deepEqual(again.appliedReactions, first.appliedReactions);
      assert.deepEqual(await heads(me, alice, bob), before);
    });

    test("several people's tapbacks sit side by side; an emoji tapback carries its emoji", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "party");
      await alice.client.messages.setReaction(chat, sent.guid, { kind: "emoji", emoji: "🎉" }, true);
      await bob.client.messages.setReaction(chat, sent.guid, { kind: "laugh" }, true);
      const mine = await me.client.messages.setReaction(chat, sent.guid, { kind: "emphasize" }, true);

      const byAddress = (message, self) =>
        Object.fromEntries(message.appliedReactions.map((r) => [r.isFromMe ? self : r.sender?.address, r.reaction]));
      assert.deepEqual(byAddress(mine, me.address), {
        [alice.address]: { kind: "emoji", emoji: "🎉" },
        [bob.address]: { kind: "laugh", emoji: undefined },
        [me.address]: { kind: "emphasize", emoji: undefined },
      });
      const bobsView = await bob.client.messages.get(sent.guid);
      assert.equal(bobsView.appliedReactions.length, 3);
      assert.equal(bobsView.appliedReactions.filter((r) => r.isFromMe).length, 1, "bob's own is isFromMe in bob's view");
    });

    test("every settable kind can be set and taken back", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "all kinds");
      for (const kind of ["love", "like", "dislike", "laugh", "emphasize", "question"]) {
        const set = await alice.client.messages.setReaction(chat, sent.guid, { kind }, true);
        assert.deepEqual(set.appliedReactions.map((r) => r.reaction.kind), [kind]);
      }
      const cleared = await alice.client.messages.setReaction(chat, sent.guid, { kind: "question" }, false);
      assert.deepEqual(cleared.appliedReactions, []);
    });

    test("removing: reactionRemoved to every holder; removing one that is not there succeeds with no event", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "take it back");
      await bob.client.messages.setReaction(chat, sent.guid, { kind: "dislike" }, true);
      const [mine, bobs] = await heads(me, bob);

      const removed = await bob.client.messages.setReaction(chat, sent.guid, { kind: "dislike" }, false);
      assert.deepEqual(removed.appliedReactions, []);
      for (const [person, head, isFromMe] of [
        [me, mine, false],
        [bob, bobs, true],
      ]) {
        const events = await person.eventsAfter(head);
        assert.equal(events.length, 1);
        assertEnvelope(events[0], { type: "message.reactionRemoved", chatGuid: chat, isFromMe, actor: bob.address });
        assert.equal(events[0].reaction.kind, "dislike");
        assert.equal(events[0].messageGuid, sent.guid);
      }

      const [mine2, bobs2] = await heads(me, bob);
      const again = await bob.client.messages.setReaction(chat, sent.guid, { kind: "dislike" }, false);
      assert.equal(again.guid, sent.guid);
      await bob.client.messages.setReaction(chat, sent.guid, { kind: "love" }, false);
      assert.deepEqual(await heads(me, bob), [mine2, bobs2], "nothing there, nothing changes");
    });
  });

  describe("edits", () => {
    test("editing my message: new text, dateEdited; message.edited to every holder; get shows the new text", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "teh typo", { formatting: [{ type: "bold", start: 0, length: 3 }] });
      const [mine, alices, bobs] = await heads(me, alice, bob);

      const edited = await me.client.messages.edit(chat, sent.guid, "the typo");
      assert.deepEqual(edited.content.formatting, [], "an edit clears the formatting");
      assert.equal(edited.guid, sent.guid);
      assert.equal(edited.content.text, "the typo");
      assertRecent(edited.dateEdited, "dateEdited");
      assert.ok(edited.dateEdited.getTime() >= sent.dateCreated.getTime(), "edited after it was sent");

      for (const [person, head, isFromMe] of [
        [me, mine, true],
        [alice, alices, false],
        [bob, bobs, false],
      ]) {
        const events = await person.eventsAfter(head);
        assert.equal(events.length, 1, `${person.address}: ${JSON.stringify(events)}`);
        assertEnvelope(events[0], { type: "message.edited", chatGuid: chat, isFromMe });
        assert.equal(events[0].messageGuid, sent.guid);
        assert.equal(events[0].content.text, "the typo");
        assertRecent(events[0].editedAt, "editedAt");
      }
      const seen = await alice.client.messages.get(sent.guid);
      assert.equal(seen.content.text, "the typo");
      assert.ok(seen.dateEdited instanceof Date, "dateEdited in others' view too");
    });

    test("up to 5 edits are allowed; the 6th -> preconditionFailed tooManyEdits", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "v0");
      for (let i = 1; i <= 5; i++) await me.client.messages.edit(chat, sent.guid, `v${i}`);
      const head = await alice.head();
      await expectError(me.client.messages.edit(chat, sent.guid, "v6"), Errors.preconditionFailed, {
        reason: "tooManyEdits",
      });
      assert.equal((await alice.client.messages.get(sent.guid)).content.text, "v5");
      assert.equal(await alice.head(), head, "no event for the refused edit");
    });
  });

  describe("unsend", () => {
    test("unsending my message: dateRetracted, content gone from get; message.unsent to every holder", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "oops, wrong chat", {
        formatting: [{ type: "bold", start: 0, length: 4 }],
      });
      const [mine, alices, bobs] = await heads(me, alice, bob);

      const answer = await me.client.messages.unsend(chat, sent.guid);
      assert.equal(answer, undefined, "an empty response");

      for (const [person, head, isFromMe] of [
        [me, mine, true],
        [alice, alices, false],
        [bob, bobs, false],
      ]) {
        const events = await person.eventsAfter(head);
        assert.equal(events.length, 1, `${person.address}: ${JSON.stringify(events)}`);
        assertEnvelope(events[0], { type: "message.unsent", chatGuid: chat, isFromMe });
        assert.equal(events[0].messageGuid, sent.guid);
        assertRecent(events[0].retractedAt, "retractedAt");

        const seen = await person.client.messages.get(sent.guid);
        assertRecent(seen.dateRetracted, "dateRetracted");
        assert.ok(!seen.content.text, `${person.address}: the text is gone, got ${JSON.stringify(seen.content.text)}`);
        assert.deepEqual(seen.content.formatting, [], "formatting cleared");
      }
    });

    test("the unsent message stays in the chat's list, retracted", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "now you see me");
      await me.client.messages.unsend(chat, sent.guid);
      const { messages } = await bob.client.messages.listInChat(chat);
      const listed = messages.find((m) => m.guid === sent.guid);
      assert.ok(listed, "still listed");
      assert.ok(listed.dateRetracted instanceof Date);
      assert.ok(!listed.content.text);
    });
  });

  describe("notifySilenced", () => {
    test("on an existing message: success and no event; unknown -> messageNotFound", async () => {
      const chat = await group();
      const sent = await me.client.messages.sendText(chat, "ping while focused");
      const before = await heads(me, alice, bob);
      await me.client.messages.notifySilenced(chat, sent.guid);
      assert.deepEqual(await heads(me, alice, bob), before, "no event");
      await expectError(
        me.client.messages.notifySilenced(chat, randomUUID().toUpperCase()),
        Errors.messageNotFound,
      );
    });
  });

  describe("guids", () => {
    test("every guid is an upper-case UUID v4 and unique", async () => {
      const chat = await group();
      const guids = [];
      for (let i = 0; i < 20; i++) guids.push((await me.client.messages.sendText(chat, `n${i}`)).guid);
      for (const guid of guids) assert.match(guid, MESSAGE_GUID);
      assert.equal(new Set(guids).size, guids.length);
    });
  });
});
