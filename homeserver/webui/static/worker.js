// The Web Worker that runs the Hearth client (Go, compiled to WebAssembly).
// Messages from the page wait here until the client has started.
"use strict";
importScripts("/web/wasm_exec.js");
const pending = [];
self.onmessage = (e) => {
  if (self.hearthHandle) self.hearthHandle(e.data);
  else pending.push(e.data);
};
// Called by the client once it listens (client/webclient).
self.hearthReady = () => {
  while (pending.length > 0) self.hearthHandle(pending.shift());
};

function start() {
  const go = new Go();
  return WebAssembly.instantiateStreaming(fetch("/web/hearth.wasm"), go.importObject)
    .then((r) => go.run(r.instance))
    .catch((err) => postMessage({ ev: "error", op: "load", message: "the client did not start: " + err }));
}

// One client per profile: the profile lives in IndexedDB and the client
// keeps it in memory too, so a second tab must not open it meanwhile. The
// lock is held as long as this worker lives (its tab is open). A reload
// waits a moment for the old page's worker to let it go.
const lockWait = 3000;
if (self.navigator.locks) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), lockWait);
  self.navigator.locks
    .request("hearth-profile", { signal: ac.signal }, () => {
      clearTimeout(timer);
      return start();
    })
    .catch((err) => {
      if (err.name !== "AbortError") throw err;
      postMessage({ ev: "error", op: "open", message: "Hearth is open in another tab of this browser: use that tab, or close it and reload this one" });
    });
} else {
  start();
}
