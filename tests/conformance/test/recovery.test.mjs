// docs/behaviour.md §7 (last rule) and docs/behaviour.md §10 invariants 4 and 5: the public docs' recovery flow.
//
// A consumer keeps a checkpoint C (the last sequence it has fully handled). To (re)connect it
// opens the live stream FIRST (groups.subscribeEvents), then runs events.catchUp(C)
// concurrently, feeds both into one handler that dedupes by sequence, and advances its
// checkpoint only contiguously (C+1, C+2, …), holding anything that arrives early. While it
// does that, other accounts keep changing groups the consumer is in, so the hand-off between
// catch-up and live races real commits. Every disconnect throws away everything but the
// checkpoint, exactly like a crashed consumer, and the next round starts from it.
//
// At the end the consumer must have handled every sequence from its first checkpoint to the
// final head exactly once, in order, with the same content as a final catchUp(0).
//
// "Live" is observed as the stream's first frame: an event, or a heartbeat (the server runs
// with --heartbeat-secs 1; while writers are busy the first event comes sooner). Rounds that
// wait for it must hand off with no gap: every event after the catch-up head arrives live.
// Rounds that do not wait must still be correct; if the server happened to register the live
// stream only after the catch-up froze its head, the consumer must stall at that head (never
// skip the gap) and the next round's catch-up fills it.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isDeepStrictEqual } from "node:util";

import { Server, catchUp, uniqueEmail } from "../lib/harness.mjs";
import { assertConsecutive } from "../lib/expect.mjs";
import { png } from "../lib/images.mjs";

const STEP_TIMEOUT_MS = 5_000;
/** Events a round must receive live, past its catch-up head, before it disconnects. */
const LIVE_ADVANCE = 5;

/** A level-triggered wake-up: `wait(ms)` resolves on the next `notify()` or after ms. */
class Signal {
  #resolve;
  #promise;
  constructor() {
    this.#arm();
  }
  #arm() {
    this.#promise = new Promise((resolve) => (this.#resolve = resolve));
  }
  notify() {
    const resolve = this.#resolve;
    this.#arm();
    resolve();
  }
  /** Resolve when `predicate()` holds; reject with `describe()` after the timeout. */
  async until(predicate, what, describe = () => "", timeoutMs = STEP_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate()) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${describe()}`);
      let timer;
      await Promise.race([this.#promise, new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }
}

/** The docs' consumer: dedupe by sequence, advance the checkpoint only contiguously. */
class Consumer {
  constructor(checkpoint) {
    this.start = checkpoint;
    this.checkpoint = checkpoint;
    /** Events handed to the application, in the order it saw them. */
    this.delivered = [];
    /** Arrived ahead of the checkpoint; lost on disconnect (only the checkpoint is kept). */
    this.pending = new Map();
    this.duplicates = 0;
    /** Two copies of one sequence that differ, and other contract breaches seen in flight. */
    this.problems = [];
  }

  offer(event, source) {
    const seq = event.sequence;
    if (!Number.isSafeInteger(seq) || seq < 1) {
      this.problems.push(`${source}: bad sequence ${JSON.stringify(event)}`);
      return;
    }
    if (seq <= this.checkpoint) {
      this.duplicates += 1;
      const handled = seq > this.start ? this.delivered[seq - this.start - 1] : undefined;
      if (handled && !isDeepStrictEqual(handled, event)) {
        this.problems.push(`${source}: seq ${seq} differs from the copy already handled`);
      }
      return;
    }
    const held = this.pending.get(seq);
    if (held) {
      this.duplicates += 1;
      if (!isDeepStrictEqual(held, event)) this.problems.push(`${source}: seq ${seq} differs from the held copy`);
      return;
    }
    this.pending.set(seq, event);
    while (this.pending.has(this.checkpoint + 1)) {
      const next = this.pending.get(this.checkpoint + 1);
      this.pending.delete(this.checkpoint + 1);
      this.delivered.push(next);
      this.checkpoint += 1;
    }
  }

  /** A disconnect: everything but the checkpoint is gone. */
  forget() {
    this.pending.clear();
  }

  describe() {
    const held = [...this.pending.keys()].sort((a, b) => a - b);
    return `checkpoint ${this.checkpoint}, held ${held.length} [${held.slice(0, 5).join(",")}${held.length > 5 ? ",…" : ""}]`;
  }
}

/**
 * Other accounts changing groups the consumer is in, as fast as they can, until paused.
 * Every operation appends exactly one event to each member's log (rename, add, icon, remove,
 * icon removal on a group that has an icon).
 */
class Writers {
  writes = 0;
  error = undefined;
  #plans;
  #loops = [];
  #running = false;
  #round = 0;

  /** @param {Array<{person: any, groups: string[]}>} plans */
  constructor(plans) {
    this.#plans = plans;
  }

  start() {
    assert.equal(this.#running, false, "writers already running");
    this.#running = true;
    this.#round += 1;
    this.#loops = this.#plans.map((plan, i) => this.#loop(plan, `w${i}r${this.#round}`));
  }

  async #loop({ person, groups }, tag) {
    let n = 0;
    const guests = new Map();
    try {
      while (this.#running) {
        for (const guid of groups) {
          if (!this.#running) break;
          // Each group cycles rename → add → icon → remove → remove icon (5 events).
          switch (n % 5) {
            case 0:
              await person.groups.setDisplayName(guid, `${tag} #${n}`);
              break;
            case 1: {
              const guest = uniqueEmail("rec");
              guests.set(guid, guest);
              await person.groups.addParticipants(guid, [guest]);
              break;
            }
            case 2:
              await person.groups.setIcon(guid, png(n));
              break;
            case 3:
              await person.groups.removeParticipants(guid, [guests.get(guid)]);
              break;
            case 4:
              await person.groups.removeIcon(guid);
              break;
          }
          this.writes += 1;
        }
        n += 1;
      }
    } catch (err) {
      this.error ??= err;
      this.#running = false;
    }
  }

  /** Stop after the operations in flight; rethrow a writer's failure. */
  async pause() {
    this.#running = false;
    await Promise.all(this.#loops);
    if (this.error) throw this.error;
  }
}

describe("recovery flow: live first, then catch-up from a checkpoint, dedupe by sequence", () => {
  /** @type {Server} */ let server;
  let me, alice, bob;
  let writers;
  /** A group alice made with me in it (alice writes to it while writers run). */
  let g1;

  before(async () => {
    server = await Server.start({ heartbeatSecs: 1 });
    me = server.me();
    alice = await server.person("alice@example.com");
    bob = await server.person("bob@example.com");

    // Groups others made with me in them: creation gives me participantAdded for myself.
    g1 = (await alice.chats.create([me.address, bob.address, uniqueEmail()])).chat.guid;
    const g2 = (await alice.chats.create([me.address, uniqueEmail(), uniqueEmail()])).chat.guid;
    const g3 = (await bob.chats.create([me.address, alice.address, uniqueEmail()])).chat.guid;
    const g4 = (await bob.chats.create([me.address, uniqueEmail(), uniqueEmail()])).chat.guid;
    await alice.groups.setDisplayName(g1, "setup");
    await bob.groups.setIcon(g3, png(1));
    await bob.groups.removeIcon(g3);
    // Four concurrent writer loops (two per account, one group each): commits interleave and
    // share group commits, so one commit often carries several of my events.
    writers = new Writers([
      { person: alice, groups: [g1] },
      { person: alice, groups: [g2] },
      { person: bob, groups: [g3] },
      { person: bob, groups: [g4] },
    ]);
  });

  after(async () => {
    await writers?.pause().catch(() => {});
    await server?.cleanup();
  });

  /**
   * One connection of the consumer: live stream first, catch-up from its checkpoint
   * concurrently, then live hand-off, then a disconnect.
   * @param {Consumer} consumer
   * @param {{waitLive: boolean, overlap?: boolean, disconnect: "close" | "break" | "restart"}} how
   *   `overlap`: wait for a live event (not just the first frame, which the server sends as an
   *   immediate heartbeat) before catching up, so the two sources are sure to overlap.
   */
  async function round(consumer, { waitLive, overlap = false, disconnect }) {
    const signal = new Signal();
    let heartbeats = 0;
    const client = server.client(me.token, {
      onHeartbeat: () => {
        heartbeats += 1;
        signal.notify();
      },
    });
    const liveSeqs = [];
    let liveError;
    let liveEnded = false;
    let breakRequested = false;
    let expectingEnd = false;

    const live = client.groups.subscribeEvents();
    const liveDone = (async () => {
      try {
        for await (const event of live) {
          liveSeqs.push(event.sequence);
          consumer.offer(event, "live");
          signal.notify();
          if (breakRequested) break; // abandon the iteration: the SDK cancels the call
        }
      } catch (err) {
        liveError = err;
      } finally {
        liveEnded = true;
        signal.notify();
      }
    })();
    const state = () =>
      `${consumer.describe()}; live: ${liveSeqs.length} event(s) from ${liveSeqs[0]}, ${heartbeats} heartbeat(s), ` +
      `ended ${liveEnded}${liveError ? ` with ${liveError.message}` : ""}; writes ${writers.writes}` +
      `${writers.error ? `, writer failed: ${writers.error.message}` : ""}`;
    const liveProblem = () => {
      if (liveEnded && !expectingEnd) {
        throw new Error(`the live stream ended during the round: ${state()}`);
      }
      return false;
    };

    if (waitLive) {
      await signal.until(
        () => liveProblem() || (!overlap && heartbeats > 0) || liveSeqs.length > 0,
        overlap ? "the live stream's first event" : "the live stream's first frame",
        state,
      );
    }

    // Catch-up from the checkpoint, concurrently with the live stream already running.
    const from = consumer.checkpoint;
    const catchUpSeqs = [];
    let head;
    for await (const frame of client.events.catchUp(from)) {
      if (frame.type === "catchup.complete") {
        assert.equal(head, undefined, "exactly one catchup.complete");
        head = frame.headSequence;
      } else {
        assert.equal(head, undefined, "no event after catchup.complete");
        catchUpSeqs.push(frame.sequence);
        consumer.offer(frame, "catchUp");
      }
    }
    assert.ok(Number.isSafeInteger(head), `catchUp(${from}) ended with catchup.complete`);
    assert.deepEqual(
      catchUpSeqs,
      Array.from({ length: head - from }, (_, i) => from + i + 1),
      `catchUp(${from}) sent exactly ${from + 1}..${head}`,
    );
    assert.ok(consumer.checkpoint >= head, `after catch-up the checkpoint reaches its head ${head}: ${state()}`);

    // The hand-off: does the live stream continue right after the catch-up head?
    await signal.until(() => liveProblem() || liveSeqs.length > 0, "a live event", state);
    const raced = liveSeqs[0] > head + 1;
    if (waitLive) {
      assert.ok(!raced, `a stream seen live before catchUp started covers head+1=${head + 1}: ${state()}`);
    }
    if (!raced) {
      await signal.until(
        () => liveProblem() || consumer.checkpoint >= head + LIVE_ADVANCE,
        `the checkpoint to pass the catch-up head ${head} by ${LIVE_ADVANCE} with live events only`,
        state,
      );
    } else {
      // Registered after catch-up froze its head: events head+1..first-1 were never offered.
      await signal.until(() => liveProblem() || liveSeqs.length >= LIVE_ADVANCE, `${LIVE_ADVANCE} live events`, state);
      assert.equal(consumer.checkpoint, head, `the consumer must stall at the gap, not skip it: ${state()}`);
    }

    // Disconnect.
    expectingEnd = true;
    if (disconnect === "close") {
      await live.close();
    } else if (disconnect === "break") {
      breakRequested = true;
    } else if (disconnect === "restart") {
      await writers.pause();
      await server.restart(); // closes this client first, then SIGTERM; new port afterwards
    }
    await signal.until(() => liveEnded, `the live stream to end after ${disconnect}`, state);
    await liveDone;
    if (disconnect !== "restart") {
      assert.equal(liveError, undefined, `closing the live stream is not an error: ${state()}`);
      await client.close();
    }

    // Within one live stream (no filter) sequences are consecutive: nothing skipped, no repeats.
    assertConsecutive(
      liveSeqs.map((sequence) => ({ sequence })),
      liveSeqs[0] - 1,
    );
    assert.deepEqual(consumer.problems, [], "duplicate copies are identical");
    assertConsecutive(consumer.delivered, consumer.start);
    consumer.forget();
    return { head, raced, live: liveSeqs.length, caughtUp: catchUpSeqs.length };
  }

  /** Final reconnect with writers stopped, then the whole log must equal what was handled. */
  async function drainAndCompare(consumer) {
    await writers.pause();
    const signal = new Signal();
    let heartbeats = 0;
    const client = server.client(me.token, {
      onHeartbeat: () => {
        heartbeats += 1;
        signal.notify();
      },
    });
    const liveSeqs = [];
    let liveEnded = false;
    const live = client.groups.subscribeEvents();
    const liveDone = (async () => {
      try {
        for await (const event of live) {
          liveSeqs.push(event.sequence);
          consumer.offer(event, "live");
          signal.notify();
        }
      } finally {
        liveEnded = true;
        signal.notify();
      }
    })();
    // Idle now, so the first heartbeat is the proof the stream is registered.
    await signal.until(() => heartbeats > 0 || liveEnded, "the first heartbeat on an idle stream");
    assert.equal(liveEnded, false, "the live stream is open");
    const { events: tail, head } = await catchUp(client, consumer.checkpoint);
    for (const event of tail) consumer.offer(event, "catchUp");
    assert.equal(consumer.checkpoint, head, `the final catch-up brings the checkpoint to the head ${head}`);

    // The log from scratch, and what the consumer handled, must be the same events.
    const full = await catchUp(client, 0);
    assert.equal(full.head, head, "nothing written since");
    assertConsecutive(full.events, 0);
    assert.equal(consumer.delivered.length, head - consumer.start, "every sequence handled once");
    assertConsecutive(consumer.delivered, consumer.start);
    assert.deepEqual(consumer.delivered, full.events.slice(consumer.start), "same content as catchUp(0)");
    assert.deepEqual(consumer.problems, []);

    // And the live stream of this last connection still works: one more change arrives live.
    await alice.groups.setDisplayName(g1, "after the race");
    await signal.until(() => consumer.checkpoint === head + 1, "the next change, live", () => consumer.describe());
    assert.deepEqual(liveSeqs, [head + 1]);
    await live.close();
    await liveDone;
    await client.close();
    return head;
  }

  test("hand-offs racing continuous writes: every sequence once, in order, same content as catchUp(0)", async (t) => {
    const start = (await me.head()) - 3; // a checkpoint with a backlog behind it
    assert.ok(start >= 1, "setup produced events");
    const consumer = new Consumer(start);
    writers.start();

    const plan = [
      { waitLive: true, overlap: true, disconnect: "close" }, // first: backlog + live overlap guaranteed
      { waitLive: false, disconnect: "close" },
      { waitLive: true, disconnect: "break" },
      { waitLive: false, disconnect: "break" },
      { waitLive: false, disconnect: "close" },
      { waitLive: true, disconnect: "close" },
    ];
    const rounds = [];
    for (const how of plan) {
      rounds.push({ ...how, ...(await round(consumer, how)) });
      if (rounds.length === 1) {
        assert.ok(consumer.duplicates > 0, "the first hand-off overlapped: some events came both live and from catch-up");
      }
    }
    t.diagnostic(`rounds: ${JSON.stringify(rounds)}; duplicates dropped: ${consumer.duplicates}; writes: ${writers.writes}`);

    const head = await drainAndCompare(consumer);
    assert.ok(head - start > plan.length * LIVE_ADVANCE, "a real amount of traffic went through");
  });

  test("the same flow across a server restart loses nothing", async (t) => {
    const start = (await me.head()) - 2;
    const consumer = new Consumer(start);
    writers.start();

    const rounds = [];
    rounds.push(await round(consumer, { waitLive: true, disconnect: "close" }));
    // Mid-stream restart: writers pause, the server stops (SIGTERM) and starts on the same data
    // directory; the consumer only has its checkpoint.
    rounds.push(await round(consumer, { waitLive: false, disconnect: "restart" }));
    assert.equal(server.lastExitCode, 0, "graceful stop");
    const beforeRestart = consumer.delivered.length;
    writers.start(); // clients follow the new port
    rounds.push(await round(consumer, { waitLive: false, disconnect: "close" }));
    rounds.push(await round(consumer, { waitLive: true, disconnect: "break" }));
    t.diagnostic(`rounds: ${JSON.stringify(rounds)}; duplicates dropped: ${consumer.duplicates}`);

    const head = await drainAndCompare(consumer);
    assert.ok(beforeRestart > 0 && head - start > beforeRestart, "events handled on both sides of the restart");
  });
});
