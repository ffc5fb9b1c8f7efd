// The todo demo page: sign in with capebase's built-in auth, read and change todos through the
// generated REST routes, and follow every change live over Server-Sent Events.
"use strict";

const REFRESH_MARGIN_MS = 60_000; // refresh the access token this long before it expires…
const REFRESH_MARGIN_SHARE = 0.2; // …or, for short-lived tokens, this share of their lifetime
const MAX_RETRY_MS = 3_000; // longest wait between two attempts to reopen the stream
const MESSAGE_MS = 8_000; // how long a message stays up

const $ = (selector) => document.querySelector(selector);

const state = {
  session: loadSession(), // {accessToken, refreshToken, expiresAt, refreshAt, user} or null
  todos: new Map(), // id -> todo
  users: new Map(), // user id -> name
  shown: new Set(), // ids of todos rendered before (a new one is highlighted once)
  filter: "all",
};

// -- session: tokens kept in sessionStorage (per tab: two tabs can be two users) ------------

function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem("capebase-demo-session"));
    return session && session.refreshAt ? session : null;
  } catch {
    return null;
  }
}

function saveSession(session) {
  state.session = session;
  if (session) sessionStorage.setItem("capebase-demo-session", JSON.stringify(session));
  else sessionStorage.removeItem("capebase-demo-session");
  scheduleRefresh();
}

function fromTokens(tokens, user) {
  const now = Date.now();
  const lifetime = tokens.expires_in * 1000;
  return {
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    expiresAt: now + lifetime,
    refreshAt: now + lifetime - Math.min(REFRESH_MARGIN_MS, lifetime * REFRESH_MARGIN_SHARE),
    user,
  };
}

let refreshTimer = null;
let refreshing = null; // the refresh in flight, shared by everyone who needs it

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!state.session) return;
  const wait = Math.max(1_000, state.session.refreshAt - Date.now());
  refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), wait);
}

// Exchange the refresh token for new tokens; a refused one ends the sign-in.
function refreshTokens() {
  if (!refreshing) {
    refreshing = (async () => {
      const session = state.session;
      if (!session) throw new ApiError(401, "Please sign in again.");
      const response = await send("POST", "/auth/refresh", { json: { refresh_token: session.refreshToken } });
      if (response.status === 401) {
        endSession("Your sign-in has expired. Please sign in again.");
        throw new ApiError(401, "Your sign-in has expired. Please sign in again.");
      }
      if (!response.ok) throw new ApiError(response.status, describeError(response, {}));
      saveSession(fromTokens(response.body, session.user));
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function freshAccessToken() {
  if (!state.session) return null;
  if (Date.now() >= state.session.refreshAt) await refreshTokens();
  return state.session ? state.session.accessToken : null;
}

// -- HTTP --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One request; resolves to {ok, status, headers, body} (body parsed as JSON when it is JSON).
async function send(method, path, { json, form, token } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiError(0, "Cannot reach the server. Is it running?");
  }
  const text = await response.text();
  let parsed = null;
  if (text && (response.headers.get("content-type") || "").includes("json")) parsed = JSON.parse(text);
  return { ok: response.ok, status: response.status, headers: response.headers, body: parsed };
}

// A request as the signed-in user: refreshes the token first when it is about to expire, and
// after a 401 (the server refused the token: it restarted with another secret, say).
// Throws ApiError with a readable message when the answer is not a success.
async function api(method, path, { json, context = {} } = {}) {
  let response = await send(method, path, { json, token: await freshAccessToken() });
  if (response.status === 401 && state.session) {
    await refreshTokens();
    response = await send(method, path, { json, token: state.session && state.session.accessToken });
  }
  if (!response.ok) throw new ApiError(response.status, describeError(response, context));
  return response.body;
}

// What an error answer means, in words for the person using the page.
function describeError(response, context) {
  const detail = response.body && response.body.detail;
  switch (response.status) {
    case 401:
      return context.action ? `Sign in to ${context.action}.` : "Please sign in again.";
    case 403:
      if (context.todo) {
        const owner = ownerName(context.todo.user_id);
        return `You can only change your own todos. This one is ${owner}'s.`;
      }
      return "You are not allowed to do that.";
    case 404:
      return context.todo ? "That todo no longer exists." : "Not found.";
    case 409:
      return typeof detail === "string" ? detail + "." : "That already exists.";
    case 422:
      return Array.isArray(detail) ? detail.map(describeInvalid).join(" ") : String(detail);
    case 429: {
      const wait = response.headers.get("retry-after");
      return `Too many attempts. Try again in ${wait || "a few"} seconds.`;
    }
    default:
      return typeof detail === "string" ? detail : `The server answered ${response.status}.`;
  }
}

const FIELD_NAMES = { task: "The task", email: "The email", username: "The username", password: "The password" };

function describeInvalid(problem) {
  const field = Array.isArray(problem.loc) ? String(problem.loc[problem.loc.length - 1]) : "";
  const name = FIELD_NAMES[field] || `"${field}"`;
  const limits = problem.ctx || {};
  if (problem.type === "string_too_short" && limits.min_length === 1) return `${name} cannot be empty.`;
  if (problem.type === "string_too_short" && limits.min_length) {
    return `${name} needs at least ${limits.min_length} characters.`;
  }
  if (problem.type === "string_too_long" && limits.max_length) {
    return `${name} is too long (at most ${limits.max_length} characters).`;
  }
  if (problem.type === "missing") return `${name} is required.`;
  const message = String(problem.msg || "is not valid").replace(/^Value error, /, "");
  // The server's own sentence when it names the field ("Password should have ..."), else ours.
  if (message.toLowerCase().startsWith(field.toLowerCase())) return `${message}.`;
  return `${name}: ${message}.`;
}

// -- messages ----------------------------------------------------------------------------------

let messageTimer = null;

function showMessage(text, kind = "error") {
  $("#message-text").textContent = text;
  $("#message").dataset.kind = kind;
  $("#message").hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(hideMessage, MESSAGE_MS);
}

function hideMessage() {
  $("#message").hidden = true;
}

// Run an action; show its error (if any) instead of throwing it.
async function attempt(action) {
  try {
    await action();
  } catch (error) {
    showMessage(error instanceof ApiError ? error.message : `Something went wrong: ${error}`);
  }
}

// -- auth forms ----------------------------------------------------------------------------------

async function signIn(login, password) {
  const response = await send("POST", "/auth/token", { form: { username: login, password } });
  if (response.status === 401) throw new ApiError(401, "Wrong username or password.");
  if (!response.ok) throw new ApiError(response.status, describeError(response, {}));
  const tokens = response.body;
  const me = await send("GET", "/auth/me", { token: tokens.access_token });
  if (!me.ok) throw new ApiError(me.status, describeError(me, {}));
  saveSession(fromTokens(tokens, me.body));
  await loadUsers();
  hideMessage();
  showSignedIn();
  stream.restart();
}

async function signUp(email, username, password) {
  const json = { email, password };
  if (username) json.username = username;
  const response = await send("POST", "/auth/signup", { json });
  if (!response.ok) throw new ApiError(response.status, describeError(response, {}));
  await signIn(email, password);
}

async function signOut() {
  const session = state.session;
  endSession(null);
  if (session) await send("POST", "/auth/logout", { json: { refresh_token: session.refreshToken } }).catch(() => {});
}

// Forget the sign-in (it was ended or refused) and go on as an anonymous reader.
function endSession(message) {
  if (!state.session) return;
  saveSession(null);
  showSignedIn();
  stream.restart();
  if (message) showMessage(message);
}

function showSignedIn() {
  const user = state.session && state.session.user;
  $("#auth").hidden = Boolean(user);
  $("#add-form").hidden = !user;
  $("#whoami").hidden = !user;
  $("#whoami-name").textContent = user ? displayName(user) : "";
  render();
}

function displayName(user) {
  return user.username || user.email.split("@")[0];
}

async function loadDemoAccounts() {
  const response = await send("GET", "/demo/accounts").catch(() => null);
  if (!response || !response.ok || !response.body.length) return;
  const holder = $("#demo-account-buttons");
  holder.replaceChildren();
  for (const account of response.body) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = account.username;
    button.title = `Sign in as ${account.username} (password ${account.password})`;
    button.addEventListener("click", () => {
      $("#login-name").value = account.username;
      $("#login-password").value = account.password;
      $("#sign-in-form").requestSubmit();
    });
    holder.append(button, " ");
  }
  $("#demo-accounts").hidden = false;
}

// -- users: todos name their owner by id; the page shows names ---------------------------------

let usersLoading = null;

function loadUsers() {
  if (!usersLoading) {
    usersLoading = send("GET", "/demo/users")
      .then((response) => {
        if (response.ok) for (const user of response.body) state.users.set(user.id, user.name);
        render();
      })
      .catch(() => {})
      .finally(() => {
        usersLoading = null;
      });
  }
  return usersLoading;
}

function ownerName(userId) {
  if (state.session && state.session.user.id === userId) return "yours";
  return state.users.get(userId) || "another user";
}

// -- todos ---------------------------------------------------------------------------------------

async function loadTodos() {
  const response = await send("GET", "/todo?order_by=-inserted_at&limit=100");
  if (!response.ok) throw new ApiError(response.status, describeError(response, {}));
  state.todos = new Map(response.body.map((todo) => [todo.id, todo]));
}

async function addTodo(task) {
  const todo = await api("POST", "/todo", { json: { task }, context: { action: "add todos" } });
  state.todos.set(todo.id, todo);
  render();
}

async function toggleTodo(todo) {
  const updated = await api("PATCH", `/todo/${todo.id}`, {
    json: { is_complete: !todo.is_complete },
    context: { todo, action: "change todos" },
  });
  state.todos.set(updated.id, updated);
  render();
}

async function deleteTodo(todo) {
  await api("DELETE", `/todo/${todo.id}`, { context: { todo, action: "delete todos" } });
  state.todos.delete(todo.id);
  render();
}

// A change from the stream: the row's new image, or its removal from our view.
function applyChange(change) {
  if (change.event === "DELETE") state.todos.delete(change.payload.id);
  else state.todos.set(change.payload.id, change.payload);
  if (change.payload.user_id && !state.users.has(change.payload.user_id)) loadUsers();
}

function visibleTodos() {
  const me = state.session && state.session.user.id;
  const all = [...state.todos.values()].sort(
    (a, b) => Date.parse(b.inserted_at) - Date.parse(a.inserted_at) || b.id - a.id,
  );
  return {
    all,
    mine: all.filter((todo) => todo.user_id === me),
    completed: all.filter((todo) => todo.is_complete),
  };
}

function render() {
  const lists = visibleTodos();
  for (const button of document.querySelectorAll("[data-filter]")) {
    const name = button.dataset.filter;
    button.setAttribute("aria-pressed", String(name === state.filter));
    button.querySelector(".count").textContent = String(lists[name].length);
  }
  const shown = lists[state.filter];
  const me = state.session && state.session.user.id;
  $("#todos").replaceChildren(...shown.map((todo) => renderTodo(todo, todo.user_id === me)));
  const empty = $("#empty");
  empty.hidden = shown.length > 0;
  if (state.filter === "mine") empty.textContent = me ? "You have no todos yet." : "Sign in to see your todos.";
  else if (state.filter === "completed") empty.textContent = "Nothing completed yet.";
  else empty.textContent = "No todos yet.";
}

function renderTodo(todo, isMine) {
  const item = document.createElement("li");
  item.className = "todo";
  item.dataset.id = String(todo.id);
  item.dataset.mine = String(isMine);
  item.classList.toggle("done", todo.is_complete);
  if (!state.shown.has(todo.id)) item.classList.add("arrived");
  state.shown.add(todo.id);

  const toggle = document.createElement("input");
  toggle.type = "checkbox";
  toggle.className = "toggle";
  toggle.checked = todo.is_complete;
  toggle.setAttribute("aria-label", `Mark "${todo.task}" ${todo.is_complete ? "not done" : "done"}`);
  toggle.addEventListener("click", (event) => {
    event.preventDefault(); // the server decides; the list shows what it answered
    attempt(() => toggleTodo(todo));
  });

  const task = document.createElement("span");
  task.className = "task";
  task.textContent = todo.task;

  const owner = document.createElement("span");
  owner.className = "owner";
  owner.textContent = isMine ? "yours" : `${ownerName(todo.user_id)}'s`;
  if (!isMine) {
    const lock = document.createElement("span");
    lock.className = "read-only";
    lock.textContent = "read-only";
    lock.title = "Only its owner (or an admin) may change it: try, and see what the server says";
    owner.append(" ", lock);
  }

  const time = document.createElement("time");
  time.dateTime = todo.inserted_at;
  time.textContent = new Date(todo.inserted_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete "${todo.task}"`);
  remove.addEventListener("click", () => attempt(() => deleteTodo(todo)));

  item.append(toggle, task, owner, time, remove);
  return item;
}

// -- the live stream -----------------------------------------------------------------------------

// Follows GET /todo/subscribe. A signed-in page opens it with a single-use ticket from
// POST /auth/stream-ticket (?ticket=), so that its access token never goes into a URL, where
// logs would keep it. An anonymous page's EventSource reconnects by itself after a dropped
// connection and sends the last event id back (Last-Event-ID), so the server replays what was
// missed. A ticket works once, so a signed-in page reconnects with a new EventSource and a new
// ticket, resuming from the same id with ?last_event_id=; so does any page when the browser
// gives up (an error answer) or the server ends the stream on purpose.
const stream = {
  source: null,
  lastEventId: "", // the resume token of the last change applied
  hasBeenLive: false,
  needsList: true, // load the list when the stream opens (first time, or nothing to resume from)
  buffered: null, // changes that arrive while the list loads
  retryTimer: null,
  retries: 0,
  refused: false, // the last attempt was answered with an error: refresh the token first
  ticketed: false, // opened with a ticket, which the browser's own retry cannot reuse
  generation: 0, // bumped by close(): an open() that awaited meanwhile gives up

  setState(name, detail = "") {
    const labels = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" };
    $("#connection").dataset.state = name;
    $("#connection-text").textContent = labels[name] + detail;
  },

  // Start over: new identity or first load (fresh list, no resume).
  restart() {
    this.lastEventId = "";
    this.hasBeenLive = false;
    this.needsList = true;
    this.open();
  },

  // quiet: a planned handover (a new token); the page stays "live" unless it fails.
  async open({ quiet = false } = {}) {
    this.close();
    const generation = this.generation;
    if (!quiet) this.setState(this.hasBeenLive ? "reconnecting" : "connecting");
    let ticket = null;
    try {
      if (this.refused && state.session) await refreshTokens();
      this.refused = false;
      if (state.session) ticket = (await api("POST", "/auth/stream-ticket")).ticket;
    } catch (error) {
      // A refused refresh token ended the sign-in (and restarted the stream as anonymous).
      if ((error.status !== 401 || state.session) && generation === this.generation) this.retryLater();
      return;
    }
    if (generation !== this.generation) return;
    this.ticketed = ticket !== null;
    const params = new URLSearchParams();
    if (ticket) params.set("ticket", ticket);
    if (this.lastEventId) params.set("last_event_id", this.lastEventId);
    const query = params.toString();
    const source = new EventSource(`/todo/subscribe${query ? "?" + query : ""}`);
    this.source = source;
    source.onopen = () => this.opened(source);
    source.onmessage = (event) => this.received(source, event);
    source.onerror = () => this.failed(source);
    source.addEventListener("reset", (event) => this.reset(source, event));
    source.addEventListener("expired", () => this.reopen(source));
    source.addEventListener("overflow", (event) => {
      const resume = JSON.parse(event.data).resume;
      if (resume) this.lastEventId = resume;
      this.reopen(source);
    });
  },

  close() {
    this.generation += 1;
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  },

  async opened(source) {
    if (source !== this.source) return;
    this.hasBeenLive = true;
    if (this.needsList) {
      this.needsList = false;
      this.buffered = [];
      try {
        await loadTodos();
      } catch (error) {
        if (source !== this.source) return;
        this.buffered = null;
        this.needsList = true;
        showMessage(error.message);
        return this.retryLater();
      }
      if (source !== this.source) return;
      // Changes that arrived while the list loaded may predate it; applied in order they
      // still end on the latest image of each row.
      for (const change of this.buffered) applyChange(change);
      this.buffered = null;
      render();
    }
    this.retries = 0;
    this.setState("live");
  },

  received(source, event) {
    if (source !== this.source) return;
    const change = JSON.parse(event.data);
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    if (this.buffered) return this.buffered.push(change);
    applyChange(change);
    render();
  },

  // The server has dropped what we would resume from: reload the list.
  reset(source, event) {
    if (source !== this.source) return;
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    this.needsList = true;
    this.opened(source);
  },

  failed(source) {
    if (source !== this.source) return;
    if (!this.lastEventId) this.needsList = true; // nothing to resume from: reload on open
    if (source.readyState === EventSource.CONNECTING && this.ticketed) {
      // The browser would retry with the used ticket: reconnect with a new one instead.
      return this.retryLater();
    }
    if (source.readyState === EventSource.CONNECTING) {
      // The browser retries by itself and sends Last-Event-ID.
      this.setState(this.hasBeenLive ? "reconnecting" : "connecting");
      return;
    }
    // The browser gave up: the server answered with an error, which EventSource does not
    // show. If it was a 401 the token is stale, so the next attempt gets a new one first.
    this.refused = true;
    this.retryLater();
  },

  // The server ended the stream on purpose (expired token, too slow): resume right away.
  reopen(source) {
    if (source !== this.source) return;
    this.open({ quiet: true });
  },

  retryLater() {
    this.close();
    this.setState(this.hasBeenLive ? "reconnecting" : "connecting");
    const wait = Math.min(MAX_RETRY_MS, 500 * 2 ** this.retries);
    this.retries += 1;
    this.retryTimer = setTimeout(() => this.open(), wait);
  },
};

// -- wiring --------------------------------------------------------------------------------------

function wire() {
  $("#sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => signIn($("#login-name").value.trim(), $("#login-password").value));
  });
  $("#sign-up-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() =>
      signUp($("#signup-email").value.trim(), $("#signup-username").value.trim(), $("#signup-password").value),
    );
  });
  $("#show-sign-up").addEventListener("click", () => {
    $("#sign-in-form").hidden = true;
    $("#sign-up-form").hidden = false;
  });
  $("#show-sign-in").addEventListener("click", () => {
    $("#sign-up-form").hidden = true;
    $("#sign-in-form").hidden = false;
  });
  $("#sign-out").addEventListener("click", () => attempt(signOut));
  $("#add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#new-task");
    attempt(async () => {
      await addTodo(input.value);
      input.value = "";
    });
  });
  $("#message-close").addEventListener("click", hideMessage);
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.addEventListener("click", () => {
      state.filter = button.dataset.filter;
      render();
    });
  }
}

// Back online after a network outage: try at once instead of waiting for the next retry.
window.addEventListener("online", () => {
  if ($("#connection").dataset.state !== "live") stream.open();
});

wire();
showSignedIn();
scheduleRefresh();
loadDemoAccounts();
loadUsers();
stream.restart();
