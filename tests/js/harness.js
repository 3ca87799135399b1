// Loads a Max [js]/[jsui] file in a fresh node `vm` context, the way Max runs it: top-level
// functions are globals, `outlet`/`post`/`messagename`/`jsarguments` are provided by the host.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const MAX_FOR_LIVE = path.resolve(__dirname, "..", "..", "max_for_live");

function loadMax(file, options = {}) {
  const sent = [];
  const posted = [];
  const context = {
    outlet: (index, ...args) => sent.push([index, ...args]),
    post: (text) => posted.push(text),
    jsarguments: options.jsarguments || [file],
    messagename: "",
  };
  for (const [name, value] of Object.entries(options.globals || {})) {
    context[name] = value;
  }
  vm.createContext(context);
  const source = fs.readFileSync(path.join(MAX_FOR_LIVE, file), "utf8");
  vm.runInContext(source, context, { filename: file });
  if (options.random) {
    vm.runInContext("Math.random = __random;", Object.assign(context, { __random: options.random }));
  }
  const max = {
    context,
    sent,
    posted,
    /** Send a message to the object's inlet, as Max would: by function name or `anything`. */
    message(name, ...args) {
      context.messagename = name;
      const fn = context[name];
      if (typeof fn === "function" && !fn.local && /^[A-Za-z_]\w*$/.test(name)) {
        return fn(...args);
      }
      if (typeof context.anything !== "function") {
        throw new Error(`no function for message ${name}`);
      }
      return context.anything(...args);
    },
    /** Messages sent out of outlet `index` since the last `take`, then forget them. */
    take(index) {
      const out = sent.filter((m) => m[0] === index).map((m) => m.slice(1));
      const rest = sent.filter((m) => m[0] !== index);
      sent.length = 0;
      sent.push(...rest);
      return out;
    },
    clear() {
      sent.length = 0;
    },
  };
  return max;
}

/** A seeded random number generator, so port and token choices repeat. */
function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

module.exports = { loadMax, seeded, MAX_FOR_LIVE };
