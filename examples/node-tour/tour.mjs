// A 30-second tour of imgroups with the official TypeScript SDK, unmodified.
//   IMGROUPS_TOKEN=<token printed by `imgroups serve`> node tour.mjs
import { createGrpcClient } from "@photon-ai/advanced-imessage/grpc";

const im = createGrpcClient({
  address: process.env.IMGROUPS_ADDRESS ?? "127.0.0.1:50051",
  token: process.env.IMGROUPS_TOKEN,
  tls: false,
});

// A group with three other people (any valid email or E.164 number is on iMessage).
const { chat } = await im.chats.create(["alice@example.com", "bob@example.com", "+15551234567"]);
console.log("created", chat.guid, chat.participants.map((p) => p.address));

const renamed = await im.groups.setDisplayName(chat.guid, "Weekend plans");
console.log("renamed to", renamed.displayName);

await im.groups.addParticipants(chat.guid, ["carol@example.com"]);
await im.groups.removeParticipants(chat.guid, ["bob@example.com"]);

// A complete 1x1 PNG: the server checks an icon's structure (chunks and their CRCs), so a
// bare header is not enough.
const png = Buffer.from(
  "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489" +
    "0000000b49444154789c6360000200000500017a5eab3f0000000049454e44ae426082",
  "hex",
);
await im.groups.setIcon(chat.guid, png);
const icon = await im.groups.getIcon(chat.guid);
console.log("icon", icon.mimeType, icon.data.length, "bytes");

// Bad input gets a precise error.
try {
  await im.groups.addParticipants(chat.guid, ["not an address"]);
} catch (err) {
  console.log("rejected:", err.constructor.name, err.code, err.context);
}

// Everything that happened, from this account's durable event log: group changes, messages
// and chat events, each named by its type.
for await (const event of im.events.catchUp(0)) {
  if (event.type === "catchup.complete") break;
  const what = event.type === "group.changed" ? event.change.type : event.type;
  console.log(event.sequence, what, event.actor?.address ?? "");
}

await im.groups.leave(chat.guid);
console.log("left; count is now", await im.chats.count());
await im.close();
