// The imgroups console: one module, no build step. It talks to /console/api/* with the admin
// token from session storage (never from a URL) and renders everything client-side.

const TOKEN_KEY = "imgroups.adminToken";
const PAGE = 50;

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  account: null, // address of the chosen account
  offset: 0,
  total: 0,
  oldest: null, // lowest sequence shown in the log
  newest: 0, // highest sequence shown in the log
  stream: null, // AbortController of the open event stream
  icons: new Map(), // guid -> {version, url}
  open: new Set(), // guids whose "Change" panel is open, kept across re-renders
  refreshTimer: null,
  actions: [], // what a person can do to a group (GET actions), the "Change" panel's forms
  chat: null, // the chat whose conversation is open
  conversationTimer: null,
  names: new Map(), // guid -> the group's name, newest known, shown beside GUIDs in the log
};

// ---------------------------------------------------------------------------- plumbing

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.errorCode = body?.errorCode ?? "httpError";
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, { method = "GET", json, body, contentType, raw = false } = {}) {
  const headers = { authorization: `Bearer ${token() ?? ""}` };
  if (contentType) headers["content-type"] = contentType;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(`/console/api/${path}`, { method, headers, body });
  if (!response.ok) {
    let error = null;
    try {
      error = await response.json();
    } catch {
      // not JSON: the status says enough
    }
    const failure = new ApiError(response.status, error);
    if (response.status === 401) signOut(failure);
    throw failure;
  }
  return raw ? response : response.json();
}

function query(params) {
  return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null)).toString();
}

function showError(error) {
  const box = $("#error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = error instanceof ApiError ? `${error.errorCode}: ${error.message}` : String(error.message ?? error);
  box.hidden = false;
}

/** Runs an action from a control, showing its error; refreshes what it may have changed. */
async function run(action) {
  showError(null);
  await refresh(action);
}

/**
 * Runs a background refresh (a timer, a live event): it shows its own error but never clears
 * one, so the error of what the person just did stays on screen when the page re-reads itself.
 */
async function refresh(action) {
  try {
    await action();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showError(error);
  }
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function time(at) {
  const iso = new Date(at).toISOString();
  return el("time", { datetime: iso, text: iso.replace("T", " ").replace(/\.\d+Z$/, "Z") });
}

function splitAddresses(text) {
  return text.split(/[\s,;]+/).map((a) => a.trim()).filter(Boolean);
}

function puppet() {
  const asPuppet = document.querySelector('input[name="actor"]:checked')?.value === "puppet";
  return asPuppet ? $("#puppet").value.trim() || null : null;
}

// ----------------------------------------------------------------------------- session

/** Back to the sign-in form; `reason` (an error) is shown above it. */
function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  closeStream();
  // Nothing of the account's world stays on the page.
  $("#groups").replaceChildren();
  $("#events").replaceChildren();
  $("#accounts").replaceChildren();
  $("#admin-tokens").replaceChildren();
  $("#faults").replaceChildren();
  $("#unreachable").replaceChildren();
  $("#webhooks tbody").replaceChildren();
  $("#account").replaceChildren();
  $("#clock").replaceChildren();
  $("#clock-controls").hidden = true;
  $("#seed-made").replaceChildren();
  $("#seed-summary").textContent = "";
  $("#seed-result").hidden = true;
  for (const { url } of state.icons.values()) URL.revokeObjectURL(url);
  state.icons.clear();
  state.account = null;
  $("#app").hidden = true;
  $("#session-controls").hidden = true;
  $("#signin").hidden = false;
  showError(reason ?? null);
  $("#signin-form [name=token]").focus();
}

async function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  await api("session");
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#session-controls").hidden = false;
  showError(null);
  ({ actions: state.actions } = await api("actions"));
  await Promise.all([loadAccounts(), loadSim(), loadWebhooks()]);
}

// ---------------------------------------------------------------------------- accounts

async function loadAccounts() {
  const { accounts } = await api("accounts");
  const select = $("#account");
  const chosen = state.account ?? sessionStorage.getItem("imgroups.account");
  select.replaceChildren(...accounts.map((a) => el("option", { value: a.address, text: a.address })));
  const list = $("#accounts");
  list.replaceChildren(
    ...accounts.map((a) =>
      el(
        "li",
        {},
        el("strong", { text: a.address }),
        " ",
        el("button", { type: "button", class: "quiet", onclick: () => run(() => mintToken(a.address)) }, `New token for ${a.address}`),
        el(
          "ul",
          { class: "plain tokens" },
          ...a.tokens.map((t) =>
            el(
              "li",
              {},
              // The token's description and its button are two boxes apart (CSS: ul.tokens li),
              // so "Revoke" never reads as part of the token's text.
              el("span", { class: "token-label" }, `Token ${t.id} · created `, time(t.createdAt)),
              t.revoked
                ? el("span", { class: "muted", text: "(revoked)" })
                : el(
                    "button",
                    { type: "button", class: "quiet small-button", "aria-label": `Revoke token ${t.id}`, onclick: () => run(() => revokeToken(t.id)) },
                    "Revoke",
                  ),
            ),
          ),
        ),
      ),
    ),
  );
  await loadAdminTokens();
  const next = accounts.some((a) => a.address === chosen) ? chosen : accounts[0]?.address;
  if (next) {
    select.value = next;
    if (next !== state.account) await chooseAccount(next);
  }
}

function showSecret(text) {
  $("#secret-value").textContent = text;
  $("#secret").hidden = false;
}

async function mintToken(address) {
  const { token: secret } = await api("tokens", { method: "POST", json: { address } });
  showSecret(`${address}: ${secret}`);
  await loadAccounts();
}

async function revokeToken(id) {
  await api("tokens:revoke", { method: "POST", json: { id } });
  await loadAccounts();
}

/** The console's own credentials: revoking the one this page uses signs it out. */
async function loadAdminTokens() {
  const { tokens } = await api("admin-tokens");
  $("#admin-tokens").replaceChildren(
    ...tokens.map((t) =>
      el(
        "li",
        {},
        el("span", { class: "token-label" }, `Admin token ${t.id} · created `, time(t.createdAt)),
        el(
          "button",
          { type: "button", class: "quiet small-button", "aria-label": `Revoke admin token ${t.id}`, onclick: () => run(() => revokeAdminToken(t.id)) },
          "Revoke",
        ),
      ),
    ),
  );
}

async function revokeAdminToken(id) {
  await api("admin-tokens:revoke", { method: "POST", json: { id } });
  await loadAdminTokens();
}

// ------------------------------------------------------------------------------ groups

async function chooseAccount(address) {
  closeConversation();
  state.account = address;
  sessionStorage.setItem("imgroups.account", address);
  state.offset = 0;
  state.names.clear();
  for (const { url } of state.icons.values()) URL.revokeObjectURL(url);
  state.icons.clear();
  await Promise.all([loadGroups(), loadEvents()]);
}

async function loadGroups() {
  const account = state.account;
  if (!account) return;
  const page = await api(`chats?${query({ account, offset: state.offset, limit: PAGE })}`);
  if (account !== state.account) return;
  state.total = page.total;
  if (state.offset >= page.total && page.total > 0) {
    state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
    return loadGroups();
  }
  for (const chat of page.chats) state.names.set(chat.guid, chat.displayName);
  paintNames();
  $("#groups-total").textContent = `(${page.total})`;
  const pages = Math.max(1, Math.ceil(page.total / PAGE));
  $("#groups-page").textContent = `Page ${Math.floor(state.offset / PAGE) + 1} of ${pages}`;
  $("#groups-prev").disabled = state.offset === 0;
  $("#groups-next").disabled = state.offset + PAGE >= page.total;
  // Re-rendering must not take a half-typed value, a chosen file or the focus from the person
  // using the page: a card whose group did not change is kept as it is.
  const list = $("#groups");
  if (list.contains(document.activeElement) && document.activeElement.value) return;
  const kept = new Map([...list.children].map((node) => [node.dataset.key, node]));
  const nodes = page.chats.map((chat) => {
    const key = JSON.stringify([chat.guid, chat.displayName, chat.participants, chat.iconVersion]);
    const node = kept.get(key) ?? renderGroup(chat);
    node.dataset.key = key;
    return node;
  });
  const same = nodes.length === list.children.length && nodes.every((node, i) => list.children[i] === node);
  if (!same) list.replaceChildren(...nodes);
}

function groupName(chat) {
  return chat.displayName || chat.guid;
}

function renderGroup(chat) {
  const node = $("#group-template").content.firstElementChild.cloneNode(true);
  const name = groupName(chat);
  $("article", node).setAttribute("aria-label", `Group ${name}`);
  $(".name", node).textContent = chat.displayName || "(no name)";
  $(".guid", node).textContent = chat.guid;
  $(".members", node).textContent = `Members: ${[state.account, ...chat.participants].join(", ")}`;
  const icon = $(".icon", node);
  if (chat.iconVersion) {
    const img = el("img", { alt: `Icon of ${name}`, width: "48", height: "48" });
    icon.replaceChildren(img);
    loadIcon(chat, img);
  } else {
    icon.replaceChildren(el("span", { class: "placeholder", "aria-hidden": "true", text: name.slice(0, 1).toUpperCase() }));
  }
  const details = $("details", node);
  details.open = state.open.has(chat.guid);
  details.addEventListener("toggle", () => {
    if (details.open) state.open.add(chat.guid);
    else state.open.delete(chat.guid);
  });
  renderActions(chat, $(".actions", node));
  $(".open-chat", node).addEventListener("click", () => run(() => openConversation(chat)));
  return node;
}

// ------------------------------------------------------------------------ conversation

// Words and marks every font has (a console is often a headless browser without emoji).
const TAPBACKS = { love: "\u2665", like: "Like", dislike: "Dislike", laugh: "Ha ha", emphasize: "!!", question: "?" };

/** A tapback's kind as the API's JSON names it (`MESSAGE_REACTION_KIND_LIKE`), as a word. */
function tapbackKind(reaction) {
  return String(reaction?.kind ?? "").replace(/^MESSAGE_REACTION_KIND_/, "").toLowerCase();
}

async function openConversation(chat) {
  state.chat = { guid: chat.guid, name: groupName(chat) };
  // The card's name and GUID at once, so the view never shows another chat's (or none)
  // while its messages load.
  $("#conversation-title").textContent = state.chat.name;
  $("#conversation-guid").textContent = chat.guid;
  $("#bubbles").replaceChildren();
  $("#conversation").hidden = false;
  await loadConversation();
  $("#compose [name=text]").focus();
}

function closeConversation() {
  state.chat = null;
  $("#conversation").hidden = true;
  $("#bubbles").replaceChildren();
}

async function loadConversation() {
  const open = state.chat;
  if (!open || !state.account) return;
  const view = await api(`conversation?${query({ account: state.account, chat: open.guid })}`);
  if (open !== state.chat) return;
  $("#conversation-title").textContent = view.chat.displayName || open.name;
  $("#conversation-guid").textContent = view.chat.guid;
  const byGuid = new Map(view.items.filter((i) => i.type === "message").map((i) => [i.message.guid, i.message]));
  const list = $("#bubbles");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
  list.replaceChildren(...view.items.map((item) => (item.type === "system" ? renderSystem(item) : renderBubble(item.message, byGuid, view.chat.isGroup))));
  if (atBottom) list.scrollTop = list.scrollHeight;
  $("#typing").textContent = view.typing.length ? `${view.typing.join(", ")} ${view.typing.length === 1 ? "is" : "are"} typing\u2026` : "";
}

function renderSystem(item) {
  return el("li", { class: "system" }, item.text, " ", time(item.occurredAt));
}

/** One message as Messages draws it: mine on the right, theirs on the left with the sender. */
function renderBubble(message, byGuid, isGroup) {
  const mine = message.isFromMe;
  const unsent = Boolean(message.dateRetracted);
  const node = el("li", { class: `bubble ${mine ? "mine" : "theirs"}${unsent ? " unsent" : ""}`, "data-guid": message.guid });
  if (!mine && isGroup) node.append(el("span", { class: "sender", text: message.sender?.address ?? "" }));
  const quoted = message.replyTargetGuid && byGuid.get(message.replyTargetGuid);
  if (message.replyTargetGuid) {
    node.append(el("span", { class: "quote", text: quoted ? `\u21A9 ${quoted.content?.text ?? "(unsent)"}` : "\u21A9 an earlier message" }));
  }
  node.append(el("span", { class: "text", text: unsent ? (mine ? "You unsent a message" : "Message unsent") : message.content?.text ?? "" }));
  const reactions = message.appliedReactions ?? [];
  if (reactions.length) {
    const line = reactions
      .map((r) => {
        const kind = tapbackKind(r.reaction);
        return `${kind === "emoji" ? r.reaction.emoji : TAPBACKS[kind] ?? kind} ${r.isFromMe ? "you" : r.sender?.address ?? ""}`;
      })
      .join(" \u00B7 ");
    node.append(el("span", { class: "tapbacks", text: line }));
  }
  const meta = [message.dateEdited ? "Edited" : null, mine && message.dateRead ? "Read" : null].filter(Boolean);
  node.append(el("span", { class: "meta" }, ...[meta.join(" \u00B7 "), meta.length ? " " : "", time(message.dateCreated)]));
  if (!unsent) {
    for (const kind of ["love", "like", "laugh"]) {
      node.append(
        el("button", { type: "button", class: "react", title: `React ${kind}`, "aria-label": `React ${kind} to ${message.content?.text ?? message.guid}`, onclick: () => run(() => converse({ op: "react", message: message.guid, reaction: kind })) }, TAPBACKS[kind]),
      );
    }
  }
  return node;
}

/** Says or does something in the open conversation, as the account or the puppet. */
async function converse(request) {
  if (!state.chat) return;
  const result = await api("act", { method: "POST", json: { account: state.account, puppet: puppet(), chat: state.chat.guid, ...request } });
  await loadConversation();
  return result;
}

async function loadIcon(chat, img) {
  const cached = state.icons.get(chat.guid);
  if (cached && cached.version === chat.iconVersion) {
    img.src = cached.url;
    return;
  }
  try {
    const response = await api(`icon?${query({ account: state.account, chat: chat.guid })}`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    if (cached) URL.revokeObjectURL(cached.url);
    state.icons.set(chat.guid, { version: chat.iconVersion, url });
    img.src = url;
  } catch {
    img.alt = `Icon of ${groupName(chat)} (cannot load)`;
  }
}

// ----------------------------------------------------------------------------- actions

/** The act route's name of an action whose name there predates the shared description. */
const ACT_OPS = { "icon-rm": "removeIcon" };
const IMAGE_TYPES = "image/png,image/jpeg,image/gif,image/heic,image/heif";

/**
 * The "Change" panel of a group: a form per action that takes values, a button per action
 * that does not, destructive ones last. Built from `state.actions`, the description
 * `imgroups sim act` and `imgroups groups` are built from too, so an action added there
 * appears here with its labels and fields.
 */
function renderActions(chat, container) {
  const ordered = [...state.actions].sort((a, b) => Number(a.destructive) - Number(b.destructive));
  const buttons = el("div", { class: "row" });
  for (const action of ordered) {
    if (action.params.length === 0) {
      const props = { type: "button", title: action.summary, onclick: () => run(() => perform(action, chat, new Map())) };
      if (action.destructive) props.class = "danger";
      // Spaced like buttons written in HTML: the row is not a flex box.
      buttons.append(el("button", props, action.label), " ");
      continue;
    }
    const form = el("form", { class: "row", "data-action": action.name, title: action.summary });
    for (const param of action.params) form.append(el("label", {}, `${param.label} `, field(param, chat)));
    form.append(el("button", { type: "submit" }, action.label));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      run(() => perform(action, chat, values(action, form)));
    });
    container.append(form);
  }
  if (buttons.children.length) container.append(buttons);
}

/** The input for one parameter, by its kind. */
function field(param, chat) {
  const common = { "aria-label": param.label, name: param.name, title: param.help, required: "" };
  switch (param.kind) {
    case "members":
      return el("select", common, ...chat.participants.map((p) => el("option", { value: p, text: p })));
    case "imageFile":
      return el("input", { ...common, type: "file", accept: IMAGE_TYPES });
    case "newAddresses":
      return el("input", { ...common, type: "text", spellcheck: "false", placeholder: "a@example.com, +15551234567" });
    default:
      return el("input", { ...common, type: "text" });
  }
}

/** What the form holds, by parameter name, in the shape the API takes. */
function values(action, form) {
  const data = new FormData(form);
  return new Map(
    action.params.map((param) => {
      const value = data.get(param.name);
      switch (param.kind) {
        case "newAddresses":
          return [param.name, splitAddresses(String(value ?? ""))];
        case "members":
          return [param.name, value ? [String(value)] : []];
        case "imageFile":
          return [param.name, value];
        default:
          return [param.name, String(value ?? "")];
      }
    }),
  );
}

/** Performs `action` on the group, as the account or the puppet chosen above. */
async function perform(action, chat, given) {
  const image = action.params.find((p) => p.kind === "imageFile");
  if (image) {
    // Images travel as the body of their own route, not inside JSON.
    const file = given.get(image.name);
    if (!(file instanceof File) || file.size === 0) throw new Error("choose an image file first");
    await api(`icon?${query({ account: state.account, chat: chat.guid, puppet: puppet() })}`, {
      method: "POST",
      body: file,
    });
    await loadGroups();
    return;
  }
  await act({ op: ACT_OPS[action.name] ?? action.name, chat: chat.guid, ...Object.fromEntries(given) });
}

async function act(request) {
  const result = await api("act", { method: "POST", json: { account: state.account, puppet: puppet(), ...request } });
  await loadGroups();
  return result;
}

// ------------------------------------------------------------------------------ events

// Events come in the official SDK's shape, every kind of them (`type`, `actor.address`, RFC
// 3339 times): a group event says what changed in `change`; a message event carries its
// fields beside the envelope (`message`, or `messageGuid` with `content`, `reaction`, …); a
// chat event is its `type` alone.
function describe(event) {
  if (event.change) {
    const { type, displayName, participant } = event.change;
    const detail = displayName ?? participant?.address;
    return detail !== undefined ? `${type} ${JSON.stringify(detail)}` : `${type}`;
  }
  const text = event.message?.text ?? event.content?.text;
  const detail = text ?? event.reaction?.emoji ?? event.reaction?.kind ?? event.messageGuid ?? event.message?.guid;
  return detail !== undefined ? `${event.type} ${JSON.stringify(detail)}` : `${event.type}`;
}

/**
 * Learns a group's name from an event. `live`: the event is newer than anything seen, so its
 * name wins; otherwise (history, read newest first) only a group with no known name takes it.
 */
function learnName(event, live) {
  const name = event.change?.type === "displayNameChanged" ? event.change.displayName : undefined;
  if (name === undefined || !event.chatGuid) return;
  if (live || !state.names.has(event.chatGuid)) state.names.set(event.chatGuid, name);
}

/** Writes every known group name beside its GUID in the event log. */
function paintNames() {
  for (const node of document.querySelectorAll("#events .group-name")) {
    const name = state.names.get(node.dataset.guid);
    node.textContent = name ? `${name} · ` : "";
  }
}

function renderEvent(event) {
  return el(
    "li",
    { "data-sequence": String(event.sequence) },
    el("span", { class: "seq", text: `#${event.sequence}` }),
    " ",
    el("span", { class: "change", text: describe(event) }),
    " ",
    el("span", { class: "actor", text: `by ${event.isFromMe ? `${event.actor?.address ?? state.account} (me)` : event.actor?.address ?? "unknown"}` }),
    " ",
    time(event.occurredAt),
    el(
      "div",
      { class: "muted small" },
      el("span", { class: "group-name", "data-guid": event.chatGuid ?? "" }),
      el("span", { class: "event-guid", text: event.chatGuid ?? "" }),
    ),
  );
}

async function loadEvents() {
  closeStream();
  const account = state.account;
  const page = await api(`events?${query({ account, limit: PAGE })}`);
  if (account !== state.account) return;
  for (const event of page.events) learnName(event, false);
  $("#events").replaceChildren(...page.events.map(renderEvent));
  paintNames();
  state.newest = page.head;
  state.oldest = page.events.at(-1)?.sequence ?? page.head + 1;
  updateEventControls(page.prunedThrough);
  openStream(account, page.head);
}

function updateEventControls(prunedThrough = 0) {
  $("#events-head").textContent = state.newest ? `(head ${state.newest})` : "";
  $("#events-older").disabled = state.oldest <= prunedThrough + 1;
}

async function olderEvents() {
  const page = await api(`events?${query({ account: state.account, before: state.oldest, limit: PAGE })}`);
  for (const event of page.events) learnName(event, false);
  $("#events").append(...page.events.map(renderEvent));
  paintNames();
  if (page.events.length) state.oldest = page.events.at(-1).sequence;
  updateEventControls(page.prunedThrough);
}

function closeStream() {
  state.stream?.abort();
  state.stream = null;
}

/** Server-Sent Events read with fetch, so the token travels in a header, not the URL. */
async function openStream(account, after) {
  const controller = new AbortController();
  state.stream = controller;
  let cursor = after;
  while (!controller.signal.aborted && account === state.account) {
    try {
      const response = await fetch(`/console/api/events:stream?${query({ account, after: cursor })}`, {
        headers: { authorization: `Bearer ${token() ?? ""}`, accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (response.status === 401) {
        return signOut(new ApiError(401, await response.json().catch(() => null)));
      }
      if (!response.ok) throw new Error(`event stream: HTTP ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const kind = /^event: ?(.*)$/m.exec(block)?.[1] ?? "message";
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          if (!data) continue;
          if (kind === "error") {
            const failure = JSON.parse(data);
            // The admin token was revoked while the page was open: back to the sign-in form.
            if (failure.errorCode === "tokenBlocked" || failure.errorCode === "unauthenticated") {
              return signOut(new ApiError(401, failure));
            }
            showError({ message: `event stream ended: ${failure.message}` });
            return;
          }
          const event = JSON.parse(data);
          cursor = Math.max(cursor, event.sequence);
          onLiveEvent(event);
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    // Reconnect after a pause, from the last event seen.
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function onLiveEvent(event) {
  if (event.sequence <= state.newest) return;
  state.newest = event.sequence;
  learnName(event, true);
  $("#events").prepend(renderEvent(event));
  paintNames();
  updateEventControls();
  if (state.chat && event.chatGuid === state.chat.guid) {
    clearTimeout(state.conversationTimer);
    state.conversationTimer = setTimeout(() => refresh(loadConversation), 100);
  }
  // Group cards change with the log: re-read the page once a burst has passed.
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => refresh(loadGroups), 100);
}

// --------------------------------------------------------------------------- simulator

async function loadSim() {
  const [sim] = await Promise.all([api("sim"), loadClock()]);
  const method = $('#fault-form [name="method"]');
  if (!method.options.length) {
    method.replaceChildren(
      el("option", { value: "*", text: "* (every method)" }),
      ...sim.methods.map((m) => el("option", { value: m, text: m })),
    );
    $('#fault-form [name="code"]').replaceChildren(
      el("option", { value: "", text: "none (latency only)" }),
      ...sim.codes.map((c) => el("option", { value: c, text: c })),
    );
    $('#fault-form [name="code"]').value = "databaseError";
  }
  $("#faults").replaceChildren(
    ...sim.faults.map((f) => {
      const what = [
        f.code ? `fails with ${f.code}${f.retryable ? " (retryable)" : ""}` : null,
        f.latencyMs ? `+${f.latencyMs} ms` : null,
        f.left !== null ? `${f.left} call${f.left === 1 ? "" : "s"} left` : null,
        f.until !== null ? `until ${new Date(f.until).toISOString()}` : null,
      ].filter(Boolean);
      return el(
        "li",
        {},
        `Fault ${f.id}: ${f.account} ${f.method} ${what.join(", ")} `,
        el("button", { type: "button", class: "quiet", onclick: () => run(() => clearFaults({ id: f.id })) }, `Clear fault ${f.id}`),
      );
    }),
  );
  $("#faults-clear").disabled = sim.faults.length === 0;
  $("#unreachable").replaceChildren(
    ...sim.unreachable.map((address) =>
      el(
        "li",
        {},
        `${address} `,
        el("button", { type: "button", class: "quiet", onclick: () => run(() => setUnreachable(address, false)) }, `Make ${address} reachable`),
      ),
    ),
  );
}

/** The store's clock: a controllable one (`serve --seed N`) with its seed and the ids drawn. */
function showClock(clock) {
  const line = $("#clock");
  if (!clock.controllable) {
    line.replaceChildren("System time: the clock moves by itself. Start ", el("code", { text: "serve --seed N" }), " for a clock you move.");
    $("#clock-controls").hidden = true;
    return;
  }
  line.replaceChildren(
    time(clock.now),
    ` \u00B7 seed ${clock.seed} \u00B7 ${clock.ids} id${clock.ids === 1 ? "" : "s"} drawn`,
  );
  $("#clock-controls").hidden = false;
}

async function loadClock() {
  showClock(await api("sim/clock"));
}

async function advanceClock(by) {
  showClock(await api("sim/clock:advance", { method: "POST", json: { by } }));
  // Faults and typing run out with the clock; messages' windows move.
  await Promise.all([loadSim(), loadConversation()]);
}

/** Sends the seed file in the form to the server; shows the tokens and names it answers. */
async function seedWorld(form) {
  const data = new FormData(form);
  const reset = data.get("reset") === "on";
  if (reset && !confirm("Reset the simulator, then seed? Every group, message and event log is cleared first; accounts and tokens stay.")) return;
  const answer = await api(`sim:seed?${query({ reset: reset ? "true" : "false" })}`, {
    method: "POST",
    body: String(data.get("source") ?? ""),
    contentType: "application/toml",
  });
  const { accounts, chats, steps } = answer.counts;
  $("#seed-summary").textContent = `Seeded: ${accounts} account${accounts === 1 ? "" : "s"} made, ${chats} chat${chats === 1 ? "" : "s"} created, ${steps} step${steps === 1 ? "" : "s"} done${answer.reset ? ", after a reset" : ""}.`;
  const line = (kind, name, value) => el("li", {}, el("strong", { text: `${kind} ${name}` }), ": ", el("span", { text: value }));
  $("#seed-made").replaceChildren(
    ...Object.entries(answer.tokens).map(([address, secret]) => line("token", address, secret)),
    ...Object.entries(answer.chats).map(([id, guid]) => line("chat", id, guid)),
    ...Object.entries(answer.messages).map(([id, guid]) => line("message", id, guid)),
  );
  $("#seed-result").hidden = false;
  if (reset) closeConversation();
  await Promise.all([loadSim(), loadWebhooks(), loadAccounts()]);
  if (state.account) await Promise.all([loadGroups(), reset ? loadEvents() : null]);
}

async function resetWorld() {
  if (!confirm("Reset the simulator? Every group, message and event log is cleared; accounts and tokens stay.")) return;
  await api("sim:reset", { method: "POST", json: {} });
  closeConversation();
  await Promise.all([loadSim(), loadWebhooks(), loadAccounts()]);
  if (state.account) await chooseAccount(state.account);
}

/** Saves the world as a file: the server's answer, handed to the browser as a download. */
async function exportSnapshot() {
  const response = await api("sim/snapshot", { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: "imgroups-snapshot.json" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  $("#snapshot-summary").textContent = "Snapshot downloaded.";
}

/** Replaces the world with a snapshot file chosen in the page, after a confirmation. */
async function importSnapshot(input) {
  const file = input.files?.[0];
  input.value = "";
  if (!file) return;
  if (!confirm(`Replace the whole simulated world with ${file.name}? Every account, group, message and event log now in the simulator is replaced; admin tokens stay.`)) return;
  const answer = await api("sim/snapshot:import", { method: "POST", body: await file.text(), contentType: "application/json" });
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  $("#snapshot-summary").textContent = `Imported ${plural(answer.accounts, "account")}, ${plural(answer.groups, "group")}, ${plural(answer.messages, "message")} and ${plural(answer.events, "event")}.`;
  closeConversation();
  const before = state.account;
  await Promise.all([loadSim(), loadWebhooks(), loadAccounts()]);
  // loadAccounts chose another account if this one is not in the imported world; if it is,
  // its groups and log are another world's now.
  const kept = [...$("#account").options].some((option) => option.value === before);
  if (kept && state.account === before) await chooseAccount(before);
}

async function clearFaults(which) {
  await api("faults:clear", { method: "POST", json: which });
  await loadSim();
}

async function setUnreachable(address, unreachable) {
  await api("sim/unreachable", { method: "POST", json: { address, unreachable } });
  await loadSim();
}

async function injectFault(form) {
  const data = new FormData(form);
  const number = (name) => (data.get(name) ? Number(data.get(name)) : null);
  await api("faults", {
    method: "POST",
    json: {
      account: state.account,
      method: data.get("method"),
      code: data.get("code") || null,
      retryable: data.get("retryable") === "on",
      latencyMs: number("latencyMs") ?? 0,
      count: number("count"),
      forSecs: number("forSecs"),
    },
  });
  await loadSim();
}

// ---------------------------------------------------------------------------- webhooks

async function loadWebhooks() {
  const { webhooks } = await api("webhooks");
  if (!webhooks.length) {
    $("#webhooks tbody").replaceChildren(
      el("tr", {}, el("td", { colspan: "5", class: "muted", text: "None yet: add one with imgroups webhook add or POST /v1/webhooks." })),
    );
    return;
  }
  $("#webhooks tbody").replaceChildren(
    ...webhooks.map((w) =>
      el(
        "tr",
        {},
        el("td", { text: w.account }),
        el("td", { text: w.url }),
        el("td", { text: `${w.delivered} of ${w.head}` }),
        el("td", { text: String(w.failures) }),
        el("td", { text: w.paused ? `paused: ${w.lastError ?? ""}` : w.lastError ? `retrying: ${w.lastError}` : "ok" }),
      ),
    ),
  );
}

// -------------------------------------------------------------------------------- wire

function wire() {
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = new FormData(event.target).get("token").trim();
    run(() => signIn(value)).then(() => event.target.reset());
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#account").addEventListener("change", (event) => run(() => chooseAccount(event.target.value)));
  for (const radio of document.querySelectorAll('input[name="actor"]')) {
    radio.addEventListener("change", () => {
      $("#puppet").disabled = radio.value === "account";
      if (radio.value === "puppet") $("#puppet").focus();
    });
  }
  $("#create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    run(async () => {
      await act({ op: "create", addresses: splitAddresses(String(data.get("members"))), name: data.get("name") });
      event.target.reset();
    });
  });
  $("#groups-prev").addEventListener("click", () =>
    run(() => {
      state.offset = Math.max(0, state.offset - PAGE);
      return loadGroups();
    }),
  );
  $("#groups-next").addEventListener("click", () =>
    run(() => {
      state.offset += PAGE;
      return loadGroups();
    }),
  );
  $("#events-older").addEventListener("click", () => run(olderEvents));
  $("#conversation-close").addEventListener("click", closeConversation);
  $("#compose").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = String(new FormData(event.target).get("text") ?? "");
    run(async () => {
      await converse({ op: "say", text });
      event.target.reset();
    });
  });
  $("#fault-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => injectFault(event.target));
  });
  $("#faults-clear").addEventListener("click", () => run(() => clearFaults({})));
  $("#sim-reset").addEventListener("click", () => run(resetWorld));
  $("#snapshot-export").addEventListener("click", () => run(exportSnapshot));
  $("#snapshot-import").addEventListener("change", (event) => run(() => importSnapshot(event.target)));
  $("#clock-1m").addEventListener("click", () => run(() => advanceClock("1m")));
  $("#clock-10m").addEventListener("click", () => run(() => advanceClock("10m")));
  $("#clock-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const by = String(new FormData(event.target).get("by") ?? "").trim();
    run(async () => {
      await advanceClock(by);
      event.target.reset();
    });
  });
  $("#seed-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => seedWorld(event.target));
  });
  // A file chosen here is read by the browser into the text box: the server never sees a path.
  $('#seed-form [name="file"]').addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) run(async () => ($('#seed-form [name="source"]').value = await file.text()));
  });
  $("#unreachable-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const address = new FormData(event.target).get("address").trim();
    run(async () => {
      await setUnreachable(address, true);
      event.target.reset();
    });
  });
  $("#account-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const address = new FormData(event.target).get("address").trim();
    run(async () => {
      const created = await api("accounts", { method: "POST", json: { address } });
      showSecret(`${created.address}: ${created.token}`);
      event.target.reset();
      await loadAccounts();
    });
  });
  // Faults run out, webhooks move and groups appear (a new group is no event in anyone's
  // log) on their own: keep those panels fresh.
  setInterval(() => {
    // A background refresh: it never clears an error the person has yet to read.
    if (token() && !$("#app").hidden) refresh(() => Promise.all([loadSim(), loadWebhooks(), loadGroups(), loadConversation()]));
  }, 2000);
}

wire();
if (token()) {
  run(() => signIn(token())).then(() => {
    if ($("#app").hidden && $("#signin").hidden) signOut();
  });
} else {
  signOut();
}
