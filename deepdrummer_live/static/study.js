/* Study mode: landing → Part 1 → pause → Part 2 → results, resumable by participant name.
   The server keeps all state; the page only remembers the participant's name, so a reload or
   a closed tab continues where it stopped, and every answer carries its item id (the server
   keeps the first answer per item). */
"use strict";
(function () {
  const $ = function (id) { return document.getElementById(id); };
  const player = new DD.Player();
  const STORE = "dd-study-participant";
  let who = null;       // participant name
  let state = null;     // last state from the server
  let busy = false;
  let poll = null;

  function base() { return "/api/study/p/" + encodeURIComponent(who); }

  function showOnly(id) {
    ["landing", "rating", "pause", "results"].forEach(function (s) { $(s).hidden = s !== id; });
  }

  player.onchange = function (p) {
    $("play").textContent = p.info().playing ? "■ Stop" : "▶ Play";
    $("play").setAttribute("aria-pressed", String(p.info().playing));
  };

  function setButtons() {
    const can = !!(state && state.item) && !busy;
    $("like").disabled = !can;
    $("dislike").disabled = !can;
  }

  function show(s) {
    state = s;
    if (poll) { clearTimeout(poll); poll = null; }
    if (s.stage === "phase1" || s.stage === "phase2") {
      showOnly("rating");
      const it = s.item;
      $("phase-name").textContent = it.phase === 1 ? "Part 1" : "Part 2";
      $("item-index").textContent = it.index + 1;
      $("item-total").textContent = it.total;
      $("progress").max = s.total;
      $("progress").value = s.answered;
      if (player.loopId !== it.loop_id) {
        player.wanted = true;  // keep playing from one loop to the next
        player.load(it.wav, it).catch(function (e) { DD.say("cannot play: " + e, true); });
      }
      DD.say(player.ctx && player.ctx.state === "suspended" ?
        "Press Play (or Space) to hear the loop." : "Like it? Dislike it?");
    } else if (s.stage === "pause") {
      player.stop();
      showOnly("pause");
      $("continue").disabled = !(s.ready || s.error);
      $("continue").textContent = s.error ? "Try again" : "Continue to Part 2";
      $("preparing").textContent = s.error ? s.error :
        (s.ready ? "Part 2 is ready." : "Preparing Part 2…");
      DD.say(s.error || "");
      if (!s.ready && !s.error) poll = setTimeout(refresh, 1000);
    } else if (s.stage === "done") {
      player.stop();
      showOnly("results");
      DD.say("Thank you! That's all.");
      results();
    }
    setButtons();
  }

  async function refresh() {
    try { show(await DD.api("GET", base())); } catch (e) { DD.say(e.message, true); }
  }

  async function answer(liked) {
    if (busy || !state || !state.item) return;
    busy = true; setButtons();
    player.stopSource();  // silence until the next loop (it starts by itself)
    DD.say("Saving… the next loop is on its way.");
    try {
      show(await DD.api("POST", base() + "/answer",
                        { item_id: state.item.item_id, liked: liked }));
    } catch (e) {
      DD.say(e.message, true);
    } finally {
      busy = false; setButtons();
    }
  }

  async function results() {
    try {
      const r = await DD.api("GET", base() + "/results");
      $("res-participant").textContent = r.participant;
      $("res-init").textContent = DD.percent(r.theta_init);
      $("res-final").textContent = DD.percent(r.theta_final);
      $("res-delta").textContent = r.delta === null ? "–" :
        (r.delta >= 0 ? "+" : "") + Math.round(100 * r.delta) + " pts";
      DDFig.bars($("fig-theta"), [{ label: "initial critic (θ_init)", value: r.theta_init },
                                  { label: "final critic (θ_final)", value: r.theta_final }],
                 "Share of Part 2 loops liked, by critic");
      DDFig.runningLikes($("fig-phase1"), r.phase1_likes, "Running share liked in Part 1");
      $("export").href = base() + "/export.zip";
    } catch (e) { DD.say(e.message, true); }
  }

  async function join(name) {
    try {
      const s = await DD.api("POST", "/api/study/join", { participant: name });
      who = name;
      localStorage.setItem(STORE, name);
      $("who-name").textContent = name;
      $("who").hidden = false;
      show(s);
    } catch (e) {
      showOnly("landing");
      DD.say(e.message, true);
    }
  }

  $("join").addEventListener("submit", function (event) {
    event.preventDefault();
    const name = $("participant").value.trim();
    if (name) { player.context(); join(name); }  // a click: the browser lets audio start
  });
  $("switch").addEventListener("click", function (event) {
    event.preventDefault();
    player.stop();
    localStorage.removeItem(STORE);
    who = null; state = null;
    $("who").hidden = true;
    $("participant").value = "";
    showOnly("landing");
    DD.say("");
    $("participant").focus();
  });
  $("continue").addEventListener("click", async function () {
    if (busy) return;
    busy = true;
    try { show(await DD.api("POST", base() + "/continue")); }
    catch (e) { DD.say(e.message, true); }
    finally { busy = false; setButtons(); }
  });
  $("play").addEventListener("click", function () { player.toggle(); });
  $("like").addEventListener("click", function () { answer(true); });
  $("dislike").addEventListener("click", function () { answer(false); });
  DD.onKeys({ l: function () { answer(true); }, d: function () { answer(false); },
              space: function () { player.toggle(); } });

  (async function start() {
    const info = await DD.api("GET", "/api/study/info").catch(function () { return null; });
    if (info) {
      document.querySelectorAll(".n-phase1").forEach(function (n) { n.textContent = info.phase1; });
      document.querySelectorAll(".n-phase2").forEach(function (n) { n.textContent = info.phase2; });
    }
    const saved = new URLSearchParams(location.search).get("participant") ||
                  localStorage.getItem(STORE);
    if (saved) { $("participant").value = saved; await join(saved); }
    else { showOnly("landing"); $("participant").focus(); }
  })();

  window.ddStudy = { player: player, state: function () { return state; },
                     busy: function () { return busy; } };
})();
