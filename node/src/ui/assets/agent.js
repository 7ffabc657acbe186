// Agent desktop: the agent's own view (GET /agents/{login}) refreshed on every event of its
// stream; actions are the API's desktop, order and pre-order endpoints. Alt+key shortcuts.
// Orders and pre-orders are sent with `Prefer: respond-async`: when the site is cut off from
// the cluster they are kept at the site (202 pending) and listed under "Pending" until they
// commit, when they turn into the real order (GET /pending?agent=, polled while any waits).
"use strict";

const desk = {
  login: "",
  view: null,
  offerDeadline: null,
  historyFor: null,
  pendingTimer: null,
};

// How often pending creates are looked at while one waits.
const PENDING_POLL_MS = 3000;
const ASYNC = { Prefer: "respond-async" };

function describePending(entry) {
  const request = entry.request || {};
  const what = entry.kind.replace("_", "-");
  const items = request.items ? " · " + request.items.map((item) => item.quantity + "× " + item.name).join(", ") :
    request.name ? " · " + request.quantity + "× " + request.name : "";
  if (entry.status === "committed") {
    const result = entry.result || {};
    const id = result.order ?? result.pre_order ?? result.reservation ?? result.complaint;
    return what + " #" + (id ?? "?") + " committed (was pending)" + " · " + (request.caller || "") + items;
  }
  if (entry.status === "refused") {
    return what + " refused after the heal: " + ((entry.problem && entry.problem.detail) || "") + " · " + (request.caller || "");
  }
  return what + " pending — kept at this site until the cluster is back · " + (request.caller || "") + items;
}

async function refreshPending() {
  let list;
  try {
    list = await cg.api("GET", "/pending?agent=" + encodeURIComponent(desk.login) + "&limit=20");
  } catch (error) {
    return;
  }
  const entries = (list && list.pending) || [];
  const items = entries.map((entry) => cg.h("li", { class: "pending-" + entry.status, "data-status": entry.status, "data-pending": entry.pending_id }, describePending(entry)));
  if (!items.length) items.push(cg.h("li", { class: "muted" }, "nothing pending"));
  cg.put("pending", items);
  const waiting = entries.some((entry) => entry.status === "pending");
  clearTimeout(desk.pendingTimer);
  if (waiting) desk.pendingTimer = setTimeout(refreshPending, PENDING_POLL_MS);
}

// What a create's answer says: "#17 placed" or "pending".
function placed(what, created) {
  if (!created) return what + " refused (see log)";
  if (created.status === "pending") {
    refreshPending();
    return what + " pending: kept at this site, it will be placed when the cluster is back";
  }
  const id = created.order ?? created.pre_order ?? created.id;
  return what + (id !== undefined ? " #" + id : "") + " placed";
}

function log(message) {
  const entry = cg.h("li", {}, new Date().toLocaleTimeString() + " " + message);
  const list = document.getElementById("log");
  list.prepend(entry);
  while (list.children.length > 50) list.lastChild.remove();
}

async function act(what, method, path, body, extra) {
  try {
    const value = await cg.api(method, path, body, extra);
    log(what + ": ok");
    await refresh();
    return value;
  } catch (error) {
    log(what + ": " + error.message);
    return null;
  }
}

function agentPath(rest) {
  return "/agents/" + encodeURIComponent(desk.login) + (rest || "");
}

function contactOf(stage) {
  const contacts = (desk.view && desk.view.contacts) || [];
  return contacts.find((contact) => stage.includes(contact.stage)) || null;
}

async function loadHistory(caller) {
  if (!caller || desk.historyFor === caller) return;
  desk.historyFor = caller;
  cg.text("history-caller", caller);
  const query = "?caller=" + encodeURIComponent(caller) + "&limit=20";
  const kinds = [
    ["order", "/orders"],
    ["pre-order", "/pre-orders"],
    ["complaint", "/complaints"],
  ];
  const items = [];
  for (const [kind, path] of kinds) {
    try {
      const list = await cg.api("GET", path + query);
      const records = Array.isArray(list) ? list : Object.values(list).find(Array.isArray) || [];
      for (const record of records) {
        items.push(cg.h("li", { "data-kind": kind },
          kind + " #" + record.id + " · " + (record.status || record.state || "") +
          (record.items ? " · " + record.items.map((item) => item.quantity + "× " + item.name).join(", ") : "") +
          (record.name ? " · " + record.quantity + "× " + record.name : "")));
      }
    } catch (error) {
      // A role that may not list these records (agents and complaints) simply sees none.
      if (error.status !== 403) items.push(cg.h("li", { class: "muted" }, kind + "s: " + error.message));
    }
  }
  if (!items.length) items.push(cg.h("li", { class: "muted" }, "no earlier orders, pre-orders or complaints"));
  cg.put("history", items);
  for (const id of ["order-caller", "pre-caller"]) {
    const input = document.getElementById(id);
    if (!input.value) input.value = caller;
  }
}

function renderOffer() {
  const offer = contactOf(["offered"]);
  const panel = document.getElementById("offer");
  panel.hidden = !offer;
  if (!offer) return;
  cg.text("offer-channel", offer.channel);
  cg.text("offer-caller", offer.caller);
  cg.text("offer-topic", "topic: " + offer.topic + " · queue " + offer.skill + (offer.transferred_from ? " · transferred" : ""));
  panel.dataset.contact = offer.id;
  loadHistory(offer.caller);
}

function renderCurrent() {
  const contact = contactOf(["talking", "wrap_up"]);
  const panel = document.getElementById("current");
  panel.hidden = !contact;
  if (!contact) return;
  panel.dataset.contact = contact.id;
  cg.text("current-id", "#" + contact.id);
  cg.text("current-stage", contact.stage);
  cg.text("current-caller", contact.caller);
  cg.text("current-topic", "topic: " + contact.topic + " · " + contact.channel);
  document.getElementById("end").disabled = contact.stage !== "talking";
  document.getElementById("transfer").disabled = contact.stage !== "talking";
  loadHistory(contact.caller);
}

async function showTranscript(contactId) {
  const box = document.getElementById("transcript");
  try {
    const contact = await cg.api("GET", agentPath("/contacts/" + contactId));
    const messages = contact.messages || [];
    box.hidden = messages.length === 0;
    cg.put(box, messages.map((message) => cg.h("div", {}, message.from + ": " + message.text)));
  } catch (error) {
    box.hidden = true;
  }
}

function render() {
  const view = desk.view;
  const state = view ? view.state : "–";
  const reason = view && view.not_ready_reason ? " (" + view.not_ready_reason.replace("_", " ") + ")" : "";
  const element = document.getElementById("state");
  element.textContent = state.replace("_", " ") + reason;
  element.className = "state " + state;
  document.getElementById("ready").disabled = state === "available" || state === "logged_out";
  document.getElementById("login").disabled = state !== "logged_out";
  renderOffer();
  renderCurrent();
  const current = contactOf(["talking", "wrap_up"]);
  if (current && current.channel === "chat") showTranscript(current.id);
  // Replies only while talking on a chat.
  document.getElementById("chat-form").hidden =
    !(current && current.channel === "chat" && current.stage === "talking");
}

async function sendChat(event) {
  event.preventDefault();
  const current = contactOf(["talking"]);
  const input = document.getElementById("chat-text");
  if (!current || current.channel !== "chat" || !input.value.trim()) return;
  const sent = await act("reply", "POST", agentPath("/contacts/" + current.id + "/messages"), {
    text: input.value,
  });
  if (sent !== null) {
    input.value = "";
    showTranscript(current.id);
  }
}

async function refresh() {
  try {
    desk.view = await cg.api("GET", agentPath());
    render();
  } catch (error) {
    log("refresh: " + error.message);
  }
}

function offerId() {
  return document.getElementById("offer").dataset.contact;
}

function currentId() {
  return document.getElementById("current").dataset.contact;
}

const actions = {
  login: () => act("log in", "POST", agentPath("/login")),
  logout: () => act("log out", "POST", agentPath("/logout")),
  ready: () => act("ready", "POST", agentPath("/state"), { state: "ready" }),
  notReady: () => act("not ready", "POST", agentPath("/state"),
    { state: "not_ready", reason: document.getElementById("reason").value }),
  accept: () => !document.getElementById("offer").hidden && act("accept", "POST", agentPath("/contacts/" + offerId() + "/accept")),
  reject: () => !document.getElementById("offer").hidden && act("reject", "POST", agentPath("/contacts/" + offerId() + "/reject")),
  end: () => !document.getElementById("current").hidden && act("end", "POST", agentPath("/contacts/" + currentId() + "/end")),
  transfer: () => !document.getElementById("current").hidden && act("transfer to line 2", "POST", agentPath("/contacts/" + currentId() + "/transfer"), { skill: "line2" }),
  wrapUp: async () => {
    if (document.getElementById("current").hidden) return;
    const code = document.getElementById("disposition").value;
    await act("wrap-up " + code, "POST", agentPath("/contacts/" + currentId() + "/wrap-up"), { code });
    desk.historyFor = null;
  },
};

function value(id) {
  return document.getElementById(id).value.trim();
}

async function placeOrder(event) {
  event.preventDefault();
  const place = value("order-place");
  const body = {
    caller: value("order-caller"),
    items: [{
      sku: value("order-sku"),
      name: value("order-name"),
      quantity: Number(value("order-quantity")),
      unit_price_minor: Math.round(Number(value("order-price")) * 100),
    }],
    fulfilment: value("order-fulfilment") === "pickup" ? { pickup: { pharmacy: place } } : { delivery: { address: place } },
    payment: value("order-payment"),
    delivery_note: value("order-note"),
  };
  const created = await act("order", "POST", "/orders", body, ASYNC);
  cg.text("order-result", placed("order", created));
  if (created) desk.historyFor = null;
}

async function placePreOrder(event) {
  event.preventDefault();
  const body = {
    caller: value("pre-caller"),
    sku: value("pre-sku"),
    name: value("pre-name"),
    quantity: Number(value("pre-quantity")),
    pharmacy: value("pre-pharmacy"),
  };
  const created = await act("pre-order", "POST", "/pre-orders", body, ASYNC);
  cg.text("pre-order-result", placed("pre-order", created));
  if (created) desk.historyFor = null;
}

const SHORTCUTS = {
  l: actions.login, r: actions.ready, n: actions.notReady, a: actions.accept, j: actions.reject,
  e: actions.end, t: actions.transfer, w: actions.wrapUp,
  o: () => document.getElementById("order-caller").focus(),
  p: () => document.getElementById("pre-caller").focus(),
};

function onKey(event) {
  if (!event.altKey || event.ctrlKey || event.metaKey) return;
  const action = SHORTCUTS[event.key.toLowerCase()];
  if (!action) return;
  event.preventDefault();
  action();
}

function onEvent(event) {
  if (event.type === "offer") log("offer: contact " + (event.contact && event.contact.id));
  if (event.type === "chat_message") log("chat: " + event.message.text);
  refresh();
}

function onLink(up) {
  const link = document.getElementById("link");
  link.textContent = up ? "live" : "offline";
  link.className = "link " + (up ? "up" : "down");
  if (up) {
    refresh();
    refreshPending();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  cg.boot(["agent", "supervisor"], (session) => {
    // Agents act as themselves; a supervisor or admin names the agent: /ui/agent?login=anna.
    const asked = new URLSearchParams(location.search).get("login");
    desk.login = session.role === "agent" ? session.name : asked || session.name;
    cg.text("agent", desk.login);
    document.getElementById("login").addEventListener("click", actions.login);
    document.getElementById("logout").addEventListener("click", actions.logout);
    document.getElementById("ready").addEventListener("click", actions.ready);
    document.getElementById("not-ready").addEventListener("click", actions.notReady);
    document.getElementById("accept").addEventListener("click", actions.accept);
    document.getElementById("reject").addEventListener("click", actions.reject);
    document.getElementById("end").addEventListener("click", actions.end);
    document.getElementById("transfer").addEventListener("click", actions.transfer);
    document.getElementById("wrap-up-form").addEventListener("submit", (event) => {
      event.preventDefault();
      actions.wrapUp();
    });
    document.getElementById("chat-form").addEventListener("submit", sendChat);
    document.getElementById("order-form").addEventListener("submit", placeOrder);
    document.getElementById("pre-order-form").addEventListener("submit", placePreOrder);
    document.addEventListener("keydown", onKey);
    refresh();
    refreshPending();
    cg.stream(agentPath("/stream"), onEvent, onLink);
  });
});
