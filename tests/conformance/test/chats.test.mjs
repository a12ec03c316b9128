// docs/behaviour.md §2 (addresses) and §5: chats.create / chats.get / chats.count.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, punctuatePhone, uniqueEmail, uniquePhone } from "../lib/harness.mjs";
import { Errors, addresses, assertGroupChat, assertRecent, expectError } from "../lib/expect.mjs";

describe("chats", () => {
  /** @type {Server} */ let server;
  let me, alice, bob;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
  });
  after(() => server?.cleanup());

  describe("create a group", () => {
    test("two addresses make a group with me and them, in request order", async () => {
      const before = await me.chats.count();
      const others = [uniqueEmail(), uniquePhone()];
      const { chat, initialMessage } = await me.chats.create(others);

      assertGroupChat(chat, { participants: others, displayName: "" });
      assert.equal(initialMessage, undefined, "no initial message unless one was given");
      assert.equal(await me.chats.count(), before + 1, "count includes the new group");
    });

    test("chats.get returns the same group", async () => {
      const others = [uniqueEmail(), uniqueEmail(), uniquePhone()];
      const { chat } = await me.chats.create(others);
      const fetched = await me.chats.get(chat.guid);
      assertGroupChat(fetched, { participants: others, displayName: "" });
      assert.equal(fetched.guid, chat.guid);
      assert.equal(fetched.groupId, chat.groupId);
    });

    test("every member account sees the same group, listing the others but never itself", async () => {
      const guest = uniqueEmail();
      const { chat } = await me.chats.create([alice.address, bob.address, guest]);

      const seenByAlice = await alice.chats.get(chat.guid);
      assertGroupChat(seenByAlice);
      assert.equal(seenByAlice.guid, chat.guid);
      assert.equal(seenByAlice.groupId, chat.groupId, "group_id is shared by every account");
      assert.deepEqual(
        addresses(seenByAlice).sort(),
        [me.address, bob.address, guest].sort(),
        "alice sees everyone but herself",
      );
      assert.ok(!addresses(await bob.chats.get(chat.guid)).includes(bob.address), "bob is not listed to himself");
    });

    test("addresses are normalized: emails lower-cased, phone punctuation stripped", async () => {
      const email = uniqueEmail("Mixed.Case").replace("example.com", "Example.COM");
      const phone = uniquePhone();
      const { chat } = await me.chats.create([email, punctuatePhone(phone)]);
      assert.deepEqual(addresses(chat), [email.toLowerCase(), phone]);
    });

    test("the same participant set resolves to the same group, in any order", async () => {
      const [a, b] = [uniqueEmail(), uniquePhone()];
      const { chat: first } = await me.chats.create([a, b]);
      const count = await me.chats.count();

      const { chat: again } = await me.chats.create([b, a]);
      assert.equal(again.guid, first.guid);
      assert.equal(await me.chats.count(), count, "no new chat");

      const { chat: bigger } = await me.chats.create([a, b, uniqueEmail()]);
      assert.notEqual(bigger.guid, first.guid, "a different set is a different group");
    });

    test("an initial message is stored and returned", async () => {
      const before = Date.now();
      const { chat, initialMessage } = await me.chats.create([uniqueEmail(), uniqueEmail()], {
        message: "hello, group",
      });
      assertGroupChat(chat);
      assert.ok(initialMessage, "initialMessage returned");
      assert.equal(typeof initialMessage.guid, "string");
      assert.ok(initialMessage.guid.length > 0, "message guid");
      assert.equal(initialMessage.content.text, "hello, group");
      assert.equal(initialMessage.isFromMe, true);
      assert.equal(initialMessage.isSent, true);
      assertRecent(initialMessage.dateCreated, "dateCreated");
      assert.ok(initialMessage.dateCreated.getTime() >= before - 2_000);
    });

    test("31 others (32 members with me) is allowed", async () => {
      const others = Array.from({ length: 31 }, () => uniqueEmail("full"));
      const { chat } = await me.chats.create(others);
      assertGroupChat(chat, { participants: others });
    });
  });

  describe("create a direct chat", () => {
    test("one address makes the direct chat any;-;<address>", async () => {
      const address = uniquePhone();
      const { chat } = await me.chats.create([address]);
      assert.equal(chat.guid, `any;-;${address}`);
      assert.equal(chat.isGroup, false);
      assert.deepEqual(addresses(chat), [address]);
      assert.equal((await me.chats.get(chat.guid)).guid, chat.guid);
    });

    test("creating it again resolves the same direct chat", async () => {
      const address = uniqueEmail();
      const { chat } = await me.chats.create([address]);
      const count = await me.chats.count();
      const { chat: again } = await me.chats.create([address]);
      assert.equal(again.guid, chat.guid);
      assert.equal(await me.chats.count(), count);
    });
  });

  describe("create rejects", () => {
    const invalid = [
      "not-an-address",
      "bob",
      "bob@",
      "@example.com",
      "bob@example",
      "5550001111", // no '+': no country is guessed
      "12345", // short code
      "+0123456789", // first digit after '+' must be non-zero
      "+1234567", // too short: '+', one digit, then only 6 more
      "+1234567890123456", // too long: 16 digits
      "+1555abc1234",
    ];
    for (const bad of invalid) {
      test(`invalid address ${JSON.stringify(bad)} -> invalidArgument field=addresses`, async () => {
        await expectError(me.chats.create([uniqueEmail(), bad]), Errors.invalidArgument, {
          field: "addresses",
          address: bad,
        });
      });
    }

    test("an invalid single address (direct chat) -> invalidArgument", async () => {
      await expectError(me.chats.create(["not-an-address"]), Errors.invalidArgument, {
        field: "addresses",
        address: "not-an-address",
      });
    });

    test("duplicate addresses -> invalidArgument", async () => {
      const dup = uniqueEmail();
      await expectError(me.chats.create([dup, uniqueEmail(), dup]), Errors.invalidArgument, { address: dup });
    });

    test("duplicates after normalization -> invalidArgument", async () => {
      const email = uniqueEmail("dupcase");
      await expectError(me.chats.create([email, email.toUpperCase()]), Errors.invalidArgument);
      const phone = uniquePhone();
      await expectError(me.chats.create([phone, punctuatePhone(phone)]), Errors.invalidArgument);
    });

    test("including myself -> preconditionFailed alreadyParticipant", async () => {
      await expectError(me.chats.create([uniqueEmail(), me.address]), Errors.preconditionFailed, {
        reason: "alreadyParticipant",
      });
    });

    test("an unreachable address -> NotFoundError addressNotFound naming it", async () => {
      const gone = uniqueEmail("unreachable");
      await server.markUnreachable(gone);
      await expectError(me.chats.create([uniqueEmail(), gone]), Errors.addressNotFound, { address: gone });
      await expectError(me.chats.create([gone]), Errors.addressNotFound, { address: gone });
    });

    test("32 others (33 members with me) -> preconditionFailed groupFull limit=32", async () => {
      const others = Array.from({ length: 32 }, () => uniqueEmail("over"));
      await expectError(me.chats.create(others), Errors.preconditionFailed, { reason: "groupFull", limit: "32" });
    });

    test("a rejected create changes nothing", async () => {
      const count = await me.chats.count();
      const aliceCount = await alice.chats.count();
      const heads = [await me.head(), await alice.head()];
      await expectError(me.chats.create([alice.address, "nope"]), Errors.invalidArgument);
      assert.equal(await me.chats.count(), count);
      assert.equal(await alice.chats.count(), aliceCount);
      assert.deepEqual([await me.head(), await alice.head()], heads, "no events appended");
    });
  });

  describe("get and count", () => {
    test("an unknown group -> NotFoundError chatNotFound with context chatguid", async () => {
      const guid = "any;+;chat000000000000000000";
      await expectError(me.chats.get(guid), Errors.chatNotFound, { chatguid: guid });
    });

    test("a direct chat never created -> chatNotFound", async () => {
      const guid = `any;-;${uniquePhone()}`;
      await expectError(me.chats.get(guid), Errors.chatNotFound, { chatguid: guid });
    });

    test("a group I am not in is invisible to me", async () => {
      const { chat } = await alice.chats.create([uniqueEmail(), uniqueEmail()]);
      await expectError(me.chats.get(chat.guid), Errors.chatNotFound, { chatguid: chat.guid });
    });

    test("count is per account and includeArchived counts at least as many", async () => {
      const carol = await server.person(uniqueEmail("carol"));
      assert.equal(await carol.chats.count(), 0);
      await carol.chats.create([uniqueEmail(), uniqueEmail()]);
      await carol.chats.create([uniquePhone()]);
      assert.equal(await carol.chats.count(), 2);
      assert.equal(await carol.chats.count({ includeArchived: true }), 2, "nothing is archived");
    });
  });
});
