/* Free mode: rate loops from the engine, lock tracks, download WAV / MIDI. */
"use strict";
(function () {
  const $ = function (id) { return document.getElementById(id); };
  const player = new DD.Player();
  let loop = null;      // the loop on screen
  let busy = false;     // a rating or a next is in flight: ignore further presses
  let state = null;     // last engine status
  // Lock and four-on-the-floor changes reach the engine one at a time, in click order; while some
  // are in flight the page shows what was clicked, not an older status.
  let constraintRequests = Promise.resolve();
  let constraintsPending = 0;

  function setButtons() {
    const canRate = !!loop && !loop.rated && !busy;
    $("like").disabled = !canRate;
    $("dislike").disabled = !canRate;
    $("next").disabled = busy;
  }

  player.onchange = function (p) {
    const info = p.info();
    $("play").textContent = info.playing ? "■ Stop" : "▶ Play";
    $("play").setAttribute("aria-pressed", String(p.info().playing));
  };

  function showStatus(s) {
    if (!s) return;
    if (constraintsPending && state) {
      s.locked_grid = state.locked_grid;
      s.locked_sample = state.locked_sample;
      s.four_on_the_floor = state.four_on_the_floor;
    }
    state = s;
    $("st-session").textContent = s.session;
    $("st-ratings").textContent = s.n_ratings;
    $("st-likerate").textContent = s.n_ratings ?
      DD.percent(s.like_rate) + " (" + s.n_likes + ")" : "–";
    $("st-critic").textContent = "v" + s.critic_version + (s.training ? " · training…" : " · idle")
      + " · " + s.device;
    $("st-queue").textContent = s.queue_depth;
    $("fotf").checked = s.four_on_the_floor;
    document.querySelectorAll("button[data-lock]").forEach(function (b) {
      const t = Number(b.dataset.track);
      const on = b.dataset.lock === "grid" ? s.locked_grid[t] : s.locked_sample[t];
      b.setAttribute("aria-pressed", String(!!on));
    });
  }

  function lockButtons(t, tr) {
    const td = document.createElement("td");
    td.className = "locks";
    [["grid", "pattern"], ["sample", "sound"]].forEach(function (pair) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.lock = pair[0];
      b.dataset.track = t;
      b.textContent = "lock " + pair[1];
      b.setAttribute("aria-label", "lock track " + (t + 1) + " " + pair[1]);
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", function () { toggleLock(t, pair[0]); });
      td.appendChild(b);
    });
    tr.appendChild(td);
  }

  function show(l) {
    loop = l;
    $("loop-id").textContent = l.loop_id;
    $("bpm").textContent = Math.round(l.bpm);
    $("score").textContent = l.score === null ? "–" : DD.percent(l.score);
    DD.renderGrid($("grid"), l, lockButtons);
    $("dl-wav").href = l.wav + "?download=1";
    $("dl-midi").href = l.midi + "?download=1";
    if (state) showStatus(state);
    setButtons();
    player.load(l.wav, l).catch(function (e) { DD.say("cannot play this loop: " + e, true); });
    DD.say(l.rated ? "Already rated: press Next." : "Like it? Dislike it?");
  }

  async function next() {
    if (busy) return;
    busy = true; setButtons();
    DD.say("Finding a loop…");
    try {
      const data = await DD.apiRetry("POST", "/api/next");
      showStatus(data.status);
      show(data.loop);
    } catch (e) {
      DD.say(e.message, true);
    } finally {
      busy = false; setButtons();
    }
  }

  async function rate(liked) {
    if (busy || !loop || loop.rated) return;
    busy = true; setButtons();
    player.stopSource();  // silence until the next loop (it starts by itself)
    try {
      const data = await DD.api("POST", "/api/rate", { loop_id: loop.loop_id, liked: liked });
      loop.rated = true;
      showStatus(data.status);
    } catch (e) {
      DD.say(e.message, true);
      busy = false; setButtons();
      return;
    }
    busy = false;
    await next();
  }

  function toggleLock(t, kind) {
    // Each click builds on the previous click, not on the last status from the engine: two quick
    // clicks would otherwise both start from the same state and the second would undo the first.
    if (!state) return;
    const grid = state.locked_grid.slice();
    const sample = state.locked_sample.slice();
    const changed = kind === "grid" ? grid : sample;
    changed[t] = !changed[t];
    state.locked_grid = grid;
    state.locked_sample = sample;
    sendConstraint("/api/lock", { track: t, grid: grid[t], sample: sample[t] });
  }

  function sendConstraint(path, body) {
    constraintsPending += 1;
    showStatus(state);
    constraintRequests = constraintRequests.then(async function () {
      let s = null;
      try { s = await DD.api("POST", path, body); } catch (e) { DD.say(e.message, true); }
      constraintsPending -= 1;
      showStatus(s);  // nothing to show after an error: the next status poll corrects the page
    });
  }

  $("fotf").addEventListener("change", function (event) {
    if (!state) return;
    state.four_on_the_floor = event.target.checked;
    sendConstraint("/api/fotf", { on: event.target.checked });
  });
  $("play").addEventListener("click", function () { player.toggle(); });
  $("like").addEventListener("click", function () { rate(true); });
  $("dislike").addEventListener("click", function () { rate(false); });
  $("next").addEventListener("click", next);
  DD.onKeys({ l: function () { rate(true); }, d: function () { rate(false); }, n: next,
              space: function () { player.toggle(); } });

  setInterval(async function () {
    try { showStatus(await DD.api("GET", "/api/status")); } catch (e) { /* shown on next call */ }
  }, 2000);

  (async function start() {
    try {
      showStatus(await DD.api("GET", "/api/status"));
      const current = (await DD.api("GET", "/api/current")).loop;
      if (current && !current.rated) show(current); else await next();
    } catch (e) { DD.say(e.message, true); }
  })();

  window.ddFree = { player: player, current: function () { return loop; },
                    busy: function () { return busy; },
                    pendingChanges: function () { return constraintsPending; } };
})();
