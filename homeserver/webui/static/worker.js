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
const go = new Go();
WebAssembly.instantiateStreaming(fetch("/web/hearth.wasm"), go.importObject)
  .then((r) => go.run(r.instance))
  .catch((err) => postMessage({ ev: "error", op: "load", message: "the client did not start: " + err }));
