// Wire-level calls for the few inputs the SDK refuses to send (it validates
// GUIDs and names client-side) and for metadata it cannot set by hand
// (a chosen `x-idempotency-key`). Uses @grpc/grpc-js directly with a tiny
// hand-written protobuf codec covering only the messages used here.

import grpc from "@grpc/grpc-js";

// ---------------------------------------------------------------- encoding

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

function lengthDelimited(field, bytes) {
  return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
}

/**
 * Encode a message from `[fieldNumber, value]` pairs. Strings and Buffers are
 * length-delimited; booleans and numbers are varints; arrays repeat the field;
 * `undefined` is omitted.
 */
export function encode(fields) {
  const parts = [];
  for (const [field, value] of fields) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === undefined) continue;
      if (typeof v === "string") parts.push(lengthDelimited(field, Buffer.from(v, "utf8")));
      else if (Buffer.isBuffer(v)) parts.push(lengthDelimited(field, v));
      else parts.push(varint(field << 3), varint(typeof v === "boolean" ? Number(v) : v));
    }
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- decoding

/** Decode one message level into Map<fieldNumber, Array<Buffer | bigint>>. */
export function decode(buf) {
  const fields = new Map();
  let pos = 0;
  const readVarint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buf[pos++];
      if (byte === undefined) throw new Error("truncated varint");
      result |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wireType = key & 7;
    let value;
    if (wireType === 0) value = readVarint();
    else if (wireType === 2) {
      const len = Number(readVarint());
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else if (wireType === 1) {
      value = buf.subarray(pos, pos + 8);
      pos += 8;
    } else if (wireType === 5) {
      value = buf.subarray(pos, pos + 4);
      pos += 4;
    } else throw new Error(`unsupported wire type ${wireType}`);
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field).push(value);
  }
  return fields;
}

const str = (fields, n) => fields.get(n)?.[0]?.toString("utf8");

/** The few Chat fields the raw tests look at (chat_types.proto). */
export function decodeChat(buf) {
  const f = decode(buf);
  return {
    guid: str(f, 1),
    displayName: str(f, 4) ?? "",
    isGroup: f.get(5)?.[0] === 1n,
    participants: (f.get(10) ?? []).map((p) => str(decode(p), 1)),
  };
}

/** Decode a response whose field 1 is a Chat (GetChat, SetDisplayName, Add/RemoveParticipants). */
export function decodeChatResponse(buf) {
  const chat = decode(buf).get(1)?.[0];
  if (!chat) throw new Error("response has no chat");
  return decodeChat(chat);
}

// ---------------------------------------------------------------- calls

export class RawClient {
  #client;

  constructor(address) {
    this.#client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": 100 * 1024 * 1024,
      "grpc.max_receive_message_length": 100 * 1024 * 1024,
    });
  }

  /**
   * Unary call. Resolves with the raw response bytes, or rejects with a
   * RawError carrying the status code and the trailing metadata.
   * @param {string} path e.g. "/photon.imessage.v1.GroupService/SetDisplayName"
   * @param {Buffer} request encoded request
   * @param {{token?: string, headers?: Record<string, string>}} [options]
   */
  call(path, request, { token, headers = {} } = {}) {
    const metadata = new grpc.Metadata();
    if (token) metadata.set("authorization", `Bearer ${token}`);
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    return new Promise((resolveCall, rejectCall) => {
      this.#client.makeUnaryRequest(
        path,
        (b) => b,
        (b) => b,
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
        (err, response) => (err ? rejectCall(new RawError(err)) : resolveCall(response)),
      );
    });
  }

  close() {
    this.#client.close();
  }
}

/** A failed raw call: gRPC status plus the error-code / x-retryable / error-context-* trailers. */
export class RawError extends Error {
  constructor(err) {
    super(`${err.code} ${err.details}`);
    this.grpcCode = err.code;
    this.details = err.details;
    const trailers = err.metadata?.getMap() ?? {};
    this.code = trailers["error-code"];
    this.retryable = trailers["x-retryable"] === "true";
    this.context = Object.fromEntries(
      Object.entries(trailers)
        .filter(([k]) => k.startsWith("error-context-"))
        .map(([k, v]) => [k.slice("error-context-".length), String(v)]),
    );
  }
}

export const Paths = Object.freeze({
  setDisplayName: "/photon.imessage.v1.GroupService/SetDisplayName",
  addParticipants: "/photon.imessage.v1.GroupService/AddParticipants",
  removeParticipants: "/photon.imessage.v1.GroupService/RemoveParticipants",
  leaveGroup: "/photon.imessage.v1.GroupService/LeaveGroup",
  setIcon: "/photon.imessage.v1.GroupService/SetIcon",
  getIcon: "/photon.imessage.v1.GroupService/GetIcon",
  removeIcon: "/photon.imessage.v1.GroupService/RemoveIcon",
  getChat: "/photon.imessage.v1.ChatService/GetChat",
});

/** Request builders (field numbers from group_service.proto / chat_service.proto). */
export const Requests = Object.freeze({
  setDisplayName: (chatGuid, displayName, clientMessageId) =>
    encode([[1, chatGuid], [2, displayName], [100, clientMessageId]]),
  addParticipants: (chatGuid, addresses, clientMessageId) =>
    encode([[1, chatGuid], [2, addresses], [100, clientMessageId]]),
  removeParticipants: (chatGuid, addresses, clientMessageId) =>
    encode([[1, chatGuid], [2, addresses], [100, clientMessageId]]),
  chatOnly: (chatGuid) => encode([[1, chatGuid]]),
});
