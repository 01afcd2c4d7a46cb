// The Hearth page: views and forms. The client itself runs in a Web
// Worker (worker.js); this script only shows what it reports.
"use strict";

const $ = (id) => document.getElementById(id);
const worker = new Worker("/web/worker.js");
const state = { user: "", convs: new Map(), current: "", seen: new Set(), typing: new Map(), typingSent: 0 };

// typingShown is how long "… is typing" stays without a new signal.
const typingShown = 6000;
// typingEvery is how often the page repeats that this user types.
const typingEvery = 3000;

function show(view) {
  for (const v of ["login-view", "link-view", "chat-view", "devices-view", "logged-out-view"]) $(v).hidden = v !== view;
  $("logout").hidden = view !== "chat-view";
  $("devices-button").hidden = view !== "chat-view";
  $("logout-confirm").hidden = true;
}

function status(text) {
  $("status").textContent = text;
}

function error(text) {
  const e = $("error");
  e.textContent = text;
  e.hidden = text === "";
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// m.peer is the conversation a message belongs to in the list: the other
// user of a direct conversation, else the conversation id. A message the
// page has (stored history and the inbox both hold it) is shown once.
function addMessage(m) {
  if (state.seen.has(m.id)) return;
  state.seen.add(m.id);
  const peer = m.peer;
  let c = state.convs.get(peer);
  if (!c) {
    c = { messages: [], unread: 0 };
    state.convs.set(peer, c);
  }
  c.messages.push(m);
  if (!state.current) state.current = peer;
  if (peer !== state.current) c.unread++;
  render();
}

function render() {
  const list = $("conversations");
  list.replaceChildren();
  for (const [peer, c] of state.convs) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    const name = document.createElement("span");
    name.className = "peer";
    name.textContent = peer + (c.unread ? " (" + c.unread + ")" : "");
    const last = document.createElement("span");
    last.className = "last";
    const m = c.messages[c.messages.length - 1];
    last.textContent = m ? (m.outgoing ? "me: " : "") + m.text : "";
    b.append(name, last);
    b.className = peer === state.current ? "current" : "";
    b.addEventListener("click", () => {
      state.current = peer;
      c.unread = 0;
      $("to").value = peer;
      render();
    });
    li.append(b);
    list.append(li);
  }
  const now = Date.now();
  const who = [...state.typing].filter(([, t]) => t.peer === state.current && t.until > now).map(([u]) => u);
  $("typing").textContent = who.length ? who.join(", ") + (who.length > 1 ? " are" : " is") + " typing…" : "";
  const ol = $("messages");
  ol.replaceChildren();
  const c = state.convs.get(state.current);
  if (!c) return;
  if ($("to").value === "") $("to").value = state.current;
  for (const m of c.messages) {
    const li = document.createElement("li");
    li.className = "msg " + (m.outgoing ? "out" : "in");
    li.dataset.id = m.id;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (m.outgoing ? "me" : m.from) + " · " + time(m.sent_ms) + (m.outgoing ? (m.sent ? " · sent" : " · sending") : "");
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    li.append(meta, text);
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

function renderDevices(list) {
  const body = $("devices").tBodies[0];
  body.replaceChildren();
  for (const d of list) {
    const tr = document.createElement("tr");
    tr.dataset.device = d.id;
    const seen = d.last_seen_ms > 0 ? new Date(d.last_seen_ms).toLocaleString() : "";
    for (const text of [d.id + (d.this ? " (this browser)" : ""), d.name, d.status + (d.listed ? "" : ", not on the signed list"), seen]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    if (!d.this && d.status !== "revoked") {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "revoke";
      b.textContent = "Revoke";
      b.addEventListener("click", () => {
        b.disabled = true;
        worker.postMessage({ op: "revoke", device: d.id });
      });
      td.append(b);
    }
    tr.append(td);
    body.append(tr);
  }
}

worker.onmessage = (e) => {
  const m = e.data;
  switch (m.ev) {
    case "account":
      console.info("hearth: profile " + (m.user || "(none)") + (m.active ? " active" : ""));
      state.user = m.user;
      if (m.active) {
        status(m.user + " · " + m.device);
        show("chat-view");
      } else {
        status("Not logged in");
        show("login-view");
      }
      break;
    case "link_code":
      status(m.user + " · " + m.device + " · waiting for approval");
      $("link-user").textContent = m.user;
      $("link-code").textContent = m.code;
      $("link-fingerprint").textContent = m.fingerprint;
      if (m.qr_svg) $("link-qr").src = "data:image/svg+xml;base64," + btoa(m.qr_svg);
      $("link-qr").hidden = !m.qr_svg;
      show("link-view");
      break;
    case "recovery_key":
      $("recovery-key").textContent = m.key;
      $("recovery-view").hidden = false;
      break;
    case "active":
      state.user = m.user;
      status(m.user + " · " + m.device);
      error("");
      show("chat-view");
      $("to").focus();
      break;
    case "message":
      addMessage(m);
      break;
    case "sent":
      for (const c of state.convs.values())
        for (const x of c.messages) if (x.id === m.id) x.sent = true;
      render();
      break;
    case "typing":
      if (m.typing) state.typing.set(m.user, { peer: m.peer, until: Date.now() + typingShown });
      else state.typing.delete(m.user);
      render();
      setTimeout(render, typingShown + 100);
      break;
    case "devices":
      renderDevices(m.devices);
      break;
    case "revoked":
      status(state.user + " · revoked " + m.device);
      break;
    case "logged_out":
      status("Logged out");
      $("logged-out-device").textContent = m.device;
      $("logged-out-revoke").textContent = m.device;
      state.convs.clear();
      state.seen.clear();
      render();
      show("logged-out-view");
      break;
    case "log":
      console.info("hearth: " + m.text.trimEnd());
      break;
    case "error":
      error((m.op ? m.op + ": " : "") + m.message);
      if (m.op === "login") $("login-submit").disabled = false;
      break;
  }
};

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    error("");
    $("login-submit").disabled = true;
    status("Logging in…");
    worker.postMessage({ op: "login", user: $("login-user").value.trim(), password: $("login-password").value, device_name: $("login-device").value.trim() });
    $("login-password").value = "";
  });
  $("devices-button").addEventListener("click", () => {
    $("devices").tBodies[0].replaceChildren();
    show("devices-view");
    $("logout").hidden = false;
    worker.postMessage({ op: "devices" });
  });
  $("devices-close").addEventListener("click", () => show("chat-view"));
  $("logout").addEventListener("click", () => {
    $("logout").hidden = true;
    $("logout-confirm").hidden = false;
    $("logout-confirm").focus();
  });
  $("logout-confirm").addEventListener("click", () => {
    $("logout-confirm").disabled = true;
    worker.postMessage({ op: "logout" });
  });
  $("text").addEventListener("input", () => {
    const to = $("to").value.trim();
    if (to === "" || Date.now() - state.typingSent < typingEvery) return;
    state.typingSent = Date.now();
    worker.postMessage({ op: "typing", to, typing: true });
  });
  $("send-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const to = $("to").value.trim(), text = $("text").value;
    if (to === "" || text.trim() === "") return;
    error("");
    state.current = to;
    state.typingSent = 0;
    worker.postMessage({ op: "send", to, text });
    $("text").value = "";
    $("text").focus();
  });
});

// A server on its development CA says so (certificates.json): the page
// links to how to trust it.
fetch("/web/certificates.json", { cache: "no-store" })
  .then((r) => (r.ok ? r.json() : null))
  .then((c) => {
    if (c && c.development_ca) $("devca").hidden = false;
  })
  .catch(() => {});
