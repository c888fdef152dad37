// The emulator's chat page: pick a user and a room, chat with the bot, watch the traffic.

import { el, renderComment } from "./render.js";
import { Inspector } from "./inspector.js";

const $ = (id) => document.getElementById(id);
const state = {
  bot: null,
  users: [],
  me: localStorage.getItem("qbot.me") || "",
  roomId: Number(localStorage.getItem("qbot.room")) || null,
  rooms: [],
};
const inspector = new Inspector($("exchanges"));

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${method} ${path} answered ${response.status}`);
  return data;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

// What goes wrong sending (a message, a tap) shows above the composer, where the user looks.
function showSendError(error) {
  const box = $("send-error");
  box.textContent = error ? `Not sent: ${error.message || error}` : "";
  box.hidden = !error;
}

async function guarded(fn) {
  try {
    showError(null);
    await fn();
  } catch (error) {
    showError(error);
  }
}

function renderUsers() {
  const select = $("user-select");
  select.replaceChildren(el("option", "", "— choose a user —"));
  select.firstChild.value = "";
  for (const user of state.users) {
    const option = el("option", "", `${user.username} <${user.email}>`);
    option.value = user.email;
    option.selected = user.email === state.me;
    select.append(option);
  }
}

// --- Omnichannel: a customer on a channel, and the agent desk --------------------------------

const omni = { on: localStorage.getItem("qbot.omni") === "1", desk: null };

function channelOf(room) {
  try {
    const options = typeof room.options === "string" ? JSON.parse(room.options || "{}") : room.options || {};
    return options.source || options.channel || null;
  } catch {
    return null;
  }
}

// Who writes in a desk room: "Harpi · 6281234" (a phone number's channel id), else name and email.
function customerLabel(service, id) {
  const { name, user_id: userId } = service.customer || {};
  if (!userId) return `room ${id}`;
  const local = userId.split("@")[0];
  const who = /^\+?\d+$/.test(local) ? local : userId;
  return name && name !== who ? `${name} · ${who}` : who;
}

async function loadDesk() {
  if (!omni.on) return;
  omni.desk = await api("GET", "/emulator/api/omnichannel");
  renderDesk();
}

function renderDesk() {
  $("omni-switch").checked = omni.on;
  $("omni-body").hidden = !omni.on;
  if (!omni.on || !omni.desk) return;
  const list = $("desk-rooms");
  list.replaceChildren();
  for (const service of omni.desk.services) {
    const id = Number(service.room_id);
    const li = el("li");
    const b = el("button", id === state.roomId ? "room active" : "room", `${customerLabel(service, id)} · ${service.source} · ${service.status}`);
    b.type = "button";
    b.dataset.room = String(id);
    b.addEventListener("click", () => guarded(() => openRoom(id)));
    li.append(b);
    list.append(li);
  }
  const select = $("agent-select");
  const chosen = select.value;
  select.replaceChildren(
    ...omni.desk.agents.map((a) => {
      const option = el("option", "", `${a.name}${a.is_available ? "" : " (away)"} · ${a.current_customer_count} customers`);
      option.value = String(a.id);
      return option;
    }),
  );
  const service = omni.desk.services.find((s) => Number(s.room_id) === state.roomId);
  $("agent-form").hidden = !service;
  // A resolved room is not resolved again: the desk refuses, and the survey must go out once.
  $("resolve").disabled = !service || service.resolved;
  $("resolve").title = service?.resolved ? "this room is resolved" : "";
  select.value = service && service.agent_ids.length ? String(service.agent_ids.at(-1)) : chosen || select.value;
}

$("omni-switch").addEventListener("change", (e) =>
  guarded(async () => {
    omni.on = e.target.checked;
    localStorage.setItem("qbot.omni", omni.on ? "1" : "0");
    renderDesk();
    await loadDesk();
  }),
);

$("customer-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const email = $("customer-email").value.trim();
    const room = await api("POST", "/emulator/api/omnichannel/customers", {
      email,
      name: $("customer-name").value,
      source: $("customer-channel").value,
    });
    e.target.reset();
    const info = await api("GET", "/emulator/api/state");
    state.users = info.users;
    renderUsers();
    await selectUser(room.customer || email); // a number is kept as its digits
    renderUsers();
    await openRoom(room.id);
    await loadDesk();
  });
});

$("agent-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const text = $("agent-text").value;
    await api("POST", `/emulator/api/omnichannel/rooms/${state.roomId}/agent`, { agent_id: Number($("agent-select").value), text });
    $("agent-text").value = "";
    await loadDesk();
  });
});

$("resolve").addEventListener("click", () =>
  guarded(async () => {
    await api("POST", `/emulator/api/omnichannel/rooms/${state.roomId}/resolve`, { agent_id: Number($("agent-select").value) });
    await loadDesk();
  }),
);

function roomLabel(room) {
  if (room.type === "single") {
    const other = room.participants.find((p) => p.email !== state.me);
    return other ? `${other.username} (single)` : room.name;
  }
  const channel = channelOf(room);
  if (channel) return `${room.name} (${channel})`;
  return `${room.name} (group, ${room.participants.length})`;
}

function renderRooms() {
  const list = $("room-list");
  list.replaceChildren();
  for (const room of state.rooms) {
    const li = el("li");
    const b = el("button", room.id === state.roomId ? "room active" : "room", roomLabel(room));
    b.type = "button";
    b.addEventListener("click", () => guarded(() => openRoom(room.id)));
    li.append(b);
    list.append(li);
  }
}

async function loadRooms() {
  state.rooms = state.me ? await api("GET", `/emulator/api/users/${encodeURIComponent(state.me)}/rooms`) : [];
  renderRooms();
  // The open room's header follows its members (a group's count changes as people join).
  const open = state.rooms.find((r) => r.id === state.roomId);
  if (open) $("room-title").textContent = roomLabel(open);
}

// Comments arrive from two sources (the history fetch and the WebSocket) in any order: keep
// each once, sorted by id.
function appendComment(comment) {
  const list = $("messages");
  if (list.querySelector(`[data-id="${comment.id}"]`)) return;
  const node = renderComment(comment, state.me, tap);
  const later = [...list.children].find((li) => Number(li.dataset.id) > comment.id);
  list.insertBefore(node, later ?? null);
  list.scrollTop = list.scrollHeight;
}

async function openRoom(roomId) {
  state.roomId = roomId;
  showSendError(null);
  localStorage.setItem("qbot.room", String(roomId));
  const room = state.rooms.find((r) => r.id === roomId);
  $("room-title").textContent = room ? roomLabel(room) : `room ${roomId}`;
  $("room-title").classList.toggle("muted", !room);
  $("member-form").hidden = room?.type !== "group";
  renderRooms();
  // Cleared before the fetch: live events arriving meanwhile are merged, not wiped.
  $("messages").replaceChildren();
  inspector.clear();
  const [comments, exchanges] = await Promise.all([
    api("GET", `/emulator/api/rooms/${roomId}/comments`),
    api("GET", `/emulator/api/exchanges?room_id=${roomId}`),
  ]);
  if (state.roomId !== roomId) return; // another room was opened meanwhile
  comments.forEach(appendComment);
  exchanges.forEach((exchange) => inspector.addExchange(exchange));
  $("text").disabled = false;
  $("send").disabled = false;
  $("text").focus();
  renderDesk();
}

async function post(body) {
  if (!state.roomId || !state.me) throw new Error("choose a user and a room first");
  await api("POST", `/emulator/api/rooms/${state.roomId}/messages`, { sender_email: state.me, ...body });
}

// A postback tap posts what the Qiscus Android SDK posts: a button_postback_response whose
// payload is the button's payload echoed verbatim, text = postback_text or the label.
async function tap(button) {
  showSendError(null);
  try {
    if (button.type === "quick_reply") {
      // WhatsApp: a tap on a template's quick reply arrives as the customer's text, the label.
      await post({ type: "text", text: button.label });
      return;
    }
    await post({
      type: "button_postback_response",
      text: button.postback_text || button.label || "Button",
      payload: button.payload ?? null,
    });
  } catch (error) {
    showSendError(error);
  }
}

async function selectUser(email) {
  state.me = email;
  localStorage.setItem("qbot.me", email);
  // Rooms belong to a user: nothing to open or create until one is chosen.
  $("chat-with-bot").disabled = !email;
  $("group-form").querySelector("button").disabled = !email;
  state.roomId = null;
  $("messages").replaceChildren();
  inspector.clear();
  $("text").disabled = true;
  $("send").disabled = true;
  $("room-title").textContent = email ? "Pick a room or chat with the bot." : "Pick or create a user.";
  $("member-form").hidden = true;
  await loadRooms();
}

function connect(delay = 500) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/emulator/ws`);
  const conn = $("conn");
  socket.addEventListener("open", () => {
    conn.textContent = "live";
    conn.className = "conn online";
    delay = 500;
  });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (event.event === "comment" && event.comment.room_id === state.roomId) appendComment(event.comment);
    if (event.event === "comment" || event.event === "room") guarded(loadRooms);
    if (event.event === "exchange" && event.exchange.room_id === state.roomId) inspector.addExchange(event.exchange);
    if (event.event === "traffic") inspector.addTraffic(event.traffic);
    if (event.event === "clock") showClock(event.clock);
    if (omni.on && ["comment", "room", "traffic"].includes(event.event)) guarded(loadDesk);
  });
  socket.addEventListener("close", () => {
    conn.textContent = "offline";
    conn.className = "conn offline";
    setTimeout(() => connect(Math.min(delay * 2, 5000)), delay);
  });
}

// The first customer (not an agent, not the admin), else Ana, created: someone to chat as.
async function firstCustomer(desk) {
  const staff = new Set([desk.admin_email, ...desk.agents.map((a) => a.email)]);
  const found = state.users.find((u) => !staff.has(u.email));
  if (found) return found;
  const user = await api("POST", "/emulator/api/users", { email: "ana@example.com", username: "Ana" });
  state.users.push(user);
  return user;
}

// The user's chat with the bot: their channel room (an Omnichannel customer), else the
// one-to-one room, created on first use.
async function openChatWithBot() {
  const channelRoom = state.rooms.find((r) => channelOf(r));
  if (channelRoom) return openRoom(channelRoom.id);
  const room = await api("POST", "/emulator/api/rooms", { type: "single", user_email: state.me });
  await loadRooms();
  await openRoom(room.id);
}

// The emulated time: the bot's clock, which "skip ahead" moves (WhatsApp windows close,
// follow-ups fire). Shown ticking locally between updates when it follows real time.
const clock = { base: null, at: 0, running: true, offset: 0, manual: false };

function showClock(view) {
  clock.base = view.now;
  clock.at = Date.now() / 1000;
  clock.running = view.running;
  clock.offset = view.offset;
  clock.manual = view.manual;
  for (const id of ["skip-1h", "skip-25h"]) $(id).disabled = !view.manual;
  renderClock();
}

function renderClock() {
  if (clock.base === null) return;
  const now = clock.base + (clock.running ? Date.now() / 1000 - clock.at : 0);
  const ahead = clock.offset ? ` (+${+(clock.offset / 3600).toFixed(2)} h)` : "";
  const node = $("clock-now");
  node.textContent = `emulated ${new Date(now * 1000).toLocaleString()}${ahead}`;
  node.dataset.now = String(now);
  node.dataset.offset = String(clock.offset);
}

async function skipAhead(hours) {
  showClock(await api("POST", "/emulator/api/clock/advance", { hours }));
}

$("skip-1h").addEventListener("click", () => guarded(() => skipAhead(1)));
$("skip-25h").addEventListener("click", () => guarded(() => skipAhead(25)));
setInterval(renderClock, 1000);

async function init() {
  const [info, desk, time] = await Promise.all([
    api("GET", "/emulator/api/state"),
    api("GET", "/emulator/api/omnichannel"),
    api("GET", "/emulator/api/clock"),
  ]);
  showClock(time);
  if (desk.delivers_as_omnichannel && localStorage.getItem("qbot.omni") === null) omni.on = true;
  omni.desk = desk;
  renderDesk();
  state.bot = info.bot;
  state.users = info.users;
  $("bot-info").textContent = `bot ${info.bot.name} <${info.bot.email}> · app ${info.app_id} · webhook ${info.webhook_url || "not set"}${info.signed ? " (signed)" : ""}`;
  // Any visit with no user chosen (the first, a new browser, the next day: the emulator keeps its
  // users) opens a chat with the bot, so typing works right away.
  if (!state.users.some((u) => u.email === state.me)) state.me = (await firstCustomer(desk)).email;
  renderUsers();
  await selectUser(state.me);
  const remembered = Number(localStorage.getItem("qbot.room"));
  if (remembered && state.rooms.some((r) => r.id === remembered)) await openRoom(remembered);
  else await openChatWithBot();
  connect();
}

$("user-select").addEventListener("change", (e) => guarded(() => selectUser(e.target.value)));

$("user-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    const user = await api("POST", "/emulator/api/users", { email: $("user-email").value, username: $("user-name").value });
    if (!state.users.some((u) => u.email === user.email)) state.users.push(user);
    state.me = user.email;
    renderUsers();
    e.target.reset();
    await selectUser(user.email);
  });
});

$("chat-with-bot").addEventListener("click", () =>
  guarded(async () => {
    if (!state.me) throw new Error("choose or add a user first");
    const room = await api("POST", "/emulator/api/rooms", { type: "single", user_email: state.me });
    await loadRooms();
    await openRoom(room.id);
  }),
);

$("group-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    if (!state.me) throw new Error("choose or add a user first");
    const members = $("group-members").value.split(",").map((s) => s.trim()).filter(Boolean);
    const room = await api("POST", "/emulator/api/rooms", { type: "group", user_email: state.me, name: $("group-name").value, members });
    e.target.reset();
    await loadRooms();
    await openRoom(room.id);
  });
});

// Adding a member to a group posts an add_member system event, delivered to the bot.
$("member-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    await api("POST", `/emulator/api/rooms/${state.roomId}/members`, {
      user_email: state.me,
      member_email: $("member-email").value,
    });
    e.target.reset();
  });
});

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (!text.trim()) return;
  $("text").value = "";
  showSendError(null);
  try {
    await post({ type: "text", text });
  } catch (error) {
    // The typed text comes back unless the user already started typing something else.
    if (!$("text").value) $("text").value = text;
    showSendError(error);
  }
});

$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

guarded(init);
