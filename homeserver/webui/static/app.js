// The Hearth page: views and forms. The client itself runs in a Web
// Worker (worker.js); this script only shows what it reports.
"use strict";

const $ = (id) => document.getElementById(id);
const worker = new Worker("/web/worker.js");
const state = {
  user: "", convs: new Map(), current: "", seen: new Set(), typing: new Map(), typingSent: 0,
  presence: new Map(), // user -> {state, last_active_ms}
  files: new Map(), // message id -> blob: URL of its fetched file
  fetching: new Set(), // message ids whose file is being fetched
  save: new Set(), // message ids whose file is saved once fetched
  failed: new Set(), // message ids whose file could not be fetched (the button retries)
  outgoing: new Map(), // ref of a file this page sends -> the File
  nextRef: 1,
};

// inlineImage is the largest image the page fetches by itself to show it.
const inlineImage = 10 << 20;

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
function conv(peer) {
  let c = state.convs.get(peer);
  if (!c) {
    c = { messages: [], unread: 0, title: "", id: "", group: null, readSent: "", created: Date.now() };
    state.convs.set(peer, c);
  }
  return c;
}

function addMessage(m) {
  if (state.seen.has(m.id)) return;
  state.seen.add(m.id);
  if (m.ref && state.outgoing.has(m.ref)) {
    // A file this page sends: shown from the page's own copy.
    state.files.set(m.id, URL.createObjectURL(state.outgoing.get(m.ref)));
    state.outgoing.delete(m.ref);
  }
  const c = conv(m.peer);
  if (m.title) c.title = m.title;
  if (m.conversation) c.id = m.conversation;
  c.messages.push(m);
  state.typing.delete(m.from); // a message ends its sender's typing
  // At start no conversation is open (the list shows what is unread); a
  // message that arrives then opens its conversation.
  if (!state.current && !m.history) state.current = m.peer;
  if (!m.history && m.peer !== state.current && !m.outgoing && !m.event) c.unread++;
  render();
}

// findMessage is the message the page holds with id, or undefined.
function findMessage(id) {
  for (const c of state.convs.values()) for (const x of c.messages) if (x.id === id) return x;
  return undefined;
}

// statusMark is the receipt mark of a message this user sent, as `chat
// history` prints it: ✓ sent, ✓✓ delivered (to every recipient), ✓✓ read
// (by every recipient); a group message adds the counts.
function statusMark(m) {
  if (!m.sent && !m.status) return "sending…";
  let s = "✓";
  if (m.status === "read") s = "✓✓ read";
  else if (m.status === "delivered") s = "✓✓";
  const n = (m.recipients || []).length;
  if (n > 1) s += " delivered " + (m.delivered_to || []).length + "/" + n + ", read " + (m.read_by || []).length + "/" + n;
  return s;
}

function size(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  return (n / (1 << 20)).toFixed(1) + " MiB";
}

// eventText says what a group event is about.
function eventText(m) {
  const who = m.user || m.from;
  switch (m.event) {
    case "created": return who + " created the group" + (m.text ? " " + m.text : "");
    case "joined": return (who === state.user ? "you were added to the group" : who + " joined the group") + (m.text ? " " + m.text : "");
    case "member_added": return who + " was added";
    case "member_removed": return who + " was removed";
    case "renamed": return "renamed to " + m.text;
    case "promoted": return who + " is an admin";
    case "demoted": return who + " is no longer an admin";
    case "leaving": return who + " is leaving";
    case "left": return who + " left";
    case "removed": return "you were removed from this group";
    default: return m.event.replaceAll("_", " ") + (who ? " (" + who + ")" : "");
  }
}

// fileView shows a message's file: an image inline (fetched by itself when
// small enough), else a button that downloads and saves it.
function fileView(m) {
  const box = document.createElement("span");
  box.className = "file";
  const f = m.media;
  const url = state.files.get(m.id);
  if (f.type.startsWith("image/") && f.size <= inlineImage) {
    if (url) {
      const img = document.createElement("img");
      img.alt = f.name;
      // Keep the newest message in view once the image has its height
      // (unless the reader scrolled up).
      img.addEventListener("load", () => {
        const ol = $("messages");
        if (ol.scrollHeight - ol.scrollTop - ol.clientHeight <= img.height + 64) ol.scrollTop = ol.scrollHeight;
      });
      img.src = url;
      box.append(img);
    } else if (!state.fetching.has(m.id) && !state.failed.has(m.id)) {
      fetchFile(m.id, false);
    }
  }
  const b = document.createElement("button");
  b.type = "button";
  b.className = "download";
  b.textContent = "⤓ " + f.name + " (" + size(f.size) + ")";
  b.addEventListener("click", () => {
    if (state.files.has(m.id)) saveFile(m.id, f.name);
    else fetchFile(m.id, true);
  });
  box.append(b);
  return box;
}

function fetchFile(id, save) {
  if (save) state.save.add(id);
  state.failed.delete(id);
  if (state.fetching.has(id)) return;
  state.fetching.add(id);
  worker.postMessage({ op: "fetch", id });
}

function saveFile(id, name) {
  const a = document.createElement("a");
  a.href = state.files.get(id);
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
}

// markRead tells the worker the page shows the current conversation's
// messages up to the last received one, once per new message, while the
// page is visible (as `recv --mark-read`).
function markRead(c) {
  if (document.visibilityState !== "visible" || $("chat-view").hidden) return;
  const last = c.messages.findLast((m) => !m.outgoing && !m.event && m.conversation);
  if (!last || c.readSent === last.id) return;
  c.readSent = last.id;
  worker.postMessage({ op: "read", conversation: last.conversation, id: last.id });
}

function selectConversation(peer) {
  state.current = peer;
  const c = conv(peer);
  c.unread = 0;
  $("to").value = peer;
  $("group-panel").hidden = true;
  $("group-manage").setAttribute("aria-expanded", "false");
  render();
}

// renderHead shows the open conversation's title and the peer's presence
// or the group's members; it asks the worker for them when another
// conversation opens (presence changes come as pushes).
function renderHead(c) {
  if (state.current && state.current !== state.headFor) {
    state.headFor = state.current;
    if (c.group || c.title) worker.postMessage({ op: "group_info", conversation: state.current });
    else worker.postMessage({ op: "presence", users: [state.current] });
  }
  $("conv-title").textContent = state.current ? c.title || state.current : "";
  const isGroup = !!(c.group || c.title);
  $("group-manage").hidden = !isGroup;
  let p = "";
  if (isGroup && c.group) p = c.group.members.length + " members";
  else if (!isGroup) {
    const pr = state.presence.get(state.current);
    if (pr && pr.state === "online") p = "online";
    else if (pr && pr.last_active_ms > 0) p = "last seen " + new Date(pr.last_active_ms).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
    else if (pr && pr.state !== "unknown") p = pr.state;
  }
  $("presence").textContent = p;
  if (!c.group) return;
  const ul = $("group-members-list");
  const sig = JSON.stringify([c.group, state.user]);
  if (sig === state.memberSig) return;
  state.memberSig = sig;
  const focused = ul.contains(document.activeElement) ? document.activeElement.closest("li").dataset.user : undefined;
  ul.replaceChildren();
  for (const u of c.group.members) {
    const li = document.createElement("li");
    li.dataset.user = u;
    li.textContent = u + (c.group.admins.includes(u) ? " (admin)" : "") + (u === state.user ? " (you)" : "") + " ";
    if (c.group.admin && u !== state.user) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "remove";
      b.textContent = "Remove";
      b.setAttribute("aria-label", "Remove " + u);
      b.addEventListener("click", () => {
        b.disabled = true;
        worker.postMessage({ op: "group_remove", conversation: c.group.id, users: [u] });
      });
      li.append(b);
    }
    ul.append(li);
    if (u === focused && li.querySelector("button")) li.querySelector("button").focus();
  }
  $("group-add-form").hidden = !c.group.admin;
}

// lastText is what the conversations list shows of a conversation's last message.
function lastText(c) {
  const m = c.messages[c.messages.length - 1];
  if (!m) return "";
  return m.event ? eventText(m) : (m.outgoing ? "me: " : "") + (m.media ? "file: " + m.media.name : m.text);
}

// render shows the state. The lists are drawn anew only when what they
// show changed (a click or the scroll position is not lost to an event
// that changes nothing there).
function render() {
  renderList();
  const now = Date.now();
  const who = [...state.typing].filter(([, t]) => t.peer === state.current && t.until > now).map(([u]) => u);
  $("typing").textContent = who.length ? who.join(", ") + (who.length > 1 ? " are" : " is") + " typing…" : "";
  renderMessages();
}

function renderList() {
  const list = $("conversations");
  // The conversation with the newest message first.
  const newest = (c) => (c.messages.length ? c.messages[c.messages.length - 1].sent_ms : c.created || 0);
  const entries = [...state.convs].sort((a, b) => newest(b[1]) - newest(a[1]));
  const sig = JSON.stringify(entries.map(([peer, c]) => [peer, c.title, c.unread, lastText(c), peer === state.current]));
  if (sig === state.listSig) return;
  state.listSig = sig;
  // The keyboard focus stays on its entry.
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.peer : undefined;
  list.replaceChildren();
  for (const [peer, c] of entries) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    const name = document.createElement("span");
    name.className = "peer";
    name.textContent = c.title || peer;
    b.append(name);
    if (c.unread) {
      const u = document.createElement("span");
      u.className = "unread";
      u.textContent = c.unread;
      u.setAttribute("aria-label", c.unread + " unread");
      b.append(u);
    }
    const last = document.createElement("span");
    last.className = "last";
    last.textContent = lastText(c);
    b.append(last);
    b.className = peer === state.current ? "current" : "";
    b.dataset.peer = peer;
    if (peer === state.current) b.setAttribute("aria-current", "true");
    b.addEventListener("click", () => selectConversation(peer));
    li.append(b);
    list.append(li);
    if (peer === focused) b.focus();
  }
}

function renderMessages() {
  const ol = $("messages");
  const c = state.convs.get(state.current);
  if (!c) {
    ol.replaceChildren();
    state.msgSig = "";
    renderHead({});
    return;
  }
  renderHead(c);
  if ($("to").value === "") $("to").value = state.current;
  const sig = state.current + JSON.stringify(c.messages.map((m) => [m.id, m.outgoing ? statusMark(m) : "", state.files.has(m.id), state.failed.has(m.id)]));
  if (sig !== state.msgSig) {
    state.msgSig = sig;
    drawMessages(ol, c);
  }
  markRead(c);
}

function drawMessages(ol, c) {
  ol.replaceChildren();
  for (const m of c.messages) {
    const li = document.createElement("li");
    li.dataset.id = m.id;
    if (m.event) {
      li.className = "event";
      li.textContent = eventText(m) + " · " + time(m.sent_ms);
      ol.append(li);
      continue;
    }
    li.className = "msg " + (m.outgoing ? "out" : "in");
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (m.outgoing ? "me" : m.from) + " · " + time(m.sent_ms);
    if (m.outgoing) {
      const st = document.createElement("span");
      st.className = "state" + (m.status === "read" ? " read" : "");
      st.textContent = statusMark(m);
      meta.append(" · ", st);
    }
    li.append(meta);
    if (m.media) li.append(fileView(m));
    else {
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = m.text;
      li.append(text);
    }
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
    case "sent": {
      const x = findMessage(m.id);
      if (x) {
        x.sent = true;
        if (!x.status) x.status = "sent";
      }
      render();
      break;
    }
    case "status":
      for (const u of m.messages) {
        const x = findMessage(u.id);
        if (x) Object.assign(x, { sent: true, status: u.status, recipients: u.recipients, delivered_to: u.delivered_to, read_by: u.read_by });
      }
      render();
      break;
    case "unread":
      // At start: what this user has not read on any device (the page
      // counts on from there).
      if (m.peer !== state.current) conv(m.peer).unread = m.count;
      render();
      break;
    case "conversation":
      conv(m.peer).title = m.title;
      render();
      break;
    case "presence":
      state.presence.set(m.user, { state: m.state, last_active_ms: m.last_active_ms });
      if (m.user === state.current) render();
      break;
    case "file": {
      state.fetching.delete(m.id);
      state.failed.delete(m.id);
      const url = URL.createObjectURL(new Blob([m.data], { type: m.type }));
      state.files.set(m.id, url);
      if (state.save.delete(m.id)) saveFile(m.id, m.name);
      render();
      break;
    }
    case "group": {
      state.memberSig = ""; // drawn anew: a refused removal's button comes back
      const c = conv(m.id);
      c.group = m;
      c.title = m.name;
      c.id = m.id;
      if (state.creating) {
        state.creating = false;
        $("group-form").hidden = true;
        $("new-group").setAttribute("aria-expanded", "false");
        $("group-create").disabled = false;
        selectConversation(m.id);
        $("text").focus();
        break;
      }
      $("group-add").disabled = false;
      render();
      break;
    }
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
      if (m.op === "group_create") {
        state.creating = false;
        $("group-create").disabled = false;
      }
      if (m.op === "fetch") {
        for (const id of state.fetching) state.failed.add(id);
        state.fetching.clear();
        state.save.clear();
      }
      if (m.op === "group_add") $("group-add").disabled = false;
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
  $("new-group").addEventListener("click", () => {
    const f = $("group-form");
    f.hidden = !f.hidden;
    $("new-group").setAttribute("aria-expanded", String(!f.hidden));
    if (!f.hidden) $("group-name").focus();
  });
  $("group-form").addEventListener("submit", (e) => {
    e.preventDefault();
    error("");
    const members = $("group-members").value.split(/[\s,]+/).filter((u) => u !== "");
    state.creating = true;
    $("group-create").disabled = true;
    worker.postMessage({ op: "group_create", name: $("group-name").value.trim(), members });
    $("group-name").value = "";
    $("group-members").value = "";
  });
  $("group-manage").addEventListener("click", () => {
    const p = $("group-panel");
    p.hidden = !p.hidden;
    $("group-manage").setAttribute("aria-expanded", String(!p.hidden));
    if (!p.hidden) {
      worker.postMessage({ op: "group_info", conversation: state.current });
      $("group-add-user").focus();
    }
  });
  $("group-add-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const u = $("group-add-user").value.trim();
    if (u === "" || !state.current) return;
    error("");
    $("group-add").disabled = true;
    worker.postMessage({ op: "group_add", conversation: state.current, users: [u] });
    $("group-add-user").value = "";
  });
  $("file").addEventListener("change", () => {
    const to = $("to").value.trim();
    const f = $("file").files[0];
    $("file").value = "";
    if (!f) return;
    if (to === "") {
      error("send_file: choose a recipient first");
      return;
    }
    error("");
    state.current = to;
    const ref = String(state.nextRef++);
    state.outgoing.set(ref, f);
    f.arrayBuffer().then((buf) => worker.postMessage({ op: "send_file", to, name: f.name, type: f.type, data: new Uint8Array(buf), ref }, [buf]));
  });
  // Arrow keys move between conversations in the list.
  $("conversations").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const bs = [...$("conversations").querySelectorAll("button")];
    const i = bs.indexOf(document.activeElement);
    if (i < 0) return;
    e.preventDefault();
    const next = bs[Math.max(0, Math.min(bs.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)))];
    next.focus();
    selectConversation(next.dataset.peer);
  });
  document.addEventListener("visibilitychange", render);
  // Escape closes the new-group form and the members panel.
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    for (const [panel, button] of [["group-form", "new-group"], ["group-panel", "group-manage"]]) {
      if ($(panel).hidden) continue;
      $(panel).hidden = true;
      $(button).setAttribute("aria-expanded", "false");
      $(button).focus();
    }
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
