// Unit tests for max_for_live/dd_device.js, run with `node --test tests/js/` (pytest runs them).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { loadMax, seeded } = require("./harness");

const ENGINE = 0;
const LOCAL = 1;
const SEQ = 2;
const UI = 3;

function device(mode = "midi", seed = 1) {
  const max = loadMax("dd_device.js", { jsarguments: ["dd_device.js", mode], random: seeded(seed) });
  return max;
}

/** Start the device and answer its hello, as an engine would. */
function connected(mode = "midi") {
  const max = device(mode);
  max.message("init");
  const local = max.take(LOCAL);
  const probe = local.find((m) => m[0] === "/dd/pong");
  max.message("/dd/pong", probe[1]);
  max.message("/dd/hello", "1", "my-session");
  max.clear();
  return max;
}

function loopReply(max, id, requestId = 1, notes = [36, 38, 42, 46]) {
  max.message("/dd/loop", requestId, id, 0.8, 120.0, 16, 4);
  const rows = [];
  for (let t = 0; t < 4; t++) {
    const velocities = Array.from({ length: 16 }, (_, s) => ((s + t) % 4 === 0 ? 100 : 0));
    rows.push(velocities);
    max.message("/dd/loop/track", id, t, notes[t], `/samples/${t}.wav`, ...velocities);
  }
  return rows;
}

/** The sequencer's [coll] as the patch would hold it after the device's writes. */
function coll(messages, store = new Map()) {
  for (const m of messages) {
    if (m[0] === "coll") store.set(m[1], m.slice(2));
  }
  return store;
}

test("init configures the ports, probes the reply port and says hello", () => {
  const max = device();
  max.message("engineport", 9123);  // restored parameter, before the device is ready
  max.message("init");
  const engine = max.take(ENGINE);
  assert.deepEqual(engine[0], ["port", 9123]);
  const hello = engine.find((m) => m[0] === "/dd/hello");
  const local = max.take(LOCAL);
  assert.equal(local[0][0], "port");
  const replyPort = local[0][1];
  assert.ok(replyPort >= 20000 && replyPort < 40000);
  assert.deepEqual(hello, ["/dd/hello", replyPort, "DeepDrummer.amxd"]);
  assert.equal(local[1][0], "/dd/pong");
  assert.ok(local[1][1] >= 2000000, "probe tokens never collide with ping tokens");
});

test("every slot of the coll is cleared with rests at init", () => {
  const max = device();
  max.message("init");
  const seq = max.take(SEQ);
  const store = coll(seq);
  assert.equal(store.size, 48);
  for (const [key, row] of store) {
    assert.equal(row.length, 12);
    const slot = Math.floor(key / 16);
    for (let t = 0; t < 4; t++) {
      assert.equal(row[3 * t], 0, "velocity 0: a rest");
      assert.equal(row[3 * t + 1], slot * 4 + t, "buffer index");
    }
  }
  assert.deepEqual(seq.slice(-2), [["arm", 0], ["now"]]);
});

test("a port that never hears its own probe is replaced, and hello says the new one", () => {
  const max = device();
  max.message("init");
  const first = max.take(LOCAL)[0][1];
  max.clear();
  for (let i = 0; i < 3; i++) max.message("heartbeat");
  const local = max.take(LOCAL);
  const second = local.find((m) => m[0] === "port")[1];
  assert.notEqual(second, first);
  const hellos = max.take(ENGINE).filter((m) => m[0] === "/dd/hello");
  assert.ok(hellos.some((m) => m[1] === second));
});

test("hello starts the status subscription, syncs locks and fotf, and asks for a loop", () => {
  const max = device();
  max.message("lock", 2, 1);  // restored before the device is ready
  max.message("fotf", 1);
  max.message("init");
  max.clear();
  max.message("/dd/hello", "1", "my-session");
  const engine = max.take(ENGINE);
  assert.deepEqual(engine, [
    ["/dd/start_listen/status"],
    ["/dd/lock", 0, 0, 0], ["/dd/lock", 1, 0, 0], ["/dd/lock", 2, 1, 1], ["/dd/lock", 3, 0, 0],
    ["/dd/fotf", 1],
    ["/dd/next", 1],
  ]);
  const ui = max.take(UI);
  assert.deepEqual(ui.find((m) => m[0] === "session"), ["session", "my-session"]);
});

test("a complete loop is written into a free slot and, while stopped, switched to at once", () => {
  const max = connected();
  const rows = loopReply(max, "3f2a9c01d4e5");
  const seq = max.take(SEQ);
  const store = coll(seq);
  assert.equal(store.size, 16);
  const keys = [...store.keys()];
  const slot = Math.floor(keys[0] / 16);
  assert.notEqual(slot, 0, "slot 0 was playing (rests)");
  for (let s = 0; s < 16; s++) {
    const row = store.get(slot * 16 + s);
    for (let t = 0; t < 4; t++) {
      assert.deepEqual(row.slice(3 * t, 3 * t + 3), [rows[t][s], slot * 4 + t, [36, 38, 42, 46][t]]);
    }
  }
  assert.deepEqual(seq.slice(-2), [["arm", slot * 16], ["now"]]);
  const grid = max.take(UI).filter((m) => m[0] === "grid" && m[1] === "track");
  assert.equal(grid.length, 4);
  assert.deepEqual(grid[1], ["grid", "track", 1, 38, ...rows[1]]);
  assert.equal(max.context.state.audibleId, "3f2a9c01d4e5");
});

test("while playing, a new loop waits for the bar line; a third never overwrites either", () => {
  const max = connected();
  loopReply(max, "aaaaaaaaaaaa");
  max.message("transport", 1);
  const first = max.context.state.audibleSlot;
  max.clear();
  loopReply(max, "bbbbbbbbbbbb", 2);
  let seq = max.take(SEQ);
  const second = seq.at(-1)[1] / 16;
  assert.deepEqual(seq.at(-1), ["arm", second * 16], "armed, not switched");
  assert.notEqual(second, first);
  assert.equal(max.context.state.audibleId, "aaaaaaaaaaaa");
  loopReply(max, "cccccccccccc", 3);  // before the bar line: must not touch slot `second`
  seq = max.take(SEQ);
  const third = coll(seq);
  for (const key of third.keys()) {
    const slot = Math.floor(key / 16);
    assert.ok(slot !== first && slot !== second, `wrote into slot ${slot}`);
  }
  // The sequencer reports its key at the bar line: the armed slot is now audible.
  const armed = seq.at(-1)[1] / 16;
  max.message("key", armed * 16);
  assert.equal(max.context.state.audibleId, "cccccccccccc");
  loopReply(max, "dddddddddddd", 4);
  const fourth = coll(max.take(SEQ));
  for (const key of fourth.keys()) {
    assert.notEqual(Math.floor(key / 16), armed, "the playing slot is never written");
  }
});

test("stopping the transport switches to an armed loop at once", () => {
  const max = connected();
  loopReply(max, "aaaaaaaaaaaa");
  max.message("transport", 1);
  loopReply(max, "bbbbbbbbbbbb", 2);
  max.clear();
  max.message("transport", 0);
  assert.deepEqual(max.take(SEQ), [["now"]]);
  assert.equal(max.context.state.audibleId, "bbbbbbbbbbbb");
});

test("like rates the audible loop, then asks for the next one; a second like is refused", () => {
  const max = connected();
  loopReply(max, "aaaaaaaaaaaa");
  max.message("transport", 1);
  max.clear();
  max.message("like");
  assert.deepEqual(max.take(ENGINE), [["/dd/rate", "aaaaaaaaaaaa", 1], ["/dd/next", 2]]);
  loopReply(max, "bbbbbbbbbbbb", 2);
  max.message("like");  // the new loop is armed, not audible yet: still the same loop
  assert.deepEqual(max.take(ENGINE), []);
  assert.match(max.context.state.message, /already rated/);
  max.message("autonext", 0);
  max.message("key", max.context.state.armedSlot * 16);
  max.message("dislike");
  assert.deepEqual(max.take(ENGINE), [["/dd/rate", "bbbbbbbbbbbb", 0]]);
});

test("an all-digit loop id stays a string", () => {
  const max = connected();
  loopReply(max, "123456789012");
  max.clear();
  max.message("like");
  const rate = max.take(ENGINE)[0];
  assert.equal(typeof rate[1], "string");
});

test("lock and fotf go to the engine; the engine's echo marks the grid", () => {
  const max = connected();
  max.message("lock", 1, 1);
  assert.deepEqual(max.take(ENGINE), [["/dd/lock", 1, 1, 1]]);
  max.message("/dd/lock", 1, 1, 1);
  assert.ok(max.take(UI).some((m) => m.join(" ") === "grid lock 1 1"));
  max.message("lock", 7, 1);
  assert.deepEqual(max.take(ENGINE), []);
  max.message("fotf", 1);
  assert.deepEqual(max.take(ENGINE), [["/dd/fotf", 1]]);
});

test("bar lines go to the engine with Live's tempo, inside the API's range", () => {
  const max = connected();
  max.message("tempo", 128.5);
  max.message("tick", 0);
  max.message("tick", 120);  // a sixteenth later: not a bar line
  max.message("tick", 1920 * 3 - 0.4);  // bar 3 (0-based), reported a hair early
  assert.deepEqual(max.take(ENGINE), [
    ["/dd/transport/bar", 0, 128.5], ["/dd/transport/bar", 3, 128.5]]);
  max.message("tempo", 999);
  max.message("tick", 1920 * 4);
  assert.deepEqual(max.take(ENGINE), [["/dd/transport/bar", 4]], "out-of-range bpm left out");
});

test("pings keep the connection; silence marks the engine lost and hello is retried", () => {
  const max = connected();
  max.message("heartbeat");
  max.message("heartbeat");
  const ping = max.take(ENGINE).find((m) => m[0] === "/dd/ping");
  assert.ok(ping);
  max.message("/dd/pong", ping[1]);
  for (let i = 0; i < 7; i++) max.message("heartbeat");
  assert.equal(max.context.state.connected, false);
  const statuses = max.take(UI).filter((m) => m[0] === "status1");
  assert.match(statuses.at(-1)[2], /Lost the engine/);
  max.message("heartbeat");
  assert.ok(max.take(ENGINE).some((m) => m[0] === "/dd/hello"));
});

test("when no engine answers, the status says how to start one", () => {
  const max = device();
  max.message("engineport", 9100);
  max.message("init");
  max.message("/dd/pong", max.take(LOCAL)[1][1]);
  const ui = max.take(UI);
  const line1 = ui.filter((m) => m[0] === "status1").at(-1)[2];
  const line2 = ui.filter((m) => m[0] === "status2").at(-1)[2];
  assert.match(line1, /No engine at 127\.0\.0\.1:9100/);
  assert.equal(line2, "Start it: deepdrummer-live serve --osc-port 9100");
});

test("a stored session that differs from the engine's is named, with the command to fix it", () => {
  const max = device();
  max.message("session", "symbol", "groove-lab");
  max.message("init");
  max.message("/dd/hello", "1", "default");
  const line1 = max.take(UI).filter((m) => m[0] === "status1").at(-1)[2];
  assert.match(line1, /session groove-lab.*engine runs default.*--session groove-lab/);
  loopReply(max, "aaaaaaaaaaaa");
  max.message("like");
  max.message("/dd/rated", "aaaaaaaaaaaa", 1, 1);
  assert.ok(max.take(UI).some((m) => m.join(" ") === "session default"),
    "rating in the engine's session adopts it");
});

test("engine errors are shown; busy and unknown_loop make the device ask again", () => {
  const max = connected();
  max.message("/dd/error", "/dd/next", "busy", "no loop ready within 2 s; try again");
  assert.match(max.context.state.message, /warming up/);
  max.clear();
  max.message("heartbeat");
  assert.ok(max.take(ENGINE).some((m) => m[0] === "/dd/next"));
  max.message("/dd/error", "/dd/rate", "already_rated", "loop x was already rated");
  assert.match(max.context.state.message, /already rated/);
  max.message("/dd/error", "/dd/lock", "out_of_range", "track must be within 0-3");
  assert.match(max.context.state.message, /Engine: track must be/);
});

test("a loop in another format is refused with a message, not half-played", () => {
  const max = connected();
  max.message("/dd/loop", 1, "eeeeeeeeeeee", 0.5, 120, 32, 4);
  max.message("/dd/loop/track", "eeeeeeeeeeee", 0, 36, "/x.wav", ...new Array(32).fill(100));
  assert.deepEqual(max.take(SEQ), []);
  assert.match(max.context.state.message, /not supported/);
});

test("the playhead follows the sequencer's key, and stops with the transport", () => {
  const max = connected();
  loopReply(max, "aaaaaaaaaaaa");
  const slot = max.context.state.audibleSlot;
  max.message("transport", 1);
  max.clear();
  max.message("key", slot * 16 + 5);
  assert.deepEqual(max.take(UI).at(-1), ["grid", "step", 5]);
  max.message("transport", 0);
  assert.ok(max.take(UI).some((m) => m.join(" ") === "grid step -1"));
});

test("free says bye once", () => {
  const max = connected();
  max.message("free");
  max.message("notifydeleted");
  assert.deepEqual(max.take(ENGINE), [["/dd/bye"]]);
});

test("helpers are not reachable as Max messages", () => {
  const max = connected();
  for (const name of ["rate", "engine", "emit", "show", "conform", "onHello"]) {
    assert.equal(max.context[name].local, 1, name);
  }
});

test("Sampler: buffers get device-unique names, and samples load only when they change", () => {
  const max = device("sampler");
  max.message("init");
  const names = max.take(SEQ).filter((m) => m[0] === "bufname");
  assert.equal(names.length, 12);
  assert.equal(new Set(names.map((m) => m[2])).size, 12);
  max.message("/dd/hello", "1", "s");
  loopReply(max, "aaaaaaaaaaaa");
  const samples = max.take(SEQ).filter((m) => m[0] === "sample");
  assert.equal(samples.length, 4);
  const slot = max.context.state.audibleSlot;
  assert.deepEqual(samples[2], ["sample", slot * 4 + 2, "/samples/2.wav"]);
});

test("Sampler: conform() decodes like library.py (mono, normalised, trimmed, capped, faded)", () => {
  const { conform } = require("../../max_for_live/dd_device.js");
  const left = [0, 0.0004, 0.0008, 0.25, -0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
  const right = [0, 0.0004, 0.0004, 0.25, -0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
  const out = conform([left, right], 1000, 0.006);  // cap 6 frames, fade 5 frames
  assert.equal(out.length, 6);
  assert.ok(Math.abs(out[0] - 0.0012) < 1e-12, "starts at the first sample above -60 dBFS");
  assert.ok(Math.abs(out[1] - 0.5) < 1e-12, "mono mean, peak-normalised");
  assert.ok(Math.abs(out[2] - -0.75) < 1e-12, "the 5-frame fade: 1, 0.75, 0.5, 0.25, 0");
  assert.equal(out[5], 0, "the fade ends at zero");
  assert.equal(conform([[0, 0, 0]], 1000, 1), null, "silent");
});

test("loading a Sampler buffer rewrites it as the conformed mono one-shot", () => {
  const calls = [];
  class FakeBuffer {
    constructor(name) { this.name = name; calls.push(["new", name]); }
    framecount() { return 4; }
    channelcount() { return 1; }
    length() { return 4; }  // ms: 1000 frames per second
    peek() { return [0, 0.5, -1, 0.25]; }
    send(...args) { calls.push(["send", ...args]); }
    poke(channel, frame, values) { calls.push(["poke", channel, frame, values]); }
  }
  const max = loadMax("dd_device.js", {
    jsarguments: ["dd_device.js", "sampler"], random: seeded(3), globals: { Buffer: FakeBuffer },
  });
  max.message("init");
  const name = max.context.state.bufferName[5];
  max.message("loaded", 5);
  assert.deepEqual(calls[0], ["new", name]);
  assert.deepEqual(calls[1], ["send", "sizeinsamps", 3, 1]);
  assert.deepEqual(JSON.parse(JSON.stringify(calls[2])), ["poke", 1, 0, [0.5, -1, 0.25]]);
});
