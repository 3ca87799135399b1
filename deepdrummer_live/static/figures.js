/* Small SVG figures drawn in the page (no library, works offline): bars, a line, KDEs. */
"use strict";
window.DDFig = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 480, H = 240, M = { l: 44, r: 12, t: 14, b: 36 };
  const COLOURS = ["#8a8f98", "#2455c3", "#1b7f3b"];

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function frame(container, title) {
    container.textContent = "";
    const svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    svg.appendChild(el("title", {}, title));
    container.appendChild(svg);
    return svg;
  }

  function axes(svg, x0, x1, y0, y1, xlabel, yticks, xticks) {
    const sx = function (x) { return M.l + (x - x0) / (x1 - x0) * (W - M.l - M.r); };
    const sy = function (y) { return H - M.b - (y - y0) / (y1 - y0) * (H - M.t - M.b); };
    const g = el("g", { "font-size": "11", fill: "currentColor" });
    g.appendChild(el("line", { x1: M.l, y1: sy(y0), x2: W - M.r, y2: sy(y0),
                               stroke: "currentColor" }));
    g.appendChild(el("line", { x1: M.l, y1: sy(y0), x2: M.l, y2: sy(y1),
                               stroke: "currentColor" }));
    (yticks || []).forEach(function (t) {
      g.appendChild(el("text", { x: M.l - 6, y: sy(t[0]) + 4, "text-anchor": "end" }, t[1]));
      g.appendChild(el("line", { x1: M.l, y1: sy(t[0]), x2: W - M.r, y2: sy(t[0]),
                                 stroke: "currentColor", "stroke-opacity": "0.15" }));
    });
    (xticks || []).forEach(function (t) {
      g.appendChild(el("text", { x: sx(t[0]), y: H - M.b + 16, "text-anchor": "middle" }, t[1]));
    });
    if (xlabel) {
      g.appendChild(el("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle" },
                       xlabel));
    }
    svg.appendChild(g);
    return { sx: sx, sy: sy };
  }

  const PCT = [[0, "0 %"], [0.25, "25 %"], [0.5, "50 %"], [0.75, "75 %"], [1, "100 %"]];

  /** Vertical bars of shares in [0, 1], each labelled with its percentage. */
  function bars(container, items, title) {
    const svg = frame(container, title);
    const n = items.length;
    const a = axes(svg, 0, n, 0, 1, "", PCT,
                   items.map(function (it, i) { return [i + 0.5, it.label]; }));
    items.forEach(function (it, i) {
      const v = it.value === null || it.value === undefined ? 0 : it.value;
      const x = a.sx(i + 0.2), w = a.sx(i + 0.8) - a.sx(i + 0.2);
      svg.appendChild(el("rect", { x: x, y: a.sy(v), width: w, height: a.sy(0) - a.sy(v),
                                   fill: COLOURS[(i + 1) % COLOURS.length] }));
      svg.appendChild(el("text", { x: x + w / 2, y: a.sy(v) - 4, "text-anchor": "middle",
                                   "font-size": "12", fill: "currentColor" },
                         it.value === null || it.value === undefined ? "–" :
                           Math.round(100 * v) + " %"));
    });
  }

  /** Running share of likes over Phase I (x: answer number). */
  function runningLikes(container, likes, title) {
    const svg = frame(container, title);
    const n = Math.max(likes.length, 1);
    const step = Math.max(1, Math.ceil(n / 8));
    const xt = [];
    for (let i = 0; i <= n; i += step) xt.push([i, String(i)]);
    const a = axes(svg, 0, n, 0, 1, "answer", PCT, xt);
    let sum = 0;
    const pts = likes.map(function (liked, i) {
      sum += liked ? 1 : 0;
      return a.sx(i + 1).toFixed(1) + "," + a.sy(sum / (i + 1)).toFixed(1);
    });
    if (pts.length) {
      svg.appendChild(el("polyline", { points: pts.join(" "), fill: "none",
                                       stroke: COLOURS[1], "stroke-width": "2" }));
    }
  }

  /** Gaussian kernel density (Silverman's bandwidth) of `values` at `xs`. */
  function density(values, xs) {
    const n = values.length;
    const mean = values.reduce(function (s, v) { return s + v; }, 0) / n;
    const sd = Math.sqrt(values.reduce(function (s, v) { return s + (v - mean) ** 2; }, 0) /
                         Math.max(n - 1, 1));
    const h = Math.max(1.06 * (sd || 0.1) * Math.pow(n, -0.2), 0.03);
    return xs.map(function (x) {
      let s = 0;
      values.forEach(function (v) { s += Math.exp(-0.5 * ((x - v) / h) ** 2); });
      return s / (n * h * Math.sqrt(2 * Math.PI));
    });
  }

  /** Smoothed histograms (KDE) of several series over [x0, x1], as in the paper. */
  function kde(container, series, x0, x1, xlabel, title) {
    const svg = frame(container, title);
    const xs = [];
    for (let i = 0; i <= 120; i++) xs.push(x0 + (x1 - x0) * i / 120);
    const ys = series.map(function (s) { return s.values.length ? density(s.values, xs) : []; });
    const top = Math.max.apply(null, [0.1].concat(ys.map(function (y) {
      return y.length ? Math.max.apply(null, y) : 0; })));
    const xt = [];
    for (let i = 0; i <= 4; i++) {
      const x = x0 + (x1 - x0) * i / 4;
      xt.push([x, (Math.round(x * 100) / 100).toString()]);
    }
    const a = axes(svg, x0, x1, 0, top * 1.1, xlabel, [], xt);
    series.forEach(function (s, k) {
      if (!ys[k].length) return;
      const pts = xs.map(function (x, i) {
        return a.sx(x).toFixed(1) + "," + a.sy(ys[k][i]).toFixed(1); });
      const colour = COLOURS[(k + 1) % COLOURS.length];
      svg.appendChild(el("polyline", { points: pts.join(" "), fill: "none", stroke: colour,
                                       "stroke-width": "2" }));
      svg.appendChild(el("text", { x: W - M.r - 4, y: M.t + 12 + 14 * k, "text-anchor": "end",
                                   fill: colour, "font-size": "12" },
                         s.label + " (n=" + s.values.length + ")"));
    });
  }

  return { bars: bars, runningLikes: runningLikes, kde: kde, density: density };
})();
