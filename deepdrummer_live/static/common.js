/* Shared by free mode and study mode: JSON calls, the looping player, the grid, keys. */
"use strict";
window.DD = (function () {
  const LISTEN_BARS = 4;

  /** fetch + JSON; throws an Error carrying the server's one-line reason and status. */
  async function api(method, url, body) {
    const options = { method, headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (e) {
      const err = new Error("cannot reach the engine; is it still running?");
      err.status = 0;
      throw err;
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const err = new Error((data && data.error) || ("HTTP " + response.status));
      err.status = response.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  /** Retry while the engine answers 503 (no loop ready yet). */
  async function apiRetry(method, url, body, tries) {
    for (let i = 0; ; i++) {
      try {
        return await api(method, url, body);
      } catch (e) {
        if ((e.status !== 503 && e.status !== 0) || i >= (tries || 60)) throw e;
        await new Promise(function (r) { setTimeout(r, 500); });
      }
    }
  }

  /** Plays a loop's listening form (4 bars + tail) gaplessly: WebAudio loops the 4 bars. */
  class Player {
    constructor() {
      this.ctx = null; this.buffer = null; this.source = null; this.loopSeconds = 0;
      this.wanted = false; this.loopId = null; this.onchange = null;
    }
    context() {
      if (!this.ctx) {
        const AC = window.AudioContext || window.webkitAudioContext;
        this.ctx = new AC();
        // Browsers keep audio suspended until a click or key press: show when it really plays.
        this.ctx.onstatechange = () => this.changed();
      }
      return this.ctx;
    }
    async load(url, loop) {
      this.stopSource();
      this.buffer = null;
      this.loopId = loop.loop_id;
      const id = loop.loop_id;
      const bytes = await (await fetch(url)).arrayBuffer();
      const buffer = await this.context().decodeAudioData(bytes);
      if (this.loopId !== id) return;  // another loop was asked for meanwhile
      this.buffer = buffer;
      this.loopSeconds = Math.min(buffer.duration, LISTEN_BARS * loop.steps * 15 / loop.bpm);
      if (this.wanted) this.startSource();
      this.changed();
    }
    startSource() {
      if (!this.buffer) return;
      const ctx = this.context();
      if (ctx.state === "suspended") ctx.resume();
      this.stopSource();
      const source = ctx.createBufferSource();
      source.buffer = this.buffer;
      source.loop = true;
      source.loopStart = 0;
      source.loopEnd = this.loopSeconds;
      source.connect(ctx.destination);
      source.start();
      this.source = source;
    }
    stopSource() {
      if (this.source) { try { this.source.stop(); } catch (e) { /* already stopped */ } }
      this.source = null;
    }
    play() { this.wanted = true; this.startSource(); this.changed(); }
    stop() { this.wanted = false; this.stopSource(); this.changed(); }
    toggle() { if (this.info().playing) this.stop(); else this.play(); }
    changed() { if (this.onchange) this.onchange(this); }
    /** For people (the button) and tests: what is loaded and whether it plays. */
    info() {
      return { loopId: this.loopId, loaded: !!this.buffer,
               duration: this.buffer ? this.buffer.duration : 0,
               loopSeconds: this.loopSeconds,
               playing: !!this.source && !!this.ctx && this.ctx.state === "running",
               state: this.ctx ? this.ctx.state : "none" };
    }
  }

  function shortName(path) {
    const base = path.split("/").pop();
    return base.replace(/\.(wav|aiff?|flac|ogg)$/i, "");
  }

  /** Draw the tracks × steps grid; `extra(trackIndex, tr)` may append cells (lock toggles). */
  function renderGrid(table, loop, extra) {
    const body = table.tBodies[0];
    body.textContent = "";
    loop.grid.forEach(function (row, t) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = (t + 1) + " · " + shortName(loop.samples[t]);
      th.title = loop.samples[t];
      tr.appendChild(th);
      const hits = [];
      for (let s = 0; s < row.length; s++) {
        const td = document.createElement("td");
        const on = row[s] === "x";
        td.className = "cell" + (on ? " on" : "") + (s % 4 === 0 ? " beat" : "");
        if (on) hits.push(s + 1);
        tr.appendChild(td);
      }
      tr.setAttribute("aria-label", "track " + (t + 1) + ", " + shortName(loop.samples[t]) +
        ": " + (hits.length ? "steps " + hits.join(", ") : "silent"));
      if (extra) extra(t, tr);
      body.appendChild(tr);
    });
  }

  /** Single-letter shortcuts, ignored while typing in a field or with a modifier held. */
  function onKeys(map) {
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
      const tag = (event.target && event.target.tagName) || "";
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
      const key = event.key === " " ? "space" : event.key.toLowerCase();
      const action = map[key];
      if (!action) return;
      if (key === "space" && tag === "BUTTON") return;  // space already presses a button
      event.preventDefault();
      action();
    });
  }

  function say(text, isError) {
    const el = document.getElementById("message");
    if (!el) return;
    el.textContent = text;
    el.className = "message" + (isError ? " error" : "");
  }

  function percent(x) { return x === null || x === undefined ? "–" : Math.round(100 * x) + " %"; }

  return { api, apiRetry, Player, renderGrid, onKeys, say, percent, shortName };
})();
