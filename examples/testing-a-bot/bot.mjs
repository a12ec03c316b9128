// The bot under test: a tiny welcome bot on the official SDK, unmodified. It says
// "Welcome, <address>!" when someone says hi, and when someone joins a group it is in.
// Run alone: IMGROUPS_TOKEN=<the bot's token> node bot.mjs
import { createGrpcClient } from "@photon-ai/advanced-imessage/grpc";

/**
 * Starts the bot; resolves once its streams are live (the server's first heartbeat on each),
 * so nothing said after that is missed. `stop()` closes them.
 */
export async function startWelcomeBot({ address = "127.0.0.1:50051", token }) {
  const clients = [];
  const client = (options = {}) => {
    const c = createGrpcClient({ address, token, tls: false, ...options });
    clients.push(c);
    return c;
  };
  const live = () => {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    return { promise, client: client({ onHeartbeat: () => resolve() }) };
  };
  const im = client();
  const greet = (chat, who) => im.messages.sendText(chat, `Welcome, ${who}!`);

  const onMessages = live();
  const messages = onMessages.client.messages.subscribeEvents();
  const onGroups = live();
  const groups = onGroups.client.groups.subscribeEvents();
  const loops = [
    (async () => {
      for await (const e of messages) {
        if (e.type === "message.received" && !e.isFromMe && /^hi\b/i.test(e.message.content.text ?? "")) {
          await greet(e.chatGuid, e.actor?.address ?? "friend");
        }
      }
    })(),
    (async () => {
      for await (const e of groups) {
        if (!e.isFromMe && e.change.type === "participantAdded") {
          await greet(e.chatGuid, e.change.participant.address);
        }
      }
    })(),
  ];
  await Promise.all([onMessages.promise, onGroups.promise]);
  return {
    async stop() {
      await Promise.allSettled([messages.close(), groups.close()]);
      await Promise.allSettled(loops);
      await Promise.allSettled(clients.map((c) => c.close()));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await startWelcomeBot({ address: process.env.IMGROUPS_ADDRESS, token: process.env.IMGROUPS_TOKEN });
  console.log("welcome bot running; Ctrl-C stops it");
}
