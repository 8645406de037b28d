// streamrec dashboard: fetches the API's documented JSON endpoints and draws
// every chart as SVG with its own code (no chart library, nothing fetched
// from outside this API).
"use strict";
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457"];
const t0 = performance.now();
let firstChart = 0;

async function getJSON(url) {
  const r = await fetch(url, { headers: { "X-Client-Id": "dashboard" } });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }

function fmt(v) {
  if (!isFinite(v)) return "-";
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

function clock(ms) { return new Date(ms).toISOString().slice(11, 19); }

// lineChart draws series [{name, points: [[x, y]...]}] with optional
// markers [{x, label}] (vertical lines) and thresholds [{y, label}].
function lineChart(svg, series, opts) {
  opts = opts || {};
  clear(svg);
  const W = svg.clientWidth || 560, H = svg.clientHeight || 220, L = 48, R = 110, T = 10, B = 22;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const all = series.flatMap(s => s.points);
  const ys = all.map(p => p[1]).concat((opts.thresholds || []).map(t => t.y));
  if (all.length === 0) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "label" }, svg).textContent = "no data yet";
    return 0;
  }
  let x0 = Math.min(...all.map(p => p[0])), x1 = Math.max(...all.map(p => p[0]));
  // A marker inside the last window (after its start) widens the axis to it.
  for (const m of opts.markers || []) if (m.x > x1 && opts.window && m.x < x1 + opts.window) x1 = m.x;
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  let y0 = Math.min(0, ...ys), y1 = Math.max(...ys);
  if (y1 === y0) y1 = y0 + 1;
  y1 += (y1 - y0) * 0.05;
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4;
    el("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), class: "grid" }, svg);
    el("text", { x: L - 4, y: sy(y) + 4, "text-anchor": "end", class: "label" }, svg).textContent = fmt(y);
  }
  el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }, svg);
  el("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }, svg);
  el("text", { x: L, y: H - 6, class: "label" }, svg).textContent = opts.xfmt ? opts.xfmt(x0) : fmt(x0);
  el("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "label" }, svg).textContent = opts.xfmt ? opts.xfmt(x1) : fmt(x1);
  for (const t of opts.thresholds || []) {
    el("line", { x1: L, x2: W - R, y1: sy(t.y), y2: sy(t.y), class: "threshold" }, svg);
  }
  let drawn = 0;
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const c = COLORS[i % COLORS.length];
    const d = s.points.map((p, j) => (j ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ");
    el("path", { d, class: "line", stroke: c, "data-series": s.name }, svg);
    for (const p of s.points) {
      const dot = el("circle", { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 2.5, fill: c, class: "point", "data-series": s.name }, svg);
      el("title", {}, dot).textContent = `${s.name} ${fmt(p[1])}`;
      drawn++;
    }
    el("text", { x: W - R + 6, y: T + 12 + 14 * i, class: "label", fill: c }, svg).textContent = s.name;
  });
  for (const m of opts.markers || []) {
    if (m.x < x0 || m.x > x1) continue;
    const line = el("line", { x1: sx(m.x), x2: sx(m.x), y1: T, y2: H - B, class: "marker" }, svg);
    el("title", {}, line).textContent = m.label;
  }
  return drawn;
}

function pointsOf(series, metric, scale) {
  const out = [];
  for (const p of series.points) {
    const v = p.values[metric];
    if (v !== undefined && p.start_ms !== undefined) out.push([p.start_ms, v * (scale || 1)]);
  }
  return out;
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const online = await getJSON("/v1/metrics/online?limit=120");
    const markers = (online.markers || []).map(a => ({ x: a.at_ms, label: `${a.detector} on ${a.signal} (${a.direction})` }));
    const window = online.window_ms || 60000;
    let drawn = lineChart(document.getElementById("quality"), [
      { name: "precision@K >2", points: pointsOf(online, "precision_2") },
      { name: "graded NDCG", points: pointsOf(online, "ndcg_graded") },
      { name: "hit rate", points: pointsOf(online, "hit_rate") },
    ], { markers, window, xfmt: clock });
    drawn += lineChart(document.getElementById("twin"), [
      { name: "live", points: pointsOf(online, "live_abs_err") },
      { name: "twin", points: pointsOf(online, "twin_abs_err") },
      { name: "live/twin", points: pointsOf(online, "live_twin_abs_err_ratio") },
    ], { markers, window, xfmt: clock, thresholds: [{ y: 1 }] });
    drawn += lineChart(document.getElementById("latency"), [
      { name: "p50", points: pointsOf(online, "feedback_to_effect_p50_ms") },
      { name: "p99", points: pointsOf(online, "feedback_to_effect_p99_ms") },
    ], { markers, window, xfmt: clock });
    const win = (online.window_ms || 60000) / 1000;
    const sources = await Promise.all(["replay", "api", "simulator"].map(src =>
      getJSON(`/v1/metrics/online?limit=120&metric=interactions&source=${src}`).then(s => ({ name: src, points: pointsOf(s, "interactions", 1 / win) }))));
    drawn += lineChart(document.getElementById("sources"), sources, { markers, window, xfmt: clock });
    drawn += await drawDrift();
    drawn += await drawModels();
    drawn += await drawUpdaters();
    if (drawn > 0 && !firstChart) {
      firstChart = performance.now() - t0;
      document.getElementById("first-chart-ms").textContent = firstChart.toFixed(0);
    }
    status.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  } catch (e) {
    status.textContent = "error: " + e.message;
  }
  setTimeout(refresh, 5000);
}

async function drawDrift() {
  const svg = document.getElementById("drift");
  const rep = await getJSON("/v1/drift").catch(() => null);
  clear(svg);
  const tbody = document.querySelector("#detectors tbody");
  tbody.textContent = "";
  if (!rep) {
    el("text", { x: 20, y: 40, class: "label" }, svg).textContent = "drift monitoring is off in this API";
    return 0;
  }
  const W = svg.clientWidth || 560, H = svg.clientHeight || 220, L = 150, T = 6;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const dets = rep.detectors;
  const bh = Math.max(4, (H - T * 2) / Math.max(1, dets.length) - 2);
  const sx = r => L + Math.min(r, 1.5) / 1.5 * (W - L - 10);
  el("line", { x1: sx(1), x2: sx(1), y1: 0, y2: H, class: "threshold" }, svg);
  dets.forEach((d, i) => {
    const ratio = d.threshold > 0 ? Math.max(0, d.statistic) / d.threshold : 0;
    const y = T + i * (bh + 2);
    const bar = el("rect", { x: L, y, width: Math.max(1, sx(ratio) - L), height: bh, fill: d.alerts > 0 ? "#c62828" : "#1565c0", class: "bar", "data-detector": d.name }, svg);
    el("title", {}, bar).textContent = `${d.name}: ${fmt(d.statistic)} / ${fmt(d.threshold)}, ${d.alerts} alerts`;
    el("text", { x: L - 4, y: y + bh - 1, "text-anchor": "end", class: "label" }, svg).textContent = d.name;
    const tr = document.createElement("tr");
    if (d.alerts > 0) tr.className = "alerted";
    for (const v of [d.name, d.signal, fmt(d.statistic), fmt(d.threshold), d.alerts, d.last_alert_at_ms ? new Date(d.last_alert_at_ms).toISOString() : "-"]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  });
  return dets.length;
}

async function drawModels() {
  const svg = document.getElementById("models");
  const list = await getJSON("/v1/models").catch(() => null);
  clear(svg);
  if (!list || list.versions.length === 0) return 0;
  const W = svg.clientWidth || 560, H = svg.clientHeight || 120, L = 20, R = 20;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const events = (list.events || []).filter(e => e.reason !== "publish");
  const ts = list.versions.map(v => v.published_at_ms).concat(events.map(e => e.at_ms));
  let x0 = Math.min(...ts), x1 = Math.max(...ts);
  if (x1 === x0) { x0 -= 60000; x1 += 60000; }
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  el("line", { x1: L, x2: W - R, y1: H / 2, y2: H / 2, class: "axis" }, svg);
  for (const v of list.versions) {
    const c = el("circle", { cx: sx(v.published_at_ms), cy: H / 2, r: v.live ? 8 : 5, fill: v.live ? "#2e7d32" : "#999",
      stroke: v.retrained_from_log ? "#1565c0" : "none", "stroke-width": 3,
      class: "version" + (v.retrained_from_log ? " retrained" : ""), "data-version": v.version }, svg);
    el("title", {}, c).textContent = `${v.version} published ${new Date(v.published_at_ms).toISOString()}${v.retrained_from_log ? ", retrained from the log" : ""}${v.live ? " (live)" : v.previous ? " (previous)" : ""}`;
    el("text", { x: sx(v.published_at_ms), y: H / 2 - 14, "text-anchor": "middle", class: "label" }, svg).textContent =
      v.version + (v.retrained_from_log ? " (retrain)" : "") + (v.live ? " (live)" : "");
  }
  // Rollbacks (red), restores after a Redis flush (blue) and canaries
  // (started orange, promoted green, rolled back red) below the axis.
  for (const e of events) {
    const x = sx(e.at_ms), y = H / 2 + 12;
    const fill = { rollback: "#c62828", canary_rolled_back: "#c62828", canary_promoted: "#2e7d32", canary_start: "#ef6c00" }[e.reason] || "#1565c0";
    const m = el("path", { d: `M${x - 6},${y + 10} L${x + 6},${y + 10} L${x},${y} Z`, fill,
      class: "event " + e.reason, "data-version": e.current }, svg);
    el("title", {}, m).textContent = `${e.reason} to ${e.current} (from ${e.previous || "none"}) at ${new Date(e.at_ms).toISOString()}`;
    el("text", { x, y: y + 24, "text-anchor": "middle", class: "label" }, svg).textContent = e.reason;
  }
  return list.versions.length;
}

// The updaters' status is a snapshot; the page keeps the history it saw.
const updaterHistory = {};

async function drawUpdaters() {
  const rep = await getJSON("/v1/status").catch(() => null);
  if (!rep) return 0;
  for (const u of rep.updaters) {
    const h = updaterHistory[u.member] || (updaterHistory[u.member] = { lag: [], fresh: [] });
    const last = h.lag.length ? h.lag[h.lag.length - 1][0] : -1;
    if (u.at_ms !== last) {
      h.lag.push([u.at_ms, u.lag_messages]);
      h.fresh.push([u.at_ms, 1000 * u.freshness_p99_seconds]);
      if (h.lag.length > 720) { h.lag.shift(); h.fresh.shift(); }
    }
  }
  const series = [];
  for (const [m, h] of Object.entries(updaterHistory)) {
    series.push({ name: "lag " + m.slice(-12), points: h.lag }, { name: "p99 ms " + m.slice(-12), points: h.fresh });
  }
  return lineChart(document.getElementById("updaters"), series, { xfmt: clock });
}

refresh();
