// callgrid pages: sign-in, API calls with the session cookie and CSRF token, DOM helpers.
// Loaded by every page; no inline code (the Content-Security-Policy forbids it).
"use strict";

const cg = {
  session: null,

  // Element builder: cg.h("td", {class: "num"}, "12").
  h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    cg.fill(element, attributes, children);
    return element;
  },

  // SVG element builder.
  s(tag, attributes, ...children) {
    const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
    cg.fill(element, attributes, children);
    return element;
  },

  fill(element, attributes, children) {
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  },

  // Replaces an element's children.
  put(id, ...children) {
    const element = typeof id === "string" ? document.getElementById(id) : id;
    element.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
    return element;
  },

  text(id, value) {
    document.getElementById(id).textContent = value;
  },

  percent(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %";
  },

  duration(ms) {
    if (ms === null || ms === undefined) return "–";
    const seconds = Math.floor(ms / 1000);
    const minutes = Math.floor(seconds / 60);
    return minutes > 0 ? minutes + ":" + String(seconds % 60).padStart(2, "0") : seconds + " s";
  },

  // Calls the JSON API; rejects with an Error carrying the problem details.
  // `extra`: further request headers (e.g. Prefer: respond-async).
  async api(method, path, body, extra) {
    const headers = Object.assign({ Accept: "application/json" }, extra || {});
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && cg.session) headers["X-CSRF-Token"] = cg.session.csrf;
    const response = await fetch("/api/v1" + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let value = null;
    try {
      value = text ? JSON.parse(text) : null;
    } catch (_) {
      value = text;
    }
    if (!response.ok) {
      const error = new Error((value && value.detail) || response.status + " " + response.statusText);
      error.status = response.status;
      throw error;
    }
    return value;
  },

  // Opens a stream with the cookie; reconnects after a pause when it drops.
  stream(path, onEvent, onStatus) {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const open = () => {
      const socket = new WebSocket(scheme + location.host + "/api/v1" + path);
      socket.addEventListener("open", () => onStatus(true));
      socket.addEventListener("message", (message) => {
        try {
          onEvent(JSON.parse(message.data));
        } catch (error) {
          console.warn("bad stream event", error);
        }
      });
      socket.addEventListener("close", () => {
        onStatus(false);
        setTimeout(open, 2000);
      });
    };
    open();
  },

  // Shows the sign-in form until a session with one of `roles` exists, then calls `start`.
  async boot(roles, start) {
    const signin = document.getElementById("signin");
    const app = document.getElementById("app");
    const form = document.getElementById("signin-form");
    const show = (session) => {
      cg.session = session;
      signin.hidden = true;
      app.hidden = false;
      cg.text("who", session.name + " (" + session.role + ")");
      start(session);
    };
    const check = (session) => {
      if (roles.includes(session.role) || session.role === "admin") return true;
      cg.text("signin-error", "role " + session.role + " may not use this page");
      return false;
    };
    document.getElementById("signout").addEventListener("click", async () => {
      try {
        await cg.api("DELETE", "/session");
      } finally {
        location.reload();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("token");
      try {
        const session = await cg.api("POST", "/session", { token: input.value });
        input.value = "";
        if (check(session)) show(session);
      } catch (error) {
        cg.text("signin-error", error.status === 401 ? "unknown token" : error.message);
      }
    });
    try {
      const session = await cg.api("GET", "/session");
      if (check(session)) return show(session);
    } catch (_) {
      // not signed in yet
    }
    signin.hidden = false;
    document.getElementById("token").focus();
  },
};
