// Runs dd_device.js under node for tests/test_m4l.py: the Python side plays the part of the
// patch's [udpsend]/[udpreceive] over real UDP, this side plays the [js] object.
// Protocol: one JSON array per line on stdin, [name, ...args], sent to the object's inlet as
// Max would (a function of that name, or `anything` for "/dd/..." replies); ["state"] answers
// the device's internal state. After each line, one JSON object on stdout:
// {"out": [[outlet, ...args], ...], "state": {...}?}.
"use strict";

const readline = require("node:readline");
const { loadMax, seeded } = require("./harness");

const mode = process.argv[2] || "midi";
const max = loadMax("dd_device.js", {
  jsarguments: ["dd_device.js", mode],
  random: seeded(Number(process.argv[3] || 7)),
});

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const [name, ...args] = JSON.parse(line);
  const reply = {};
  try {
    if (name === "state") {
      reply.state = JSON.parse(JSON.stringify(max.context.state));
    } else {
      max.message(name, ...args);
    }
  } catch (error) {
    reply.error = String(error && error.stack || error);
  }
  reply.out = max.sent.splice(0, max.sent.length);
  process.stdout.write(JSON.stringify(reply) + "\n");
});
