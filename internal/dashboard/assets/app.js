// Weir's dashboard. It reads GET /dashboard/events with fetch() rather
// than EventSource: EventSource cannot send an Authorization header, and
// the viewer token must never travel in a URL (URLs land in access logs,
// proxies and the browser's history). The token is kept in this tab's
// sessionStorage only. Every value from the node is written with
// textContent, never as HTML.
"use strict";

const TOKEN_KEY = "weir.dashboard.token";
const HISTORY = 120; // points kept for the sparklines
const series = { hit: [], rate: [] };
let backoff = 1000;

const $ = (id) => document.getElementById(id);

function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %"; }
function num(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d === undefined ? 1 : d); }
function msPair(l) { return (l && l.p50_ms !== null ? num(l.p50_ms, 2) : "–") + " / " + (l && l.p99_ms !== null ? num(l.p99_ms, 2) : "–") + " ms"; }
function bytes(n) {
  if (n === null || n === undefined) { return "–"; }
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
}
function setText(id, text) { $(id).textContent = text; }

// goldenRows fills the per-node golden signals: the cluster row first,
// then one row per member ("no data" and why, for one that did not
// answer). Hidden on a node alone.
function goldenRows(s) {
  const cg = s.cluster_golden;
  $("golden-cluster").hidden = !cg;
  if (!cg) { return; }
  setText("golden-win", num(cg.rate_window_seconds, 0));
  const cells = (g) => [num(g.requests_per_second), num(g.errors_per_second) + " (" + pct(g.error_ratio) + ")", msPair(g.latency),
    g.in_flight, g.saturation === null ? "limiter off" : pct(g.saturation), pct(g.hit_ratio), pct(g.offload_requests)];
  const label = "cluster (" + cg.members + " with data" + (cg.members_no_data ? ", " + cg.members_no_data + " no data" : "") + ")";
  const rows = [row([el("td", label, "cluster-total"), ...cells(cg)])];
  rows[0].id = "golden-cluster-row";
  for (const m of s.members) {
    const name = m.name + (m.self ? " (this node)" : "");
    if (!m.golden) {
      const why = el("td", "no data: " + (m.golden_error || "not sampled"), "bad");
      why.colSpan = 7;
      rows.push(row([name, why]));
      continue;
    }
    rows.push(row([name, ...cells(m.golden)]));
  }
  fill("golden-rows", rows);
}

// aggregateRows fills the cluster's private aggregates: one row per
// host, its noised counts and top objects. Hidden when privacy is off
// (no aggregates in the snapshot).
function aggregateRows(s) {
  const a = s.aggregates;
  $("aggregates").hidden = !a;
  if (!a) { return; }
  if (!a.hosts) {
    setText("aggregates-note", "No aggregate yet: " + (a.pending || "asking the aggregator") + ".");
    fill("aggregates-rows", []);
    return;
  }
  const end = new Date(Date.parse(a.window_start) + a.window_seconds * 1000);
  setText("aggregates-note", "Window " + new Date(a.window_start).toLocaleTimeString() + "–" + end.toLocaleTimeString() + ", " +
    a.members + " members" + (a.members_no_data ? ", " + a.members_no_data + " without data" : "") + ".");
  fill("aggregates-rows", a.hosts.map((h) => row([h.host, h.requests, h.hits, h.misses, pct(h.hit_ratio), h.members,
    el("td", (h.top || []).map((o) => o.path + " (" + o.count + ")").join(", ") + (h.top_withheld ? " (withheld by " + h.top_withheld + ")" : ""), "key")])));
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) { e.textContent = String(text); }
  if (cls) { e.className = cls; }
  return e;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { tr.appendChild(c instanceof Node ? c : el("td", c)); }
  return tr;
}
function fill(id, rows) {
  const body = $(id);
  body.replaceChildren(...rows);
}

const SVG = "http://www.w3.org/2000/svg";
function spark(id, values, maxHint) {
  const svg = $(id);
  const vals = values.filter((v) => v !== null);
  const max = Math.max(maxHint || 0, ...vals, 1e-9);
  const pts = values.map((v, i) => {
    const x = values.length > 1 ? (i * 300) / (HISTORY - 1) : 0;
    const y = 40 - ((v === null ? 0 : v) / max) * 38 - 1;
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.replaceChildren(line);
}
function histogram(id, h) {
  const svg = $(id);
  // Up to the last bucket with observations (at least 4), so that the
  // bars are not squeezed by empty buckets up to 30 s.
  let last = 3;
  const all = (h && h.counts) || [];
  all.forEach((c, i) => { if (c > 0) { last = Math.max(last, i); } });
  const counts = all.slice(0, last + 1);
  const max = Math.max(1, ...counts);
  const w = counts.length ? 300 / counts.length : 300;
  const bars = counts.map((c, i) => {
    const r = document.createElementNS(SVG, "rect");
    const height = (c / max) * 78;
    r.setAttribute("x", (i * w + 1).toFixed(1));
    r.setAttribute("width", Math.max(w - 2, 1).toFixed(1));
    r.setAttribute("y", (80 - height).toFixed(1));
    r.setAttribute("height", height.toFixed(1));
    const t = document.createElementNS(SVG, "title");
    const lo = i === 0 ? 0 : h.bounds_ms[i - 1];
    const hi = i < h.bounds_ms.length ? h.bounds_ms[i] : "+Inf";
    t.textContent = lo + "–" + hi + " ms: " + c;
    r.appendChild(t);
    return r;
  });
  svg.replaceChildren(...bars);
  if (h && h.bounds_ms && h.bounds_ms.length) {
    setText("hist-hi", last < h.bounds_ms.length ? h.bounds_ms[last] + " ms" : h.bounds_ms[h.bounds_ms.length - 1] + " ms+");
  }
}

function push(arr, v) { arr.push(v); while (arr.length > HISTORY) { arr.shift(); } }

function render(s) {
  const st = s.status;
  setText("node", st.node);
  setText("meta", (st.build && st.build.version ? st.build.version + " · " : "") + "up " + st.uptime + " · edge " + st.edge_listener +
    (s.not_ready ? " · NOT READY: " + s.not_ready : "") + (st.draining ? " · draining" : ""));
  for (const w of document.querySelectorAll(".win")) { w.textContent = num(s.rate_window_seconds, 0); }

  const c = s.cache;
  setText("hit-ratio", pct(c.hit_ratio));
  setText("hit-ratio-total", pct(c.hit_ratio_total));
  setText("hmp", num(c.hits_per_second) + " / " + num(c.misses_per_second) + " / " + num(c.passes_per_second));
  setText("hit-lat", msPair(c.hit_latency));
  setText("miss-lat", msPair(c.miss_latency));
  setText("objects", c.objects + " / " + bytes(c.mean_object_bytes));
  setText("fill", bytes(c.bytes) + " of " + bytes(c.max_bytes) + " (" + pct(s.golden.cache_fill) + ")");
  setText("evictions", num(c.evictions_per_second));
  push(series.hit, c.hit_ratio);
  spark("spark-hit", series.hit, 1);

  const o = s.origin;
  setText("offload-req", pct(o.offload_requests));
  setText("offload-bytes", pct(o.offload_bytes));
  setText("origin-rate", num(o.requests_per_second) + " / " + num(o.errors_per_second));
  setText("origin-lat", msPair(o.latency));
  histogram("origin-hist", o.histogram);

  const g = s.golden;
  setText("req-rate", num(g.requests_per_second));
  setText("err-rate", num(g.errors_per_second) + " / " + pct(g.error_ratio));
  setText("lat", msPair(g.latency));
  setText("sat", g.in_flight + " / " + (g.saturation === null ? "limiter off" : pct(g.saturation)));
  push(series.rate, g.requests_per_second);
  spark("spark-rate", series.rate);
  goldenRows(s);

  fill("sites", s.sites.map((x) => row([x.name, pct(x.hit_ratio), pct(x.hit_ratio_total), x.hits, x.misses, x.objects])));

  const pools = [];
  for (const p of s.pools) {
    const servers = p.servers && p.servers.length ? p.servers : [{ url: "–", breaker: "–" }];
    servers.forEach((sv, i) => {
      pools.push(row([
        i === 0 ? p.name : "", sv.url,
        el("td", sv.breaker, "state-" + sv.breaker),
        el("td", sv.ejected ? "ejected" : "no", sv.ejected ? "bad" : ""),
        el("td", sv.healthy ? "yes" : "no", sv.healthy ? "ok" : "bad"),
        i === 0 ? p.in_flight : sv.in_flight,
        i === 0 ? p.bulkhead_waiting + " / " + p.bulkhead_rejected : "",
        i === 0 ? num(p.requests_per_second) : "", i === 0 ? num(p.errors_per_second) : "", i === 0 ? msPair(p.latency) : "",
      ]));
    });
  }
  fill("pools", pools);

  const sh = s.shedding;
  setText("shedding", sh ? "mode " + sh.mode + " · limit " + sh.limit + " · in flight " + sh.in_flight + " · shed " + num(sh.shed_per_second) +
    "/s · since start " + Object.entries(sh.shed || {}).map(([k, v]) => k + " " + v).join(", ") : "the adaptive limit is off (overload.mode)");

  setText("cluster-note", st.cluster ? "As " + st.node + " sees it (" + s.members.length + " alive, " + (st.cluster.departed || []).length + " departed recently)." : "This node is not a cluster member.");
  fill("members", s.members.map((m) => row([m.name + (m.self ? " (this node)" : ""), m.state, pct(m.key_share),
    el("td", m.breaker || "–", m.breaker ? "state-" + m.breaker : ""), m.purge_lag_seconds === null ? "never synced" : num(m.purge_lag_seconds) + " s"])));

  fill("purges", s.purges.map((p) => {
    const r = p.request || {};
    const what = [].concat(r.urls || [], (r.prefixes || []).map((x) => "prefix " + x), (r.tags || []).map((x) => "tag " + x),
      (r.hosts || []).map((x) => "host " + x), r.all ? ["everything"] : []).join(", ") + (r.soft ? " (soft)" : "");
    const acks = el("td");
    acks.className = "acks";
    for (const n of p.nodes || []) {
      const a = el("span", n.node + ": " + n.state + (n.state === "applied" && n.latency_ms !== undefined ? " " + num(n.latency_ms, 1) + " ms" : (n.acked_at ? " " + new Date(n.acked_at).toLocaleTimeString() : "")) + "  ",
        n.state === "applied" ? "ok" : n.state === "pending" ? "pending" : "");
      a.dataset.node = n.node;
      acks.appendChild(a);
    }
    return row([p.id, what, new Date(p.issued_at).toLocaleTimeString(), el("td", p.complete ? "yes" : "no", p.complete ? "ok" : "pending"), acks]);
  }));

  aggregateRows(s);
  fill("top-keys", s.top_keys.map((k) => row([el("td", k.key, "key"), k.site, k.count, pct(k.share), k.error, k.hits, k.misses])));
  fill("uncacheable", s.uncacheable.map((u) => row([u.site, u.reason, u.count])));

  // Firing first, then the rules evaluated here, then Prometheus's.
  const rank = (a) => (a.firing ? 0 : a.evaluated === "prometheus" ? 2 : 1);
  const alerts = s.alerts.slice().sort((x, y) => rank(x) - rank(y));
  $("alerts").replaceChildren(...alerts.map((a) => {
    const li = el("li", null, a.evaluated === "prometheus" ? "prom" : "");
    li.dataset.alert = a.name;
    const state = a.evaluated === "prometheus" ? "Prometheus only" : a.firing ? "FIRING" : "ok";
    li.appendChild(el("b", a.name + " ", a.firing ? "firing" : ""));
    li.appendChild(el("span", "[" + a.severity + "] " + state + ": " + a.detail));
    return li;
  }));
  // Faults injected on purpose (POST /faults) come first: while one is in
  // force, what the page shows is partly its doing.
  const fs = st.faults || [];
  $("faults").replaceChildren(...fs.map((f) => {
    const what = [];
    if (f.delay && f.delay !== "0s") { what.push("delay " + f.delay + (f.jitter && f.jitter !== "0s" ? " ± " + f.jitter : "")); }
    if (f.loss) { what.push("loss " + pct(f.loss)); }
    if (f.error_rate) { what.push("refused " + pct(f.error_rate)); }
    if (f.reset_rate) { what.push("reset " + pct(f.reset_rate)); }
    const to = (f.hosts && f.hosts.length ? " to " + f.hosts.join(", ") : "") + (f.percent < 100 ? " (" + f.percent + " % of messages)" : "");
    const li = el("li", "fault " + f.id + " injected on " + f.target + to + ": " + what.join(", ") + "; by " + f.by +
      ", until " + new Date(f.expires).toLocaleTimeString() + "; " + f.matched + " messages so far", "bad");
    li.dataset.fault = f.id;
    return li;
  }));
  const an = st.anomalies || [];
  $("anomalies").replaceChildren(...an.map((x) => el("li", "anomaly: " + x.signal + " " + x.direction + " (" + x.kind + "): " + x.value +
    " against baseline " + x.baseline + " ± " + x.spread + (x.since ? " since " + new Date(x.since).toLocaleTimeString() : "") + (x.evidence ? " — " + x.evidence : ""), "bad")));
}

function status(text, cls) { const b = $("conn"); b.textContent = text; b.className = "badge " + (cls || ""); }

function askToken(msg) {
  $("login").hidden = false;
  setText("loginerr", msg || "");
  status("needs a token", "down");
}

async function connect() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: "text/event-stream" };
  if (token) { headers.Authorization = "Bearer " + token; }
  let resp;
  try {
    resp = await fetch("/dashboard/events", { headers: headers, cache: "no-store" });
  } catch (e) {
    return retry("node unreachable");
  }
  if (resp.status === 401 || resp.status === 403) {
    const body = await resp.json().catch(() => ({}));
    sessionStorage.removeItem(TOKEN_KEY);
    return askToken(token ? "refused: " + (body.error || resp.status) : "");
  }
  if (!resp.ok || !resp.body) {
    const body = await resp.json().catch(() => ({}));
    return retry(body.error || "HTTP " + resp.status);
  }
  $("login").hidden = true;
  status("live", "live");
  backoff = 1000;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      return retry("stream cut");
    }
    if (chunk.done) { return retry("stream ended"); }
    buf += chunk.value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = ev.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) { render(JSON.parse(data)); }
    }
  }
}

function retry(why) {
  status("reconnecting: " + why, "down");
  setTimeout(connect, backoff);
  backoff = Math.min(backoff * 2, 30000);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("token").value.trim();
  if (!t) { return; }
  sessionStorage.setItem(TOKEN_KEY, t);
  $("token").value = "";
  $("login").hidden = true;
  connect();
});

connect();
