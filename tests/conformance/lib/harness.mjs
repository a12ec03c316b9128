// Test harness: runs the real `imgroups` binary on a fresh data directory and
// hands out official-SDK clients bound to its accounts.
//
// Binary contract relied on (see README.md):
//   imgroups serve --data DIR --grpc 127.0.0.1:0 --http 127.0.0.1:0 [--account ADDR] [--heartbeat-secs N]
//     stdout, one per line, in order:
//       account <ADDRESS>
//       token <TOKEN>                  (first start on a data dir only)
//       grpc listening on <HOST:PORT>
//       http listening on <HOST:PORT>
//       console <URL>                  (the web console: http://HOST:PORT/console/)
//       metrics listening on <HOST:PORT> (serve --metrics ADDR only)
//       helper listening on <HOST:PORT> (serve --backend chatdb --helper ADDR only)
//       ready
//     SIGTERM / SIGINT -> graceful shutdown, exit code 0.
//   imgroups account add ADDR --data DIR      -> one stdout line: the new token
//   imgroups token create ADDR --data DIR     -> one stdout line: the new token
//   imgroups token revoke TOKEN --data DIR
//   imgroups token list --data DIR
//   imgroups sim unreachable ADDR --data DIR
//   imgroups sim act ADDR rename|add|remove|leave|icon-set|icon-rm|say|reply|react|unreact|edit|unsend|read
//     CHAT [ARGS] --data DIR
//     exit 0 once the change is durable; exit 1 with `error: … (<errorCode>)` on stderr
//   Every command above also takes --database-url URL: all state in that PostgreSQL database,
//   the data dir then keeps only the default token file.
//
// Store under test, chosen by environment:
//   IMGROUPS_STORE             unset or "sqlite": the embedded SQLite store in the data dir.
//                              "postgres": each Server.start() creates a database of its own,
//                              imgroups_conf_<pid>_<n>, passes it as --database-url to `serve`
//                              and every CLI call (kept across restart()), and drops it
//                              (WITH (FORCE)) in cleanup().
//   IMGROUPS_TEST_DATABASE_URL with postgres, required: an admin URL whose user may
//                              CREATE DATABASE, e.g. postgres://postgres@127.0.0.1:5432/test.

import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { createGrpcClient } from "@photon-ai/advanced-imessage/grpc";
import { createHttpClient } from "@photon-ai/advanced-imessage/http";

// IMGROUPS_TRANSPORT=http: every client handed out (Server.client, Person.groups/.chats) sends
// each group and chat call through the official SDK's HTTP client (createHttpClient); event
// streams, which the SDK has over gRPC only, stay on gRPC.
export const TRANSPORT = process.env.IMGROUPS_TRANSPORT === "http" ? "http" : "grpc";

// IMGROUPS_STORE, IMGROUPS_TEST_DATABASE_URL: see the top of this file.
export const STORE = process.env.IMGROUPS_STORE || "sqlite";
if (STORE !== "sqlite" && STORE !== "postgres") {
  throw new Error(`IMGROUPS_STORE=${STORE}: expected "sqlite" (the default) or "postgres"`);
}
const ADMIN_DATABASE_URL = process.env.IMGROUPS_TEST_DATABASE_URL;
if (STORE === "postgres" && !ADMIN_DATABASE_URL) {
  throw new Error(
    "IMGROUPS_STORE=postgres needs IMGROUPS_TEST_DATABASE_URL, an admin URL whose user may CREATE DATABASE " +
      "(e.g. postgres://postgres@127.0.0.1:5432/test)",
  );
}

const execFileAsync = promisify(execFile);

// The store is the harness's choice alone: an IMGROUPS_DATABASE_URL in the caller's environment
// must not turn a SQLite run into one on a shared database.
const BIN_ENV = { ...process.env };
delete BIN_ENV.IMGROUPS_DATABASE_URL;

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BIN = process.env.IMGROUPS_BIN ?? join(REPO_ROOT, "target/debug/imgroups");
export const DEFAULT_ACCOUNT = "me@imgroups.local";

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const CLI_TIMEOUT_MS = 10_000;
const STDERR_KEEP = 16 * 1024;

const TOKEN_LINE = /^token (\S+)$/;
const ACCOUNT_LINE = /^account (\S+)$/;
const LISTEN_LINE = /^grpc listening on (\S+)$/;
const HTTP_LISTEN_LINE = /^http listening on (\S+)$/;
const CONSOLE_LINE = /^console (\S+)$/;
const HELPER_LISTEN_LINE = /^helper listening on (\S+)$/;
const READY_LINE = /^ready$/;

function assertBinary() {
  if (!existsSync(BIN)) {
    throw new Error(
      `imgroups binary not found at ${BIN}: run \`cargo build\` in ${REPO_ROOT} or set IMGROUPS_BIN`,
    );
  }
}

/** Run one SQL statement on the admin database (IMGROUPS_TEST_DATABASE_URL). */
async function adminQuery(sql) {
  const { default: pg } = await import("pg"); // only under IMGROUPS_STORE=postgres
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

let databaseCounter = 0;

/** A fresh PostgreSQL database for one Server: its name and its URL (the admin URL, other database). */
async function createDatabase() {
  databaseCounter += 1;
  const name = `imgroups_conf_${process.pid}_${databaseCounter}`;
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return { name, url: url.href };
}

async function dropDatabase(name) {
  await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

/**
 * One imgroups server process on one data directory (and, under IMGROUPS_STORE=postgres, one
 * database). `restart()` reuses both, so everything written before must still be there afterwards.
 */
export class Server {
  /** @type {string} */ dataDir;
  /** @type {{name: string, url: string} | null} the PostgreSQL database, under IMGROUPS_STORE=postgres */
  database = null;
  /** @type {string} host:port of the gRPC listener */ address;
  /** @type {string} address of the account created by `serve` */ account;
  /** @type {string} token printed on the first start */ token;
  /** @type {string[]} every `token` line seen across starts (one per start that printed it) */
  printedTokens = [];
  /** @type {number | null} exit code of the last stopped process */ lastExitCode = null;
  /** @type {NodeJS.Signals | null} */ lastExitSignal = null;

  /** incremented on every start, so cached clients know the port changed */
  generation = 0;

  #options;
  #child = null;
  #exited = null;
  #stderr = "";
  #clients = new Set();

  constructor(dataDir, database, options) {
    this.dataDir = dataDir;
    this.database = database;
    this.#options = options;
  }

  /**
   * Start a server on a fresh temporary data directory.
   * @param {{account?: string, heartbeatSecs?: number, serveArgs?: string[]}} [options]
   */
  static async start(options = {}) {
    assertBinary();
    const dataDir = await mkdtemp(join(tmpdir(), "imgroups-conformance-"));
    let server;
    try {
      server = new Server(dataDir, STORE === "postgres" ? await createDatabase() : null, options);
      await server.#spawn();
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true });
      if (server?.database) await dropDatabase(server.database.name);
      throw err;
    }
    return server;
  }

  get running() {
    return this.#child !== null;
  }

  /** Recent stderr of the current (or last) process, for failure messages. */
  get stderr() {
    return this.#stderr;
  }

  /** `--data DIR`, plus `--database-url URL` under IMGROUPS_STORE=postgres: for every command. */
  get storeArgs() {
    const args = ["--data", this.dataDir];
    if (this.database) args.push("--database-url", this.database.url);
    return args;
  }

  async #spawn() {
    const args = ["serve", ...this.storeArgs, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"];
    if (this.#options.account) args.push("--account", this.#options.account);
    if (this.#options.heartbeatSecs !== undefined) {
      args.push("--heartbeat-secs", String(this.#options.heartbeatSecs));
    }
    // options.serveArgs: extra `serve` flags (e.g. ["--retain-events", "5"]), kept across restarts.
    if (this.#options.serveArgs) args.push(...this.#options.serveArgs);

    this.#stderr = "";
    this.generation += 1;
    const child = spawn(BIN, args, { env: BIN_ENV, stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    this.#exited = new Promise((resolveExit) => {
      child.once("exit", (code, signal) => resolveExit({ code, signal }));
      child.once("error", (error) => resolveExit({ code: null, signal: null, error }));
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      this.#stderr = (this.#stderr + chunk).slice(-STDERR_KEEP);
    });

    const seen = { account: undefined, token: undefined, address: undefined };
    const lines = createInterface({ input: child.stdout });
    let timer;
    try {
      await new Promise((resolveReady, rejectReady) => {
        const fail = (why) =>
          rejectReady(
            new Error(`imgroups serve ${why}\n--- stderr ---\n${this.#stderr || "(empty)"}`),
          );
        timer = setTimeout(() => fail(`did not print "ready" within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
        this.#exited.then(({ code, signal, error }) =>
          fail(error ? `failed to start: ${error.message}` : `exited before ready (code ${code}, signal ${signal})`),
        );
        lines.on("line", (line) => {
          let m;
          if ((m = ACCOUNT_LINE.exec(line))) seen.account = m[1];
          else if ((m = TOKEN_LINE.exec(line))) seen.token = m[1];
          else if ((m = LISTEN_LINE.exec(line))) seen.address = m[1];
          else if ((m = HTTP_LISTEN_LINE.exec(line))) seen.httpAddress = m[1];
          else if ((m = CONSOLE_LINE.exec(line))) seen.consoleUrl = m[1];
          else if ((m = HELPER_LISTEN_LINE.exec(line))) seen.helperAddress = m[1];
          else if (READY_LINE.test(line)) {
            if (!seen.address) fail(`printed "ready" before "grpc listening on"`);
            else resolveReady();
          }
        });
      });
    } catch (err) {
      await this.#kill();
      throw err;
    } finally {
      clearTimeout(timer);
    }

    this.account = seen.account;
    this.address = seen.address;
    /** host:port of the HTTP/JSON listener */
    this.httpAddress = seen.httpAddress;
    /** the web console's address, as `serve` printed it (`http://HOST:PORT/console/`) */
    this.consoleUrl = seen.consoleUrl;
    /** host:port where the Messages helper is awaited (`--backend chatdb --helper`), else undefined */
    this.helperAddress = seen.helperAddress;
    if (seen.token) {
      this.printedTokens.push(seen.token);
      this.token ??= seen.token;
    }
  }

  async #kill() {
    if (!this.#child) return;
    this.#child.kill("SIGKILL");
    await this.#exited;
    this.#child = null;
  }

  /**
   * Gracefully stop the server (SIGTERM by default) and wait for it to exit.
   * Closes every SDK client handed out so far first.
   */
  async stop(signal = "SIGTERM") {
    await this.closeClients();
    if (!this.#child) return;
    const child = this.#child;
    child.kill(signal);
    let timer;
    const timeout = new Promise((_, rejectStop) => {
      timer = setTimeout(
        () => rejectStop(new Error(`imgroups did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}`)),
        STOP_TIMEOUT_MS,
      );
    });
    try {
      const { code, signal: exitSignal } = await Promise.race([this.#exited, timeout]);
      this.lastExitCode = code;
      this.lastExitSignal = exitSignal;
    } catch (err) {
      await this.#kill();
      throw err;
    } finally {
      clearTimeout(timer);
      this.#child = null;
    }
  }

  /** Stop and start again on the same data directory (new port). */
  async restart() {
    await this.stop();
    await this.#spawn();
  }

  /** Stop (if running) and delete the data directory (and drop the database). */
  async cleanup() {
    try {
      await this.stop();
    } finally {
      await rm(this.dataDir, { recursive: true, force: true });
      if (this.database) await dropDatabase(this.database.name);
    }
  }

  /** Run `imgroups <args...> --data DIR [--database-url URL]` and return its trimmed stdout. */
  async cli(...args) {
    try {
      const { stdout } = await execFileAsync(BIN, [...args, ...this.storeArgs], {
        env: BIN_ENV,
        timeout: CLI_TIMEOUT_MS,
      });
      return stdout.trim();
    } catch (err) {
      throw new Error(`imgroups ${args.join(" ")} failed: ${err.message}\n--- stderr ---\n${err.stderr ?? ""}`);
    }
  }

  /** `imgroups account add ADDRESS` -> the new account's token. */
  async addAccount(address) {
    return singleToken(await this.cli("account", "add", address), "account add");
  }

  /** `imgroups token create ADDRESS` -> a token for another device of that account. */
  async createToken(address) {
    return singleToken(await this.cli("token", "create", address), "token create");
  }

  async revokeToken(token) {
    await this.cli("token", "revoke", token);
  }

  async listTokens() {
    return this.cli("token", "list");
  }

  async markUnreachable(address) {
    await this.cli("sim", "unreachable", address);
  }

  /**
   * `imgroups sim act ADDRESS ACTION CHAT [ARGS...]`: a person in the simulated network (a
   * puppet, not an account) changes a group. Resolves once the CLI exited successfully.
   */
  async act(address, action, chat, ...args) {
    await this.cli("sim", "act", address, action, chat, ...args);
  }

  /**
   * Run `imgroups <args...> --data DIR [--database-url URL]` expecting it to fail.
   * @returns {Promise<{code: number, stdout: string, stderr: string}>}
   */
  async cliFailure(...args) {
    try {
      const { stdout } = await execFileAsync(BIN, [...args, ...this.storeArgs], {
        env: BIN_ENV,
        timeout: CLI_TIMEOUT_MS,
      });
      throw new Error(`imgroups ${args.join(" ")} succeeded (stdout ${JSON.stringify(stdout)}); expected a failure`);
    } catch (err) {
      if (typeof err.code !== "number") throw err;
      return { code: err.code, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
    }
  }

  /**
   * An official SDK gRPC client for this server (plaintext). Closed
   * automatically by stop()/cleanup().
   * @param {string} token
   * @param {object} [options] extra createGrpcClient options
   */
  client(token, options = {}) {
    const client = createGrpcClient({ address: this.address, token, tls: false, ...options });
    this.#clients.add(client);
    return TRANSPORT === "http" ? overHttp(client, this.httpClient(token, options)) : client;
  }

  /**
   * An official SDK HTTP client (createHttpClient) for this server. close() is a no-op there.
   * @param {string} token
   * @param {object} [options] extra createHttpClient options
   */
  httpClient(token, options = {}) {
    return createHttpClient({ address: `http://${this.httpAddress}`, token, tls: false, ...options });
  }

  async closeClients() {
    const clients = [...this.#clients];
    this.#clients.clear();
    await Promise.allSettled(clients.map((c) => c.close()));
  }

  /**
   * Add an account and return a handle acting as that person.
   * @returns {Promise<Person>}
   */
  async person(address) {
    const token = await this.addAccount(address);
    return new Person(this, address, token);
  }

  /** The account created by `serve`, acting with the token printed at first start. */
  me() {
    if (!this.token) throw new Error("serve did not print a token on first start");
    return new Person(this, this.account ?? DEFAULT_ACCOUNT, this.token);
  }
}

/**
 * A client whose every method the HTTP SDK has goes over HTTP; the rest (event streams,
 * gRPC-only in the SDK) falls through to the gRPC client.
 */
function overHttp(grpcClient, httpClient) {
  const pick = (http, grpc) =>
    new Proxy(http, {
      get(target, key) {
        const from = key in target ? target : grpc;
        const value = from[key];
        return typeof value === "function" ? value.bind(from) : value;
      },
    });
  return new Proxy(httpClient, {
    get(target, key) {
      if (key === "groups" || key === "chats") return pick(target[key], grpcClient[key]);
      if (key === "close") return () => grpcClient.close();
      if (key === "transport") return "http";
      return key in target ? target[key] : grpcClient[key];
    },
  });
}

function singleToken(stdout, what) {
  const lines = stdout.split("\n").filter((l) => l.trim() !== "");
  if (lines.length !== 1 || /\s/.test(lines[0].trim())) {
    throw new Error(`imgroups ${what}: expected exactly one token line on stdout, got ${JSON.stringify(stdout)}`);
  }
  return lines[0].trim();
}

/**
 * An account plus a token for it. `client` is created lazily and re-created
 * after a server restart (the port changes).
 */
export class Person {
  #server;
  #client = null;
  #clientGeneration = 0;

  constructor(server, address, token) {
    this.#server = server;
    this.address = address;
    this.token = token;
  }

  get client() {
    if (!this.#client || this.#clientGeneration !== this.#server.generation) {
      this.#client = this.#server.client(this.token);
      this.#clientGeneration = this.#server.generation;
    }
    return this.#client;
  }

  get groups() {
    return this.client.groups;
  }

  get chats() {
    return this.client.chats;
  }

  /** This account's whole event log (see catchUp). */
  log(after) {
    return catchUp(this.client, after);
  }

  /** Current head sequence of this account's event log. */
  async head() {
    return (await catchUp(this.client)).head;
  }

  /** Group events appended to this account's log after sequence `after`. */
  async eventsAfter(after) {
    return (await catchUp(this.client, after)).events;
  }
}

/**
 * Run events.catchUp(after) to completion.
 * Asserts the stream shape: events, then exactly one catchup.complete, then end.
 * @returns {Promise<{events: any[], head: number}>}
 */
export async function catchUp(client, after, timeoutMs = 10_000) {
  const stream = client.events.catchUp(after);
  const frames = [];
  let timer;
  const timeout = new Promise((_, rejectTimeout) => {
    timer = setTimeout(() => {
      stream.close();
      rejectTimeout(new Error(`catchUp(${after}) did not end within ${timeoutMs} ms; got ${frames.length} frames`));
    }, timeoutMs);
  });
  try {
    await Promise.race([
      (async () => {
        for await (const frame of stream) frames.push(frame);
      })(),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
  const completes = frames.filter((f) => f.type === "catchup.complete");
  if (completes.length !== 1 || frames.at(-1)?.type !== "catchup.complete") {
    throw new Error(
      `catchUp(${after}) must end with exactly one catchup.complete frame; got ${JSON.stringify(frames.map((f) => f.type))}`,
    );
  }
  return { events: frames.slice(0, -1), head: completes[0].headSequence };
}

/**
 * Consume a TypedEventStream in the background so tests can wait for
 * events (or the stream's error) with a deadline.
 */
export class StreamCollector {
  events = [];
  error = undefined;
  ended = false;
  /** Resolves (never rejects) when the stream ends, by error, by the server, or by close(). */
  done;
  #stream;
  #changed;
  #notify;

  constructor(stream) {
    this.#stream = stream;
    this.#arm();
    this.done = (async () => {
      try {
        for await (const event of stream) {
          this.events.push(event);
          this.#fire();
        }
      } catch (err) {
        this.error = err;
      } finally {
        this.ended = true;
        this.#fire();
      }
    })();
  }

  #arm() {
    this.#changed = new Promise((resolveChanged) => (this.#notify = resolveChanged));
  }

  #fire() {
    const notify = this.#notify;
    this.#arm();
    notify();
  }

  /** Wait until `predicate(events)` holds; rejects on stream error, end, or timeout. */
  async until(predicate, timeoutMs = 5_000, what = "condition") {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate(this.events)) return this.events;
      if (this.error) throw this.error;
      if (this.ended) throw new Error(`stream ended before ${what}; events: ${describeEvents(this.events)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${describeEvents(this.events)}`);
      await waitFor(this.#changed, left);
    }
  }

  /** Wait for at least `n` events. */
  count(n, timeoutMs) {
    return this.until((events) => events.length >= n, timeoutMs, `${n} event(s)`);
  }

  /** Wait for the stream to fail, returning the error. */
  async failure(timeoutMs = 5_000) {
    if (!(await waitFor(this.done.then(() => true), timeoutMs))) {
      throw new Error(`stream did not fail within ${timeoutMs} ms; events: ${describeEvents(this.events)}`);
    }
    if (!this.error) throw new Error(`stream ended without an error; events: ${describeEvents(this.events)}`);
    return this.error;
  }

  close() {
    return this.#stream.close();
  }
}

/**
 * Open `groups.subscribeEvents(filter)` as `person` on a client of its own and resolve once
 * the stream is live: its first frame, a heartbeat, says the subscription is in place.
 * @returns {Promise<StreamCollector>}
 */
export async function subscribeLive(server, person, filter, timeoutMs = 5_000) {
  let onFirst;
  const firstHeartbeat = new Promise((resolveFirst) => (onFirst = resolveFirst));
  const client = server.client(person.token, { onHeartbeat: () => onFirst("live") });
  const stream = new StreamCollector(client.groups.subscribeEvents(filter));
  const outcome = await waitFor(Promise.race([firstHeartbeat, stream.done.then(() => "ended")]), timeoutMs);
  if (outcome !== "live") {
    await stream.close();
    throw stream.error ?? new Error(`stream not live within ${timeoutMs} ms`);
  }
  return stream;
}

/** Resolve with `promise`'s value, or with undefined after `ms` (the timer is cleared either way). */
export async function waitFor(promise, ms) {
  let timer;
  try {
    return await Promise.race([promise, new Promise((resolveLater) => (timer = setTimeout(resolveLater, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function describeEvents(events) {
  return JSON.stringify(events.map((e) => ({ seq: e.sequence, chat: e.chatGuid, change: e.change?.type })));
}

// Fresh addresses (valid email / E.164 forms), unique within one test file.
// Every test file runs its own server, so they never collide across files.
let counter = 0;
export function uniqueEmail(prefix = "guest") {
  counter += 1;
  return `${prefix}${counter}@example.com`;
}
export function uniquePhone() {
  counter += 1;
  return `+1555${7_000_000 + counter}`;
}

/** "+15557000001" -> "+1 (555) 700-0001": a punctuated form of a +1 number. */
export function punctuatePhone(e164) {
  const d = e164.slice(2);
  return `+1 (${d.slice(0, 3)}) ${d.slice(3, 6)}-${d.slice(6)}`;
}
