/* The experimenter's view: every finished participant, the means and the paper's figures. */
"use strict";
(async function () {
  const $ = function (id) { return document.getElementById(id); };
  try {
    const data = await DD.api("GET", "/api/study/summary");
    $("study").textContent = data.study;
    $("sm-n").textContent = data.users.length + " / " + data.participants;
    const s = data.summary;
    if (s) {
      $("sm-init").textContent = DD.percent(s.mean_theta_init);
      $("sm-final").textContent = DD.percent(s.mean_theta_final);
      const ci = s.delta_ci95.map(function (x) { return x.toFixed(2); }).join(" … ");
      $("sm-delta").textContent = s.mean_delta.toFixed(2) + " (" + ci + ")";
      $("sm-improved").textContent = DD.percent(s.share_improved);
      $("sm-02").textContent = DD.percent(s.share_delta_ge_0_2);
    }
    const init = data.users.map(function (u) { return u.theta_init; });
    const final = data.users.map(function (u) { return u.theta_final; });
    const delta = data.users.map(function (u) { return u.delta; });
    DDFig.kde($("fig-thetas"), [{ label: "θ_init", values: init },
                                { label: "θ_final", values: final }], 0, 1,
              "share of Part 2 loops liked", "KDE of theta_init and theta_final");
    DDFig.kde($("fig-delta"), [{ label: "Δθ", values: delta }], -1, 1, "Δθ", "KDE of delta");
    const body = $("users").tBodies[0];
    data.users.forEach(function (u) {
      const tr = document.createElement("tr");
      [u.participant, DD.percent(u.theta_init), DD.percent(u.theta_final),
       (u.delta >= 0 ? "+" : "") + u.delta.toFixed(2), DD.percent(u.phase1_like_rate)
      ].forEach(function (text) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      const td = document.createElement("td");
      const a = document.createElement("a");
      a.href = "/api/study/p/" + encodeURIComponent(u.participant) + "/export.zip";
      a.textContent = "zip";
      td.appendChild(a);
      tr.appendChild(td);
      body.appendChild(tr);
    });
    DD.say(data.users.length ? "" : "No participant has finished yet.");
  } catch (e) { DD.say(e.message, true); }
})();
