// Wire compatibility of our schema with the official SDK's: parses the .proto files the SDK
// package ships and ours (the repository's proto/), and compares everything that decides the
// bytes and the JSON on the wire for package photon.imessage.v1 — services, methods, messages,
// fields, oneofs, enums, reserved ranges — plus the HTTP route of every method. Comments and
// file options (swift_prefix, …) are not compared: they never reach the wire.
//
// No server is started: this test needs only `npm ci`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const conformance = path.join(here, "..");
const SDK_PROTO = path.join(
  conformance,
  "node_modules",
  "@photon-ai",
  "advanced-imessage",
  "proto",
);
const OUR_PROTO = path.join(conformance, "..", "..", "proto");
// protobufjs bundles Timestamp and Empty but not descriptor.proto, which both
// google/api/annotations.proto files import to extend MethodOptions.
const DESCRIPTOR_PROTO = path.join(
  conformance,
  "node_modules",
  "protobufjs",
  "google",
  "protobuf",
  "descriptor.proto",
);
const PACKAGE = "photon.imessage.v1";
const PACKAGE_DIR = PACKAGE.replaceAll(".", "/");

/** Every .proto of the package under `dir`, parsed and resolved, with field names as written. */
function load(dir) {
  const files = readdirSync(path.join(dir, PACKAGE_DIR))
    .filter((f) => f.endsWith(".proto"))
    .sort()
    .map((f) => `${PACKAGE_DIR}/${f}`);
  assert.ok(files.length > 0, `no .proto files under ${dir}`);
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target === "google/protobuf/descriptor.proto"
      ? DESCRIPTOR_PROTO
      : path.join(dir, target);
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

/** protoc's default JSON name: drop underscores, upper-case the letter after each. */
function jsonName(name) {
  return name.replace(/_+(.)?/g, (_, c) => (c ? c.toUpperCase() : ""));
}

/** The type a field or method refers to, fully qualified without the leading dot. */
function typeName(resolved, written) {
  return resolved ? resolved.fullName.replace(/^\./, "") : written;
}

/** The google.api.http rule of a method, normalised; null when it has none. */
function httpRule(method) {
  const rules = (method.parsedOptions ?? [])
    .filter((o) => "(google.api.http)" in o)
    .map((o) => o["(google.api.http)"]);
  assert.ok(rules.length <= 1, `${method.fullName}: more than one google.api.http option`);
  if (rules.length === 0) return null;
  const rule = rules[0];
  const verbs = ["get", "put", "post", "delete", "patch"].filter((v) => v in rule);
  const out = { body: rule.body ?? "", response_body: rule.response_body ?? "" };
  if (verbs.length === 1) {
    out.verb = verbs[0].toUpperCase();
    out.path = rule[verbs[0]];
  } else {
    assert.ok("custom" in rule, `${method.fullName}: no single HTTP verb in ${JSON.stringify(rule)}`);
    out.verb = rule.custom.kind;
    out.path = rule.custom.path;
  }
  out.additional_bindings = rule.additional_bindings ?? [];
  return out;
}

/** Everything of one message that decides its encoding, keyed for a deep comparison. */
function describeType(type) {
  const fields = type.fieldsArray
    .map((f) => {
      const oneof = f.partOf && !f.options?.proto3_optional ? f.partOf.name : null;
      return {
        name: f.name,
        number: f.id,
        type: typeName(f.resolvedType, f.type),
        keyType: f.map ? f.keyType : null,
        repeated: f.repeated,
        optional: Boolean(f.options?.proto3_optional),
        oneof,
        jsonName: f.options?.json_name ?? jsonName(f.name),
        packed: f.options?.packed ?? null,
        deprecated: f.options?.deprecated ?? null,
      };
    })
    .sort((a, b) => a.number - b.number);
  // Real oneofs only: proto3 `optional` is covered by `optional` above.
  const oneofs = type.oneofsArray
    .filter((o) => !o.fieldsArray.every((f) => f.options?.proto3_optional))
    .map((o) => ({ name: o.name, fields: o.fieldsArray.map((f) => f.name).sort() }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return {
    fields,
    oneofs,
    reserved: (type.reserved ?? []).map((r) => JSON.stringify(r)).sort(),
    extensions: (type.extensions ?? []).map((r) => JSON.stringify(r)).sort(),
  };
}

function describeEnum(en) {
  return {
    values: Object.entries(en.values).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0])),
    reserved: (en.reserved ?? []).map((r) => JSON.stringify(r)).sort(),
    allowAlias: en.options?.allow_alias ?? null,
  };
}

function describeService(service) {
  return service.methodsArray.map((m) => ({
    name: m.name,
    input: typeName(m.resolvedRequestType, m.requestType),
    output: typeName(m.resolvedResponseType, m.responseType),
    clientStreaming: Boolean(m.requestStream),
    serverStreaming: Boolean(m.responseStream),
  }));
}

/** Every service, message (nested ones included) and enum of the package, by full name. */
function inventory(root) {
  const out = { services: new Map(), types: new Map(), enums: new Map() };
  const walk = (ns) => {
    for (const obj of ns.nestedArray) {
      const name = obj.fullName.replace(/^\./, "");
      if (obj instanceof protobuf.Service) out.services.set(name, obj);
      else if (obj instanceof protobuf.Type) out.types.set(name, obj);
      else if (obj instanceof protobuf.Enum) out.enums.set(name, obj);
      if (obj.nestedArray) walk(obj);
    }
  };
  walk(root.lookup(PACKAGE));
  return out;
}

const sdk = inventory(load(SDK_PROTO));
const ours = inventory(load(OUR_PROTO));

function sameNames(kind, a, b) {
  const sdkNames = [...a.keys()].sort();
  const ourNames = [...b.keys()].sort();
  assert.deepEqual(
    { missing: sdkNames.filter((n) => !b.has(n)), extra: ourNames.filter((n) => !a.has(n)) },
    { missing: [], extra: [] },
    `${kind}: ours and the SDK's differ`,
  );
}

test("the SDK's protos are there and hold the whole surface", () => {
  // Guards against comparing two empty sets after a package layout change.
  const methods = [...sdk.services.values()].reduce((n, s) => n + s.methodsArray.length, 0);
  assert.equal(sdk.services.size, 8);
  assert.equal(methods, 50);
});

test("services and methods match the SDK's", () => {
  sameNames("services", sdk.services, ours.services);
  for (const [name, service] of sdk.services) {
    assert.deepEqual(describeService(ours.services.get(name)), describeService(service), name);
  }
});

test("messages match the SDK's: fields, numbers, types, labels, oneofs, JSON names, reserved", () => {
  sameNames("messages", sdk.types, ours.types);
  for (const [name, type] of sdk.types) {
    assert.deepEqual(describeType(ours.types.get(name)), describeType(type), name);
  }
});

test("enums match the SDK's", () => {
  sameNames("enums", sdk.enums, ours.enums);
  for (const [name, en] of sdk.enums) {
    assert.deepEqual(describeEnum(ours.enums.get(name)), describeEnum(en), name);
  }
});

test("every method has the SDK's HTTP route (or, like the SDK's, none)", () => {
  for (const [name, service] of sdk.services) {
    const ourService = ours.services.get(name);
    for (const method of service.methodsArray) {
      assert.deepEqual(
        httpRule(ourService.methods[method.name]),
        httpRule(method),
        `${name}.${method.name}`,
      );
    }
  }
});

test("our google.api.http declaration encodes like the SDK's", () => {
  // We write our own minimal google/api files; the fields we declare must have the numbers
  // and types of the SDK's copy, or an option would decode differently.
  const load = (dir) => {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) =>
      target === "google/protobuf/descriptor.proto" ? DESCRIPTOR_PROTO : path.join(dir, target);
    root.loadSync(["google/api/annotations.proto"], { keepCase: true });
    root.resolveAll();
    return root;
  };
  const theirs = load(SDK_PROTO);
  const mine = load(OUR_PROTO);
  const ext = (root) => {
    const field = root.lookup("google.api.http");
    return { number: field.id, type: typeName(field.resolvedType, field.type), extend: field.extend };
  };
  assert.deepEqual(ext(mine), ext(theirs));
  for (const typeName of ["google.api.HttpRule", "google.api.CustomHttpPattern"]) {
    const a = describeType(theirs.lookupType(typeName));
    const b = describeType(mine.lookupType(typeName));
    for (const field of b.fields) {
      assert.deepEqual(
        field,
        a.fields.find((f) => f.name === field.name),
        `${typeName}.${field.name}`,
      );
    }
    assert.deepEqual(b.oneofs, a.oneofs, `${typeName} oneofs`);
  }
});
