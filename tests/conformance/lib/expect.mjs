// Assertion helpers shared by the test files.

import assert from "node:assert/strict";

import {
  AuthenticationError,
  IMessageError,
  NotFoundError,
  ValidationError,
} from "@photon-ai/advanced-imessage/grpc";

/** gRPC status codes used by the contract. */
export const Status = Object.freeze({
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  UNAUTHENTICATED: 16,
});

/** Expected SDK error shapes for each row of docs/behaviour.md §3. */
export const Errors = Object.freeze({
  unauthenticated: { cls: AuthenticationError, code: "unauthenticated", grpcCode: Status.UNAUTHENTICATED },
  tokenBlocked: { cls: AuthenticationError, code: "tokenBlocked", grpcCode: Status.UNAUTHENTICATED },
  invalidArgument: { cls: ValidationError, code: "invalidArgument", grpcCode: Status.INVALID_ARGUMENT },
  chatNotFound: { cls: NotFoundError, code: "chatNotFound", grpcCode: Status.NOT_FOUND },
  addressNotFound: { cls: NotFoundError, code: "addressNotFound", grpcCode: Status.NOT_FOUND },
  messageNotFound: { cls: NotFoundError, code: "messageNotFound", grpcCode: Status.NOT_FOUND },
  groupIconNotFound: { cls: NotFoundError, code: "groupIconNotFound", grpcCode: Status.NOT_FOUND },
  operationNotSupported: { cls: ValidationError, code: "operationNotSupported", grpcCode: Status.FAILED_PRECONDITION },
  preconditionFailed: { cls: ValidationError, code: "preconditionFailed", grpcCode: Status.FAILED_PRECONDITION },
  duplicateMessage: { cls: ValidationError, code: "duplicateMessage", grpcCode: Status.FAILED_PRECONDITION },
  unimplemented: { cls: IMessageError, exactClass: true, code: "operationNotSupported", grpcCode: Status.UNIMPLEMENTED },
});

/**
 * Check one SDK error against an expected shape.
 * @param {unknown} err
 * @param {{cls: Function, exactClass?: boolean, code: string, grpcCode: number}} kind one of Errors.*
 * @param {Record<string, string | RegExp>} [context] expected context entries (lower-case keys)
 */
export function checkError(err, kind, context = {}) {
  const shown = describeError(err);
  assert.ok(err instanceof kind.cls, `expected ${kind.cls.name}, got ${shown}`);
  if (kind.exactClass) {
    assert.equal(err.constructor, kind.cls, `expected exactly ${kind.cls.name}, got ${shown}`);
  }
  assert.equal(err.code, kind.code, `error code; got ${shown}`);
  assert.equal(err.grpcCode, kind.grpcCode, `grpcCode; got ${shown}`);
  assert.equal(err.retryable, false, `retryable; got ${shown}`);
  for (const [key, expected] of Object.entries(context)) {
    const actual = err.context?.[key];
    if (expected instanceof RegExp) {
      assert.match(actual ?? "", expected, `context.${key}; got ${shown}`);
    } else {
      assert.equal(actual, expected, `context.${key}; got ${shown}`);
    }
  }
  return true;
}

/**
 * Await `promiseOrFn` and assert it rejects with the given error shape.
 * @returns {Promise<IMessageError>} the error, for further checks
 */
export async function expectError(promiseOrFn, kind, context = {}) {
  let caught;
  await assert.rejects(
    typeof promiseOrFn === "function" ? promiseOrFn : () => promiseOrFn,
    (err) => {
      caught = err;
      return checkError(err, kind, context);
    },
  );
  return caught;
}

export function describeError(err) {
  if (!(err instanceof Error)) return String(err);
  return `${err.constructor.name}(${JSON.stringify({
    message: err.message,
    code: err.code,
    grpcCode: err.grpcCode,
    retryable: err.retryable,
    context: err.context,
  })})`;
}

export const GROUP_GUID = /^any;\+;chat\d{18}$/;
export const GROUP_ID = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/;

/** Addresses of a chat's participants, in the order returned. */
export function addresses(chat) {
  return chat.participants.map((p) => p.address);
}

/**
 * Assert the invariant shape of a group Chat (docs/behaviour.md §5) and, when given,
 * its participants (exact order) and display name.
 */
export function assertGroupChat(chat, { participants, displayName } = {}) {
  assert.match(chat.guid, GROUP_GUID, "group guid format");
  assert.equal(chat.isGroup, true, "isGroup");
  assert.equal(chat.service, "iMessage", "service");
  assert.equal(chat.isArchived, false, "isArchived");
  assert.equal(chat.isFiltered, false, "isFiltered");
  assert.equal(chat.unreadCount ?? 0, 0, "unreadCount");
  if (chat.chatIdentifier !== undefined) {
    assert.equal(`any;+;${chat.chatIdentifier}`, chat.guid, "chatIdentifier matches guid");
  }
  if (chat.groupId !== undefined) assert.match(chat.groupId, GROUP_ID, "groupId is an upper-case UUID");
  for (const p of chat.participants) assert.equal(p.service, "iMessage", `service of participant ${p.address}`);
  if (participants) assert.deepEqual(addresses(chat), participants, "participants in join order");
  if (displayName !== undefined) assert.equal(chat.displayName, displayName, "displayName");
}

/** Assert `date` is a Date within a few seconds of now (committed during this test). */
export function assertRecent(date, what = "occurredAt") {
  assert.ok(date instanceof Date, `${what} is a Date`);
  const skew = Math.abs(Date.now() - date.getTime());
  assert.ok(skew < 30_000, `${what} ${date.toISOString()} should be close to now`);
}

/**
 * Assert a group event's envelope and change.
 * @param {object} event a GroupEvent from catchUp/subscribe
 * @param {{chatGuid: string, isFromMe: boolean, actor?: string, change: object}} expected
 *   `change` is compared field by field; `participant` may be given as an address string.
 */
export function assertGroupEvent(event, expected) {
  const shown = JSON.stringify(event);
  assert.equal(event.type, "group.changed", `event type; got ${shown}`);
  assert.equal(event.chatGuid, expected.chatGuid, `chatGuid; got ${shown}`);
  assert.equal(event.isFromMe, expected.isFromMe, `isFromMe; got ${shown}`);
  assertRecent(event.occurredAt);
  assert.ok(Number.isSafeInteger(event.sequence) && event.sequence >= 1, `sequence; got ${shown}`);
  if ("actor" in expected) assert.equal(event.actor?.address, expected.actor, `actor; got ${shown}`);
  const { participant, ...rest } = expected.change;
  for (const [key, value] of Object.entries(rest)) {
    assert.equal(event.change?.[key], value, `change.${key}; got ${shown}`);
  }
  if (participant !== undefined) {
    assert.equal(event.change.participant?.address, participant, `change.participant; got ${shown}`);
    assert.equal(event.change.participant?.service, "iMessage", `change.participant.service; got ${shown}`);
  }
}

/** Shorthand: assert a list of events matches a list of expectations, one to one. */
export function assertGroupEvents(events, expected) {
  assert.equal(
    events.length,
    expected.length,
    `expected ${expected.length} event(s), got ${JSON.stringify(events.map((e) => e.change ?? e.type))}`,
  );
  events.forEach((event, i) => assertGroupEvent(event, expected[i]));
}

/** Assert sequences are consecutive, starting right after `after`. */
export function assertConsecutive(events, after) {
  assert.deepEqual(
    events.map((e) => e.sequence),
    events.map((_, i) => after + i + 1),
    "sequences increase by exactly 1 with no gaps",
  );
}
