// The todo demo page, on @capebase/client (served from /static/capebase/, a copy of
// clients/typescript's build): sign in with the built-in auth, change todos through the generated
// REST routes, and show a live query of the list that follows every change.
import { CapebaseError, PasswordAuth, createClient } from "/static/capebase/index.js";

const MESSAGE_MS = 8_000; // how long a message stays up

const $ = (selector) => document.querySelector(selector);

// The session lives in sessionStorage: per tab, so two tabs can be two users. The schema tells
// the live query how to order rows as the server does (capebase-types writes it for TypeScript).
const cape = createClient("", {
  auth: new PasswordAuth({ storage: sessionStorage, storageKey: "capebase-demo-session" }),
  schema: {
    todo: {
      primaryKey: "id",
      fields: { id: "integer", user_id: "string", task: "string", is_complete: "boolean", inserted_at: "datetime" },
    },
  },
});

const state = {
  users: new Map(), // user id -> name
  shown: new Set(), // ids of todos rendered before (a new one is highlighted once)
  filter: "all",
};

// The newest 100 todos, kept current: the client opens GET /todo/subscribe (with the access
// token in a header, never in the URL), loads the list once it is open, applies each change,
// resumes from its last token after a dropped connection or a server restart, reloads on a
// reset, and reconnects with the new token each time it renews it.
const todos = cape.live("todo", { orderBy: "-inserted_at", limit: 100 });
todos.onChange(render);
todos.onStateChange(showConnection);

// -- errors, in words for the person using the page ---------------------------------------------

function describeError(error, context = {}) {
  if (!(error instanceof CapebaseError)) return `Something went wrong: ${error}`;
  switch (error.status) {
    case 0:
      return "Cannot reach the server. Is it running?";
    case 401:
      return context.action ? `Sign in to ${context.action}.` : "Please sign in again.";
    case 403:
      if (context.todo) {
        return `You can only change your own todos. This one is ${ownerName(context.todo.user_id)}'s.`;
      }
      return "You are not allowed to do that.";
    case 404:
      return context.todo ? "That todo no longer exists." : "Not found.";
    case 409:
      return `${error.message}.`;
    case 422:
      return error.fieldErrors.length ? error.fieldErrors.map(describeInvalid).join(" ") : error.message;
    case 429:
      return `Too many attempts. Try again in ${error.retryAfter ?? "a few"} seconds.`;
    default:
      return error.message;
  }
}

const FIELD_NAMES = { task: "The task", email: "The email", username: "The username", password: "The password" };

function describeInvalid(problem) {
  const name = FIELD_NAMES[problem.field] || `"${problem.field}"`;
  const limits = problem.ctx || {};
  if (problem.type === "string_too_short" && limits.min_length === 1) return `${name} cannot be empty.`;
  if (problem.type === "string_too_short" && limits.min_length) {
    return `${name} needs at least ${limits.min_length} characters.`;
  }
  if (problem.type === "string_too_long" && limits.max_length) {
    return `${name} is too long (at most ${limits.max_length} characters).`;
  }
  if (problem.type === "missing") return `${name} is required.`;
  const message = problem.message.replace(/^Value error, /, "");
  // The server's own sentence when it names the field ("Password should have ..."), else ours.
  if (message.toLowerCase().startsWith(problem.field.toLowerCase())) return `${message}.`;
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
async function attempt(action, context) {
  try {
    await action();
  } catch (error) {
    showMessage(describeError(error, context));
  }
}

// -- auth ----------------------------------------------------------------------------------------

async function signIn(login, password) {
  try {
    await cape.auth.signIn(login, password);
  } catch (error) {
    if (!(error instanceof CapebaseError) || error.status !== 401) throw error;
    showMessage("Wrong username or password.");
    return;
  }
  hideMessage();
  await loadUsers();
}

async function signUp(email, username, password) {
  await cape.auth.signUp({ email, username, password });
  await signIn(email, password);
}

// Signing in or out changes the token: the live query's stream reconnects as the new caller,
// the server answers with a reset, and the list reloads by itself.
cape.auth.onChange((_session, event) => {
  showSignedIn();
  if (event === "expired") showMessage("Your sign-in has expired. Please sign in again.");
});

function showSignedIn() {
  const user = cape.auth.user;
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
  const accounts = await cape.request("GET", "/demo/accounts", { authenticate: false }).catch(() => []);
  if (!accounts.length) return;
  const holder = $("#demo-account-buttons");
  holder.replaceChildren();
  for (const account of accounts) {
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
    usersLoading = cape
      .request("GET", "/demo/users", { authenticate: false })
      .then((users) => {
        for (const user of users) state.users.set(user.id, user.name);
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
  if (cape.auth.user && cape.auth.user.id === userId) return "yours";
  return state.users.get(userId) || "another user";
}

// -- todos: changes go to the server; the live query shows what it answered ---------------------

function addTodo(task) {
  return cape.from("todo").create({ task });
}

function toggleTodo(todo) {
  return cape.from("todo").update(todo.id, { is_complete: !todo.is_complete });
}

function deleteTodo(todo) {
  return cape.from("todo").delete(todo.id);
}

function showConnection() {
  const labels = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", failed: "failed" };
  // Live once the list is loaded too.
  const name = todos.state === "live" && !todos.loaded ? "connecting" : todos.state;
  $("#connection").dataset.state = name;
  $("#connection-text").textContent = labels[name] || name;
  if (todos.state === "failed" && todos.error) showMessage(describeError(todos.error));
}

function visibleTodos() {
  const me = cape.auth.user && cape.auth.user.id;
  const all = todos.rows;
  return {
    all,
    mine: all.filter((todo) => todo.user_id === me),
    completed: all.filter((todo) => todo.is_complete),
  };
}

function render() {
  showConnection();
  const lists = visibleTodos();
  for (const button of document.querySelectorAll("[data-filter]")) {
    const name = button.dataset.filter;
    button.setAttribute("aria-pressed", String(name === state.filter));
    button.querySelector(".count").textContent = String(lists[name].length);
  }
  if (lists.all.some((todo) => !state.users.has(todo.user_id))) loadUsers();
  const shown = lists[state.filter];
  const me = cape.auth.user && cape.auth.user.id;
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
    attempt(() => toggleTodo(todo), { todo, action: "change todos" });
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
  remove.addEventListener("click", () => attempt(() => deleteTodo(todo), { todo, action: "delete todos" }));

  item.append(toggle, task, owner, time, remove);
  return item;
}

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
  $("#sign-out").addEventListener("click", () => attempt(() => cape.auth.signOut()));
  $("#add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#new-task");
    attempt(async () => {
      await addTodo(input.value);
      input.value = "";
    }, { action: "add todos" });
  });
  $("#message-close").addEventListener("click", hideMessage);
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.addEventListener("click", () => {
      state.filter = button.dataset.filter;
      render();
    });
  }
}

wire();
showSignedIn();
loadDemoAccounts();
loadUsers();
