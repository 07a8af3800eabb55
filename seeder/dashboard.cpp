#include "seeder/dashboard.hpp"

namespace patchswarm::seeder {

namespace {

// Kept as one raw string so the binary carries the page (no install path to get wrong, no build
// step). Rules for editing it: every element a test looks at has a data-testid; text from the
// status document goes in with textContent or createTextNode, never innerHTML; no external URL.
constexpr std::string_view kPage = R"PSDASHBOARD(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>patchswarm fleet</title>
<style>
  :root { --fg:#1d2430; --muted:#6b7585; --line:#d9dee6; --bg:#f5f7fa; --card:#fff;
          --ok:#1f8a4c; --warn:#b7791f; --bad:#c53030; --info:#2b6cb0; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         color:var(--fg); background:var(--bg); }
  header { display:flex; gap:1.2em; align-items:baseline; flex-wrap:wrap;
           padding:.7em 1.2em; background:#1d2430; color:#fff; }
  header h1 { font-size:1.2em; margin:0; }
  header .meta { color:#c7cfdb; }
  #error { color:#feb2b2; font-weight:600; }
  main { padding:1em 1.2em; display:grid; gap:1em; }
  section.release { background:var(--card); border:1px solid var(--line); border-radius:8px;
                    padding:1em 1.2em; }
  .release h2 { margin:0 0 .3em; font-size:1.15em; }
  .release h2 .sub { color:var(--muted); font-weight:400; font-size:.85em; margin-left:.6em; }
  .banner { padding:.4em .7em; border-radius:6px; margin:.4em 0; font-weight:600; }
  .banner.halted { background:#fff5f5; color:var(--bad); border:1px solid #feb2b2; }
  .banner.ok { background:#f0fff4; color:var(--ok); border:1px solid #c6f6d5; }
  .counts { display:flex; flex-wrap:wrap; gap:.5em; margin:.6em 0; }
  .count { border:1px solid var(--line); border-radius:6px; padding:.3em .6em; min-width:6.5em; }
  .count .n { display:block; font-size:1.4em; font-weight:700; }
  .count .label { color:var(--muted); font-size:.85em; }
  .count.zero { opacity:.45; }
  .count.effective .n { color:var(--ok); }
  .count.failed .n, .count.rejected .n, .count.offline_not_patched .n { color:var(--bad); }
  .todo li { margin:.3em 0; } .todo code { background:#0001; padding:.1em .4em; user-select:all; }
  .count.reboot_pending .n, .count.waiting .n { color:var(--warn); }
  .count.downloading .n { color:var(--info); }
  .grid { display:grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap:1em; }
  h3 { font-size:1em; margin:.8em 0 .3em; }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:.25em .5em; border-bottom:1px solid var(--line);
           vertical-align:top; }
  th { color:var(--muted); font-weight:600; font-size:.85em; }
  td.num { text-align:right; font-variant-numeric:tabular-nums; }
  .pill { padding:0 .45em; border-radius:4px; font-size:.85em; }
  .pill.open { background:#c6f6d5; color:#22543d; }
  .pill.closed { background:#edf2f7; color:#4a5568; }
  .pill.halted { background:#fed7d7; color:#822727; }
  .bar { background:#edf2f7; border-radius:3px; height:8px; min-width:80px; }
  .bar > div { background:var(--ok); height:8px; border-radius:3px; }
  .ttp { display:flex; gap:1.2em; flex-wrap:wrap; }
  .ttp span b { font-variant-numeric:tabular-nums; }
  svg.curve { width:100%; max-width:640px; height:auto; background:#fbfcfd;
              border:1px solid var(--line); border-radius:6px; }
  svg.curve .axis { stroke:#a0aec0; stroke-width:1; }
  svg.curve .target { stroke:#a0aec0; stroke-dasharray:4 3; }
  svg.curve .line { fill:none; stroke:var(--ok); stroke-width:2; }
  svg.curve text { font-size:10px; fill:var(--muted); }
  .why { max-width:40em; }
  .muted { color:var(--muted); }
  .state-failed, .state-rejected, .state-offline_not_patched { color:var(--bad); font-weight:600; }
</style>
</head>
<body data-loaded="0">
<header>
  <h1>patchswarm</h1>
  <span class="meta">repository <b id="repository" data-testid="repository">…</b></span>
  <span class="meta">feed sequence <b id="feed-sequence" data-testid="feed-sequence">…</b></span>
  <span class="meta"><b id="endpoints-known" data-testid="endpoints-known">…</b> endpoints known</span>
  <span class="meta">updated <span id="updated" data-testid="updated">never</span></span>
  <span id="error" data-testid="error"></span>
</header>
<main id="releases" data-testid="releases"></main>
<script>
"use strict";
const kPollMs = 2000;

// el("td", {class: "num"}, "text", child...): strings become text nodes, never markup.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
}
function when(t) {
  if (t === null || t === undefined) return "–";
  return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function renderCounts(r) {
  const box = el("div", {class: "counts", "data-testid": "counts"});
  for (const [state, n] of Object.entries(r.counts || {})) {
    if (state === "stale") continue;  // the two offline states together, shown on their own
    box.append(el("div", {class: "count " + state + (n ? "" : " zero"), "data-testid": "count-box-" + state},
                  el("span", {"data-testid": "count-" + state, class: "n"}, n),
                  el("span", {class: "label"}, state.replaceAll("_", " "))));
  }
  return box;
}

function renderHalt(r) {
  if (!r.halt) return el("div", {"data-testid": "halt", class: "banner ok"}, "not halted");
  const h = r.halt;
  return el("div", {"data-testid": "halt", class: "banner halted"},
            (h.latched ? "HALTED" : "HALTING") + " (" + h.by + (h.at ? ", " + when(h.at) : "") + "): ",
            el("span", {"data-testid": "halt-reason"}, h.reason));
}

function renderRings(r) {
  const wrap = el("div", {"data-testid": "rings"}, el("h3", {}, "Rings"));
  if (!r.rings || r.rings.length === 0) {
    wrap.append(el("div", {class: "muted", "data-testid": "rings-none"}, "no staged rollout: everyone at once"));
    return wrap;
  }
  const t = el("table", {}, el("tr", {}, el("th", {}, "ring"), el("th", {}, "state"), el("th", {}, "members"),
                               el("th", {}, "effective / needed"), el("th", {}, "failed"), el("th", {}, "failure rate"),
                               el("th", {}, "opened")));
  for (const ring of r.rings) {
    const state = r.halted ? "halted" : ring.open ? "open" : "closed";
    t.append(el("tr", {"data-testid": "ring-row"},
                el("td", {"data-testid": "ring-name"}, ring.name),
                el("td", {}, el("span", {class: "pill " + state, "data-testid": "ring-state"}, state)),
                el("td", {class: "num"}, ring.members),
                el("td", {class: "num"}, ring.effective + " / " + ring.needed),
                el("td", {class: "num"}, ring.failed),
                el("td", {class: "num"}, (100 * ring.failure_rate).toFixed(0) + "%"),
                el("td", {}, when(ring.opened_at))));
  }
  wrap.append(t);
  if (r.waiting_for) {
    wrap.append(el("div", {class: "muted", "data-testid": "waiting-for"},
                   "next ring: " + r.waiting_for + (r.next_ring_opens_at ? " (opens " + when(r.next_ring_opens_at) + ")" : "")));
  }
  return wrap;
}

function renderSites(r) {
  const wrap = el("div", {"data-testid": "sites"}, el("h3", {}, "Sites"));
  const t = el("table", {}, el("tr", {}, el("th", {}, "site"), el("th", {}, "endpoints"), el("th", {}, "effective"),
                               el("th", {}, ""), el("th", {}, "WAN copies"), el("th", {}, "from LAN"), el("th", {}, "from WAN")));
  for (const s of r.sites || []) {
    const pct = s.endpoints ? 100 * s.effective / s.endpoints : 0;
    t.append(el("tr", {"data-testid": "site-row"},
                el("td", {"data-testid": "site-name"}, s.name),
                el("td", {class: "num", "data-testid": "site-endpoints"}, s.endpoints),
                el("td", {class: "num", "data-testid": "site-effective"}, s.effective),
                el("td", {}, el("div", {class: "bar"}, el("div", {style: "width:" + pct.toFixed(1) + "%"}))),
                el("td", {class: "num", "data-testid": "site-wan-copies"}, Number(s.wan_copies).toFixed(2)),
                el("td", {class: "num"}, bytes(s.bytes_from_lan)),
                el("td", {class: "num"}, bytes(s.bytes_from_wan))));
  }
  wrap.append(t);
  return wrap;
}

// Cumulative effective endpoints over seconds since publish: a step line from effective_times.
function renderCurve(r, now) {
  const wrap = el("div", {"data-testid": "ttp"}, el("h3", {}, "Time to protection"));
  const t = r.time_to_protection || {};
  const figures = el("div", {class: "ttp"});
  for (const [key, label] of [["first_s", "first"], ["median_s", "median"], ["p95_s", "p95"], ["last_s", "last"]]) {
    figures.append(el("span", {}, label + " ", el("b", {"data-testid": "ttp-" + label}, duration(t[key]))));
  }
  figures.append(el("span", {}, "effective ", el("b", {"data-testid": "ttp-effective"}, (t.effective ?? 0) + " / " + r.endpoints)));
  wrap.append(figures);
  if (r.published_at === null || r.published_at === undefined) {
    wrap.append(el("div", {class: "muted"}, "no publish time: no curve"));
    return wrap;
  }
  const times = r.effective_times || [];
  const W = 640, H = 200, L = 40, R = 12, T = 12, B = 28;
  const total = Math.max(r.endpoints, times.length, 1);
  const span = Math.max(1, now - r.published_at, times.length ? times[times.length - 1] : 0);
  const x = s => L + (W - L - R) * Math.min(s, span) / span;
  const y = n => H - B - (H - T - B) * n / total;
  const g = svg("svg", {viewBox: "0 0 " + W + " " + H, class: "curve", "data-testid": "ttp-curve",
                        role: "img", "aria-label": "endpoints effective over time since publish"});
  g.append(svg("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
  g.append(svg("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}));
  g.append(svg("line", {class: "target", x1: L, y1: y(r.endpoints), x2: W - R, y2: y(r.endpoints)}));
  g.append(svg("text", {x: L - 6, y: y(total) + 4, "text-anchor": "end"}, total));
  g.append(svg("text", {x: L - 6, y: y(0) + 4, "text-anchor": "end"}, 0));
  g.append(svg("text", {x: L, y: H - 8}, "published"));
  g.append(svg("text", {x: W - R, y: H - 8, "text-anchor": "end"}, "+" + duration(span)));
  let d = "M" + x(0).toFixed(1) + "," + y(0).toFixed(1);
  times.forEach((s, i) => { d += " H" + x(s).toFixed(1) + " V" + y(i + 1).toFixed(1); });
  d += " H" + x(span).toFixed(1);
  g.append(svg("path", {class: "line", d: d, "data-testid": "ttp-path", "data-points": times.length}));
  wrap.append(g);
  return wrap;
}

function renderAttention(r, now) {
  const list = r.not_effective || [];
  const wrap = el("div", {"data-testid": "attention"},
                  el("h3", {}, "Needs attention (", el("span", {"data-testid": "attention-count"}, list.length), ")"));
  const groups = r.attention || [];
  if (groups.length) {
    const ul = el("ul", {class: "todo", "data-testid": "attention-groups"});
    for (const g of groups) {
      ul.append(el("li", {"data-testid": "attention-group"}, el("b", {}, g.what), " — run ",
                   el("code", {"data-testid": "attention-command"}, g.command)));
    }
    wrap.append(ul);
  }
  if (list.length === 0) {
    wrap.append(el("div", {class: "muted", "data-testid": "attention-none"}, "every known endpoint is effective"));
    return wrap;
  }
  const t = el("table", {}, el("tr", {}, el("th", {}, "host"), el("th", {}, "state"), el("th", {}, "site"),
                               el("th", {}, "ring"), el("th", {}, "last seen"), el("th", {}, "why")));
  for (const e of list) {
    t.append(el("tr", {"data-testid": "attention-row", "data-state": e.state},
                el("td", {title: e.device_id}, el("span", {"data-testid": "attention-host"}, e.hostname),
                   el("div", {class: "muted"}, e.remote_address)),
                el("td", {class: "state-" + e.state, "data-testid": "attention-state"}, e.state.replaceAll("_", " ")),
                el("td", {}, e.site),
                el("td", {}, e.ring),
                el("td", {}, e.last_seen ? duration(now - e.last_seen) + " ago" : "–"),
                el("td", {class: "why", "data-testid": "attention-why"}, e.why)));
  }
  wrap.append(t);
  return wrap;
}

function renderRelease(r, now) {
  const sec = el("section", {class: "release", "data-testid": "release", "data-release": r.id});
  sec.append(el("h2", {}, el("span", {"data-testid": "release-id"}, r.id),
                el("span", {class: "sub"}, [r.name, r.severity, r.size ? bytes(r.size) : "", "sequence " + r.sequence,
                                           r.published_at ? "published " + when(r.published_at) : "",
                                           r.deadline ? "deadline " + when(r.deadline) : ""].filter(Boolean).join(" · "))));
  sec.append(el("div", {}, el("b", {"data-testid": "release-effective"}, r.effective), " of ",
                el("b", {"data-testid": "release-endpoints"}, r.endpoints), " endpoints effective · ",
                r.reported + " reported · " + bytes(r.bytes_from_peers) + " from peers, " +
                bytes(r.bytes_from_seeder) + " from the seeder"));
  sec.append(renderHalt(r));
  if (r.seed_problem) sec.append(el("div", {class: "banner halted", "data-testid": "seed-problem"}, r.seed_problem));
  sec.append(renderCounts(r));
  sec.append(el("div", {class: "grid"}, renderCurve(r, now), el("div", {}, renderRings(r), renderSites(r))));
  sec.append(renderAttention(r, now));
  return sec;
}

function render(doc) {
  document.getElementById("repository").textContent = doc.repository;
  document.getElementById("feed-sequence").textContent = doc.feed_sequence;
  document.getElementById("endpoints-known").textContent = doc.endpoints;
  document.getElementById("updated").textContent = when(doc.generated_at);
  const main = document.getElementById("releases");
  // Newest release first: the one an operator is watching.
  const releases = (doc.releases || []).slice().reverse();
  if (releases.length === 0) {
    main.replaceChildren(el("div", {class: "muted", "data-testid": "no-releases"}, "nothing published yet"));
  } else {
    main.replaceChildren(...releases.map(r => renderRelease(r, doc.generated_at)));
  }
  document.body.setAttribute("data-loaded", "1");
}

async function poll() {
  try {
    // location.origin, not a relative URL: when the page was opened with user and token in its
    // URL, fetch() refuses any URL resolved against it. The browser still
    // sends the Basic credentials it used for the page (same origin).
    const res = await fetch(location.origin + "/v1/status",
                            {cache: "no-store", credentials: "same-origin"});
    if (!res.ok) throw new Error("GET /v1/status: HTTP " + res.status);
    render(await res.json());
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = String(e.message || e);
  } finally {
    setTimeout(poll, kPollMs);
  }
}
poll();
</script>
</body>
</html>
)PSDASHBOARD";

}  // namespace

std::string_view dashboard_html() {
    return kPage;
}

}  // namespace patchswarm::seeder
