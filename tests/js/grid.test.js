// Unit tests for max_for_live/dd_grid.js ([jsui]), drawn with a recording mgraphics.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { loadMax } = require("./harness");

function recorder() {
  const calls = [];
  const m = new Proxy({}, {
    get(target, name) {
      if (name in target) return target[name];
      return (...args) => calls.push([name, ...args]);
    },
    set(target, name, value) {
      target[name] = value;
      return true;
    },
  });
  return { m, calls };
}

function grid() {
  const { m, calls } = recorder();
  const box = { rect: [0, 0, 44 + 16 * 14, 4 * 20] };
  const max = loadMax("dd_grid.js", { globals: { mgraphics: m, box } });
  return { max, calls, m };
}

test("init sets up mgraphics; messages redraw", () => {
  const { max, calls, m } = grid();
  assert.ok(calls.some((c) => c[0] === "init"));
  assert.equal(m.relative_coords, 0);
  calls.length = 0;
  max.message("step", 3);
  assert.deepEqual(calls, [["redraw"]]);
});

test("paint draws 64 cells, the role names, the playhead and locks", () => {
  const { max, calls } = grid();
  max.message("track", 0, 36, ...Array.from({ length: 16 }, (_, s) => (s % 4 === 0 ? 100 : 0)));
  max.message("track", 2, 42, ...new Array(16).fill(127));
  max.message("lock", 2, 1);
  max.message("step", 5);
  calls.length = 0;
  max.message("paint");
  const texts = calls.filter((c) => c[0] === "show_text").map((c) => c[1]);
  assert.deepEqual(texts, ["Kick", "", "Hat *", ""]);
  const rects = calls.filter((c) => c[0] === "rectangle");
  assert.equal(rects.length, 1 + 64 + 1, "background, cells, playhead");
  const playhead = rects.at(-1);
  assert.deepEqual(playhead.slice(1), [44 + 5 * 14, 0, 14, 80]);
});

test("clear keeps the locks but empties the grid; bad tracks are ignored", () => {
  const { max } = grid();
  max.message("track", 1, 38, ...new Array(16).fill(100));
  max.message("lock", 1, 1);
  max.message("clear");
  const state = max.context.grid;
  assert.equal(state.rows[1].locked, 1);
  assert.deepEqual(Array.from(state.rows[1].velocities), new Array(16).fill(0));
  max.message("track", 9, 38, 1);
  max.message("track", 1.5, 38, 1);
  assert.equal(state.rows.length, 4);
});

test("role names come from General MIDI drum notes", () => {
  const { roleName } = require("../../max_for_live/dd_grid.js");
  assert.equal(roleName(38), "Snare");
  assert.equal(roleName(46), "Open hat");
  assert.equal(roleName(99), "Note 99");
  assert.equal(roleName(0), "");
});

test("loads without Max (no mgraphics): paint does nothing", () => {
  const max = loadMax("dd_grid.js");
  max.message("paint");
  max.message("step", 2);
});
