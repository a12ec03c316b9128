// docs/behaviour.md §4 addParticipants / removeParticipants.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, uniqueEmail, uniquePhone } from "../lib/harness.mjs";
import {
  Errors,
  addresses,
  assertConsecutive,
  assertGroupChat,
  assertGroupEvents,
  expectError,
} from "../lib/expect.mjs";

describe("participants", () => {
  /** @type {Server} */ let server;
  let me, alice, bob;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("+15550001111");
  });
  after(() => server?.cleanup());

  /** A new group of me + `others` (alice first, so her log sees every change). */
  async function newGroup(extra = 1) {
    const others = [alice.address, ...Array.from({ length: extra }, () => uniqueEmail())];
    const { chat } = await me.chats.create(others);
    return { guid: chat.guid, others };
  }

  /** Assert that a rejected call left the group and every log untouched. */
  async function expectUnchanged(guid, others, action) {
    const heads = [await me.head(), await alice.head(), await bob.head()];
    await action();
    assert.deepEqual(addresses(await me.chats.get(guid)), others, "participants unchanged");
    assert.deepEqual([await me.head(), await alice.head(), await bob.head()], heads, "no events appended");
  }

  describe("addParticipants", () => {
    test("appends the new members in request order and returns the chat", async () => {
      const { guid, others } = await newGroup();
      const added = [uniquePhone(), uniqueEmail()];
      const chat = await me.groups.addParticipants(guid, added);
      assertGroupChat(chat, { participants: [...others, ...added] });
      assert.equal(chat.guid, guid);
      assert.deepEqual(addresses(await me.chats.get(guid)), [...others, ...added]);
    });

    test("one participantAdded per address, in request order, in every member's log", async () => {
      const { guid } = await newGroup();
      const added = [uniqueEmail(), uniquePhone(), uniqueEmail()];
      const [myHead, aliceHead] = [await me.head(), await alice.head()];

      await me.groups.addParticipants(guid, added);

      const mine = await me.eventsAfter(myHead);
      assertGroupEvents(
        mine,
        added.map((participant) => ({
          chatGuid: guid,
          isFromMe: true,
          actor: me.address,
          change: { type: "participantAdded", participant },
        })),
      );
      assertConsecutive(mine, myHead);
      assertGroupEvents(
        await alice.eventsAfter(aliceHead),
        added.map((participant) => ({
          chatGuid: guid,
          isFromMe: false,
          actor: me.address,
          change: { type: "participantAdded", participant },
        })),
      );
    });

    test("an added account sees the group and a participantAdded for itself", async () => {
      const { guid } = await newGroup();
      await expectError(bob.chats.get(guid), Errors.chatNotFound);
      const bobHead = await bob.head();

      await alice.groups.addParticipants(guid, [bob.address]);

      assertGroupChat(await bob.chats.get(guid));
      assertGroupEvents(await bob.eventsAfter(bobHead), [
        { chatGuid: guid, isFromMe: false, actor: alice.address, change: { type: "participantAdded", participant: bob.address } },
      ]);
    });

    test("addresses are normalized before they are stored", async () => {
      const { guid, others } = await newGroup();
      const email = uniqueEmail("Upper").toUpperCase();
      const chat = await me.groups.addParticipants(guid, [email]);
      assert.deepEqual(addresses(chat), [...others, email.toLowerCase()]);
    });

    test("an invalid address -> invalidArgument field=addresses address=<input>", async () => {
      const { guid, others } = await newGroup();
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.addParticipants(guid, ["not-an-address"]), Errors.invalidArgument, {
          field: "addresses",
          address: "not-an-address",
        }),
      );
      await expectError(me.groups.addParticipants(guid, ["5551234567"]), Errors.invalidArgument, {
        field: "addresses",
        address: "5551234567",
      });
    });

    test("a duplicate within the request -> invalidArgument", async () => {
      const { guid, others } = await newGroup();
      const dup = uniqueEmail();
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.addParticipants(guid, [dup, dup]), Errors.invalidArgument, { address: dup }),
      );
      await expectError(me.groups.addParticipants(guid, [dup, dup.toUpperCase()]), Errors.invalidArgument);
    });

    test("an existing participant -> preconditionFailed reason=alreadyParticipant", async () => {
      const { guid, others } = await newGroup();
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.addParticipants(guid, [alice.address]), Errors.preconditionFailed, {
          reason: "alreadyParticipant",
          address: alice.address,
        }),
      );
      await expectError(
        me.groups.addParticipants(guid, [alice.address.toUpperCase()]),
        Errors.preconditionFailed,
        { reason: "alreadyParticipant" },
      );
    });

    test("adding me -> preconditionFailed reason=alreadyParticipant", async () => {
      const { guid, others } = await newGroup();
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.addParticipants(guid, [me.address]), Errors.preconditionFailed, {
          reason: "alreadyParticipant",
          address: me.address,
        }),
      );
    });

    test("an unreachable address -> NotFoundError addressNotFound naming it", async () => {
      const { guid, others } = await newGroup();
      const gone = uniquePhone();
      await server.markUnreachable(gone);
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.addParticipants(guid, [gone]), Errors.addressNotFound, { address: gone }),
      );
    });

    test("a full group (32 members with me) -> preconditionFailed reason=groupFull limit=32", async () => {
      const { guid } = await newGroup(29); // 30 others
      const chat = await me.groups.addParticipants(guid, [uniqueEmail()]); // 31 others + me = 32
      assert.equal(chat.participants.length, 31);
      await expectUnchanged(guid, addresses(chat), () =>
        expectError(me.groups.addParticipants(guid, [uniqueEmail()]), Errors.preconditionFailed, {
          reason: "groupFull",
          limit: "32",
        }),
      );
    });

    test("a request that would overflow the group adds nobody", async () => {
      const { guid, others } = await newGroup(29); // 30 others
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.addParticipants(guid, [uniqueEmail(), uniqueEmail()]), Errors.preconditionFailed, {
          reason: "groupFull",
          limit: "32",
        }),
      );
    });

    test("all-or-nothing: one bad address in the request adds nobody", async () => {
      const { guid, others } = await newGroup();
      const gone = uniqueEmail("gone");
      await server.markUnreachable(gone);
      const good = () => uniqueEmail("good");
      const cases = [
        { addresses: [good(), "bad address"], error: Errors.invalidArgument },
        { addresses: [good(), gone], error: Errors.addressNotFound },
        { addresses: [good(), alice.address], error: Errors.preconditionFailed },
        { addresses: [good(), me.address], error: Errors.preconditionFailed },
      ];
      for (const { addresses: list, error } of cases) {
        await expectUnchanged(guid, others, () => expectError(me.groups.addParticipants(guid, list), error));
      }
    });
  });

  describe("removeParticipants", () => {
    test("removes a member, returns the chat, and logs participantRemoved (actor = me)", async () => {
      const { guid, others } = await newGroup(3); // alice + 3 others
      const victim = others[2];
      const [myHead, aliceHead] = [await me.head(), await alice.head()];

      const chat = await me.groups.removeParticipants(guid, [victim]);

      const remaining = others.filter((a) => a !== victim);
      assertGroupChat(chat, { participants: remaining });
      assert.deepEqual(addresses(await me.chats.get(guid)), remaining);
      const change = { type: "participantRemoved", participant: victim };
      assertGroupEvents(await me.eventsAfter(myHead), [
        { chatGuid: guid, isFromMe: true, actor: me.address, change },
      ]);
      assertGroupEvents(await alice.eventsAfter(aliceHead), [
        { chatGuid: guid, isFromMe: false, actor: me.address, change },
      ]);
    });

    test("several at once: one event per address, in request order", async () => {
      const { guid, others } = await newGroup(4); // 5 others
      const victims = [others[3], others[1]];
      const myHead = await me.head();
      const chat = await me.groups.removeParticipants(guid, victims);
      assert.deepEqual(addresses(chat), others.filter((a) => !victims.includes(a)));
      assertGroupEvents(
        await me.eventsAfter(myHead),
        victims.map((participant) => ({
          chatGuid: guid,
          isFromMe: true,
          actor: me.address,
          change: { type: "participantRemoved", participant },
        })),
      );
    });

    test("a removed member can be added back, at the end", async () => {
      const { guid, others } = await newGroup(3);
      await me.groups.removeParticipants(guid, [others[1]]);
      const chat = await me.groups.addParticipants(guid, [others[1]]);
      assert.deepEqual(addresses(chat), [others[0], others[2], others[3], others[1]]);
    });

    test("not a participant -> preconditionFailed reason=notParticipant", async () => {
      const { guid, others } = await newGroup(3);
      const stranger = uniqueEmail("stranger");
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.removeParticipants(guid, [stranger]), Errors.preconditionFailed, {
          reason: "notParticipant",
          address: stranger,
        }),
      );
    });

    test("removing myself -> preconditionFailed reason=useLeave", async () => {
      const { guid, others } = await newGroup(3);
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.removeParticipants(guid, [me.address]), Errors.preconditionFailed, {
          reason: "useLeave",
        }),
      );
    });

    test("me + 3 others: removing 1 is allowed, removing 2 is groupTooSmall", async () => {
      const { guid, others } = await newGroup(2); // 3 others
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.removeParticipants(guid, [others[1], others[2]]), Errors.preconditionFailed, {
          reason: "groupTooSmall",
        }),
      );
      const chat = await me.groups.removeParticipants(guid, [others[2]]);
      assert.deepEqual(addresses(chat), [others[0], others[1]]);
    });

    test("me + 2 others: removing anyone is groupTooSmall", async () => {
      const { guid, others } = await newGroup(1); // 2 others
      await expectUnchanged(guid, others, () =>
        expectError(me.groups.removeParticipants(guid, [others[1]]), Errors.preconditionFailed, {
          reason: "groupTooSmall",
        }),
      );
    });

    test("an invalid address -> invalidArgument; a duplicate -> invalidArgument", async () => {
      const { guid, others } = await newGroup(3);
      await expectUnchanged(guid, others, async () => {
        await expectError(me.groups.removeParticipants(guid, ["bogus"]), Errors.invalidArgument, {
          field: "addresses",
          address: "bogus",
        });
        await expectError(me.groups.removeParticipants(guid, [others[1], others[1]]), Errors.invalidArgument, {
          address: others[1],
        });
      });
    });

    test("all-or-nothing: one non-member in the request removes nobody", async () => {
      const { guid, others } = await newGroup(4);
      await expectUnchanged(guid, others, () =>
        expectError(
          me.groups.removeParticipants(guid, [others[1], uniqueEmail("nobody")]),
          Errors.preconditionFailed,
          { reason: "notParticipant" },
        ),
      );
    });
  });
});
