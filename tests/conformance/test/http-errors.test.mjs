// Bad input on the HTTP surface: every failure is the JSON error body of docs/protocol.md §6.3
// (code, message, errorCode, retryable, context, requestId) with the matching HTTP status;
// never a bare 500, HTML or plain text. Plus the raw wire facts the SDK relies on.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { REPO_ROOT, Server, uniqueEmail } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";
import { png, pngOfSize } from "../lib/images.mjs";

const CODES = new Set([
  "cancelled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
  "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
  "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
]);

function assertErrorBody(res, json, { status, code, errorCode, context = {} }) {
  const shown = JSON.stringify({ status: res.status, json });
  assert.equal(res.status, status, shown);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/, shown);
  assert.ok(CODES.has(json.code), shown);
  assert.equal(json.code, code, shown);
  assert.equal(json.errorCode, errorCode, shown);
  assert.equal(typeof json.message, "string", shown);
  assert.ok(json.message.length > 0 && json.message[0] === json.message[0].toLowerCase(), `lower-case message: ${shown}`);
  assert.equal(typeof json.retryable, "boolean", shown);
  assert.equal(typeof json.context, "object", shown);
  assert.equal(typeof json.requestId, "string", shown);
  assert.equal(res.headers.get("x-request-id"), json.requestId, shown);
  for (const [k, v] of Object.entries(context)) assert.equal(json.context[k], v, `context.${k}: ${shown}`);
}

describe("HTTP bad input", () => {
  /** @type {Server} */ let server;
  let me, base, auth, guid;

  before(async () => {
    server = await Server.start({ serveArgs: ["--http-body-limit", "65536"] });
    me = server.me();
    base = `http://${server.httpAddress}`;
    auth = { authorization: `Bearer ${me.token}`, "content-type": "application/json" };
    guid = (await me.chats.create([uniqueEmail(), uniqueEmail()])).chat.guid;
  });
  after(() => server?.cleanup());

  async function call(method, path, body, headers = auth) {
    const res = await fetch(`${base}${path}`, { method, headers, body });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      assert.fail(`not json (${res.status}): ${text.slice(0, 200)}`);
    }
    return { res, json };
  }

  const invalid = (context) => ({ status: 400, code: "invalid_argument", errorCode: "invalidArgument", context });

  test("malformed JSON, wrong types, bad base64, not an object", async () => {
    const cases = [
      ["/v1/groups:setDisplayName", "{not json"],
      ["/v1/groups:setDisplayName", '{"chatGuid": 5, "displayName": "x"}'],
      ["/v1/groups:addParticipants", `{"chatGuid": "${guid}", "addresses": "a@example.com"}`],
      ["/v1/groups:setIcon", `{"chatGuid": "${guid}", "data": "!!!not base64!!!"}`],
      ["/v1/groups:setDisplayName", "[1, 2]"],
      ["/v1/chats", '{"addresses": ["a@example.com"], "service": "NOT_A_SERVICE"}'],
      ["/v1/groups:setDisplayName", '{"chatGuid": "a", "displayName": "x"'],
    ];
    for (const [path, body] of cases) {
      const { res, json } = await call("POST", path, body);
      assertErrorBody(res, json, invalid({ field: "body" }));
    }
  });

  test("validation errors carry the same codes and context as over gRPC", async () => {
    let r = await call("POST", "/v1/groups:setDisplayName", JSON.stringify({ chatGuid: "nope", displayName: "x" }));
    assertErrorBody(r.res, r.json, invalid({}));
    r = await call("POST", "/v1/groups:setDisplayName", JSON.stringify({ chatGuid: "any;+;chat000000000000000001", displayName: "x" }));
    assertErrorBody(r.res, r.json, { status: 404, code: "not_found", errorCode: "chatNotFound", context: { chatguid: "any;+;chat000000000000000001" } });
    r = await call("GET", `/v1/groups:icon?chatGuid=${encodeURIComponent(guid)}`, undefined, { authorization: auth.authorization });
    assertErrorBody(r.res, r.json, { status: 404, code: "not_found", errorCode: "groupIconNotFound" });
    r = await call("GET", "/v1/chats:count?includeArchived=maybe", undefined, { authorization: auth.authorization });
    assertErrorBody(r.res, r.json, invalid({ field: "includeArchived" }));
  });

  test("auth: missing, malformed and unknown tokens are 401 unauthenticated", async () => {
    for (const headers of [{}, { authorization: "Basic abc" }, { authorization: "Bearer nope" }]) {
      const { res, json } = await call("GET", "/v1/chats:count", undefined, headers);
      assertErrorBody(res, json, { status: 401, code: "unauthenticated", errorCode: "unauthenticated" });
    }
  });

  test("unknown routes are 404, wrong methods 405, both with the error body", async () => {
    let r = await call("GET", "/v1/nope");
    assertErrorBody(r.res, r.json, { status: 404, code: "not_found", errorCode: "operationNotSupported" });
    // (`/` itself leads a browser to the console: a redirect, tested with the binary.)
    r = await call("GET", "/nope");
    assertErrorBody(r.res, r.json, { status: 404, code: "not_found", errorCode: "operationNotSupported" });
    r = await call("GET", "/v1/groups:setDisplayName");
    assertErrorBody(r.res, r.json, { status: 405, code: "unimplemented", errorCode: "operationNotSupported" });
    r = await call("DELETE", "/v1/chats");
    assertErrorBody(r.res, r.json, { status: 405, code: "unimplemented", errorCode: "operationNotSupported" });
  });

  test("protocol routes this server does not implement: 501 unimplemented", async () => {
    const r = await call("POST", "/v1/messages:placeSticker", "{}");
    assertErrorBody(r.res, r.json, { status: 501, code: "unimplemented", errorCode: "operationNotSupported" });
  });

  test("an oversized body is refused with the limit in context; the server keeps working", async () => {
    const big = JSON.stringify({ chatGuid: guid, data: Buffer.alloc(100_000, 1).toString("base64") });
    const { res, json } = await call("POST", "/v1/groups:setIcon", big);
    // 413 (issue 16): resource_exhausted, with invalidArgument and the limit in context.
    assertErrorBody(res, json, {
      status: 413, code: "resource_exhausted", errorCode: "invalidArgument",
      context: { field: "body", limit: "65536", reason: "tooLarge" },
    });
    assert.equal(json.retryable, false);
    await me.chats.get(guid);
  });

  test("success answers are application/json with x-request-id; empty results are {}", async () => {
    const data = Buffer.from(png()).toString("base64");
    const res = await fetch(`${base}/v1/groups:setIcon`, { method: "POST", headers: auth, body: JSON.stringify({ chatGuid: guid, data }) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^application\/json/);
    assert.ok(res.headers.get("x-request-id"));
    assert.deepEqual(await res.json(), {});
    const icon = await fetch(`${base}/v1/groups:icon?chatGuid=${encodeURIComponent(guid)}`, { headers: { authorization: auth.authorization } });
    const json = await icon.json();
    assert.equal(json.mimeType, "image/png");
    assert.equal(json.data, data);
    // An empty body counts as {}: a precise validation error, not a parse error.
    const r = await call("POST", "/v1/groups:leave", "");
    assertErrorBody(r.res, r.json, invalid({}));
  });

  test("x-idempotency-key replays the original answer over HTTP", async () => {
    const headers = { ...auth, "x-idempotency-key": "http-key-1" };
    const body = JSON.stringify({ chatGuid: guid, displayName: "idem" });
    const head = await me.head();
    const a = await call("POST", "/v1/groups:setDisplayName", body, headers);
    const b = await call("POST", "/v1/groups:setDisplayName", body, headers);
    assert.equal(a.res.status, 200);
    assert.deepEqual(b.json, a.json);
    assert.equal(await me.head(), head + 1, "one event for two calls");
  });

  test("GET /openapi.json serves the committed docs/openapi.json", async () => {
    const res = await fetch(`${base}/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^application\/json/);
    const committed = await readFile(join(REPO_ROOT, "docs/openapi.json"), "utf8");
    assert.equal(await res.text(), committed);
    assert.match(JSON.parse(committed).openapi, /^3\./);
  });
});

describe("HTTP: a 10 MiB icon fits the default body limit (official SDK)", () => {
  /** @type {Server} */ let server;
  before(async () => {
    server = await Server.start();
  });
  after(() => server?.cleanup());

  test("setIcon with a 10 MiB PNG over createHttpClient, and 1 byte more is refused by the icon limit", async () => {
    const me = server.me();
    const http = server.httpClient(me.token);
    const { chat } = await http.chats.create([uniqueEmail(), uniqueEmail()]);
    const max = 10 * 1024 * 1024;
    const icon = pngOfSize(max);
    await http.groups.setIcon(chat.guid, icon);
    const got = await http.groups.getIcon(chat.guid);
    assert.equal(got.data.length, max);
    const tooBig = pngOfSize(max + 1);
    await expectError(http.groups.setIcon(chat.guid, tooBig), Errors.invalidArgument);
  });
});
