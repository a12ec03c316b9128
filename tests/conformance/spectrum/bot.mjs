// A tiny spectrum-ts bot: answers "pong" to "ping" (as a reply) and "ready" to "ready?".
// Usage: node bot.mjs ADDRESS TOKEN PHONE
//   ADDRESS  host:port of the server's gRPC listener (the iMessage provider always uses TLS;
//            trust a self-signed certificate with GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)
//   TOKEN    the bot account's token
//   PHONE    the bot account's address (spectrum calls an account's line its "phone")
// Prints one JSON line per answer on stdout: {"answered": TEXT, "to": MESSAGE_ID, "space": CHAT}.

import { Spectrum } from "@spectrum-ts/core";
import { imessage } from "@spectrum-ts/imessage";

const [address, token, phone] = process.argv.slice(2);
if (!address || !token || !phone) {
  console.error("usage: node bot.mjs ADDRESS TOKEN PHONE");
  process.exit(2);
}

const app = await Spectrum({
  providers: [imessage.config({ clients: { address, token, phone } })],
});

const ANSWERS = { ping: "pong", "ready?": "ready" };

const stop = async () => {
  await app.stop?.();
  process.exit(0);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);

console.log(JSON.stringify({ started: true }));
for await (const [space, message] of app.messages) {
  if (message.content.type !== "text") continue;
  const answer = ANSWERS[message.content.text.trim()];
  if (!answer) continue;
  await space.responding(async () => {
    await message.reply(answer);
  });
  console.log(JSON.stringify({ answered: answer, to: message.id, space: space.id }));
}
