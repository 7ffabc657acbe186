// Supervisor wallboard: queue rows live from the supervisor stream; today's figures from the
// interval report, refreshed when the stream reports events; the cluster strip from
// /cluster/status. Breaches are coloured against SL_GOAL and ABANDON_LIMIT.
"use strict";

const SL_GOAL = 0.8; // 80 % answered within the site's target (80/20)
const ABANDON_LIMIT = 0.05; // the alert rule's threshold
const REFRESH_MIN_MS = 1000;
const POLL_MS = 5000;

const board = {
  site: "",
  queues: new Map(), // skill name → live QueueView
  order: [], // skill names in configuration order
  report: null,
  agents: [],
  cluster: null,
  refreshing: false,
  refreshAgain: false,
  lastRefresh: 0,
};

function breachSl(value) {
  return value !== null && value !== undefined && value < SL_GOAL ? "breach" : "ok";
}

function breachAbandon(value) {
  return value !== null && value !== undefined && value > ABANDON_LIMIT ? "breach" : "ok";
}

// Skill names in configuration order, from /supervisor/queues.
function skillNames() {
  return board.order.filter((name) => board.queues.has(name));
}

// The report rows of one skill (reports name skills, docs/CONVENTIONS.md).
function reportRow(rows, skill) {
  return (rows || []).find((row) => row.skill === skill) || null;
}

function currentInterval() {
  const intervals = (board.report && board.report.intervals) || [];
  return intervals.length ? intervals[intervals.length - 1] : null;
}

function tile(label, value, state, testid) {
  return cg.h("div", { class: "tile " + (state || "") },
    cg.h("div", { class: "value", "data-testid": testid }, value),
    cg.h("div", { class: "label" }, label));
}

function renderTiles() {
  const report = board.report;
  const totals = report ? report.totals : null;
  const interval = currentInterval();
  const site = interval && interval.sites ? interval.sites[0] : null;
  const views = Array.from(board.queues.values());
  const waiting = views.reduce((sum, view) => sum + view.in_queue, 0);
  const oldest = views.reduce((max, view) => Math.max(max, view.oldest_age_ms || 0), 0);
  const count = (state) => board.agents.filter((agent) => agent.state === state).length;
  const counters = totals ? totals.counters : {};
  cg.put("tiles",
    tile("waiting", waiting, waiting > 0 ? "warn" : "", "waiting"),
    tile("oldest wait", cg.duration(oldest || null), oldest > (report ? report.service_level_target_ms : 20000) ? "breach" : "", "oldest"),
    tile("SL today", cg.percent(totals && totals.service_level), breachSl(totals && totals.service_level), "sl-today"),
    tile("SL interval", cg.percent(site && site.service_level), breachSl(site && site.service_level), "sl-interval"),
    tile("abandoned today", cg.percent(totals && totals.abandon_rate), breachAbandon(totals && totals.abandon_rate), "abandon-today"),
    tile("abandoned interval", cg.percent(site && site.abandon_rate), breachAbandon(site && site.abandon_rate), "abandon-interval"),
    tile("offered today", counters.offered ?? "–", "", "offered"),
    tile("answered today", counters.answered ?? "–", "", "answered"),
    tile("available", count("available"), "", "agents-available"),
    tile("on contact", count("busy") + count("reserved"), "", "agents-on-contact"),
    tile("wrap-up", count("wrap_up"), "", "agents-wrap-up"),
    tile("not ready", count("not_ready"), "", "agents-not-ready"),
    tile("overflow in / out", (counters.overflowed_in ?? "–") + " / " + (counters.overflowed_out ?? "–"), "", "overflow"));
}

function renderQueues() {
  const report = board.report;
  const interval = currentInterval();
  const rows = skillNames().map((name) => {
    const view = board.queues.get(name);
    const today = report ? reportRow(report.queues, name) : null;
    const now = interval ? reportRow(interval.queues, name) : null;
    const counters = today ? today.counters : {};
    const cell = (value, state, testid) =>
      cg.h("td", { class: "num " + (state || ""), "data-testid": testid }, value);
    return cg.h("tr", { "data-queue": name },
      cg.h("th", { scope: "row" }, name),
      cell(view.in_queue, view.in_queue > 0 ? "warn" : "", "q-waiting"),
      cell(cg.duration(view.oldest_age_ms), "", "q-oldest"),
      cell(cg.percent(today && today.service_level), breachSl(today && today.service_level), "q-sl-today"),
      cell(cg.percent(now && now.service_level), breachSl(now && now.service_level), "q-sl-interval"),
      cell(cg.percent(today && today.abandon_rate), breachAbandon(today && today.abandon_rate), "q-abandon-today"),
      cell(cg.percent(now && now.abandon_rate), breachAbandon(now && now.abandon_rate), "q-abandon-interval"),
      cell(view.agents_available, "", "q-available"),
      cell(view.agents_on_contact, "", "q-on-contact"),
      cell(view.agents_wrap_up, "", "q-wrap-up"),
      cell(view.agents_not_ready, "", "q-not-ready"),
      cell(counters.overflowed_in ?? "–", "", "q-overflow-in"),
      cell(counters.overflowed_out ?? "–", "", "q-overflow-out"));
  });
  cg.put("queues", rows);
}

// Today's SL per interval as an inline SVG line with the goal as a dashed line.
function renderCurve() {
  const report = board.report;
  if (!report) return;
  const points = (report.intervals || [])
    .map((interval) => ({ at: interval.start_ms, sl: interval.sites && interval.sites[0] ? interval.sites[0].service_level : null }))
    .filter((point) => point.sl !== null && point.sl !== undefined);
  const width = 1200, height = 220, left = 48, bottom = 24, top = 8;
  const y = (value) => top + (1 - value) * (height - top - bottom);
  // start_ms is the interval's start in ms since the site's local midnight (report.date, at
  // report.utc_offset_minutes).
  const x = (at) => left + (at / 86400000) * (width - left - 8);
  const clock = (at) => String(Math.floor(at / 3600000)).padStart(2, "0") + ":" + String(Math.floor(at / 60000) % 60).padStart(2, "0");
  const svg = cg.s("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "service level per interval", class: "chart" });
  for (const value of [0, 0.5, 1]) {
    svg.append(cg.s("line", { x1: left, x2: width - 8, y1: y(value), y2: y(value), class: "grid" }));
    svg.append(cg.s("text", { x: left - 6, y: y(value) + 5, "text-anchor": "end", class: "axis" }, (value * 100) + "%"));
  }
  for (let hour = 0; hour <= 24; hour += 3) {
    const at = hour * 3600000;
    svg.append(cg.s("text", { x: x(at), y: height - 6, "text-anchor": "middle", class: "axis" }, clock(at)));
  }
  svg.append(cg.s("line", { x1: left, x2: width - 8, y1: y(SL_GOAL), y2: y(SL_GOAL), class: "goal" }));
  if (points.length) {
    const path = points.map((point, i) => (i ? "L" : "M") + x(point.at).toFixed(1) + " " + y(point.sl).toFixed(1)).join(" ");
    svg.append(cg.s("path", { d: path, class: "sl" }));
    for (const point of points) {
      svg.append(cg.s("circle", { cx: x(point.at).toFixed(1), cy: y(point.sl).toFixed(1), r: 4, class: point.sl < SL_GOAL ? "dot breach" : "dot" },
        cg.s("title", {}, clock(point.at) + " UTC " + cg.percent(point.sl))));
    }
  }
  cg.put("curve", svg);
  cg.text("target", "(UTC; goal " + SL_GOAL * 100 + " % within " + report.service_level_target_ms / 1000 + " s)");
}

function renderCluster() {
  const cluster = board.cluster;
  if (!cluster) return;
  const details = cluster.details || {};
  const members = details.members || [];
  const items = [
    cg.h("span", { class: "pill " + (cluster.leader ? "ok" : "breach"), "data-testid": "leader" },
      cluster.leader ? "leader " + cluster.leader : "NO LEADER"),
    cg.h("span", { class: "pill" }, "term " + cluster.term),
    cg.h("span", { class: "pill" }, "commit " + cluster.commit_index),
  ];
  for (const member of members) {
    const lagging = member.lag !== null && member.lag !== undefined && member.lag > 100;
    items.push(cg.h("span", { class: "pill " + (lagging ? "breach" : "ok") },
      "node " + member.id + " " + member.kind + (member.lag !== undefined && member.lag !== null ? " lag " + member.lag : "")));
  }
  cg.put("cluster", items);
}

function render() {
  cg.text("site", board.site || "site");
  renderTiles();
  renderQueues();
  renderCurve();
  renderCluster();
}

// Fetches report, agents and cluster; at most once per REFRESH_MIN_MS, never two at once.
async function refresh() {
  if (board.refreshing) {
    board.refreshAgain = true;
    return;
  }
  const wait = board.lastRefresh + REFRESH_MIN_MS - Date.now();
  if (wait > 0) {
    board.refreshing = true;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  board.refreshing = true;
  board.lastRefresh = Date.now();
  try {
    const [queues, report, agents, cluster] = await Promise.all([
      cg.api("GET", "/supervisor/queues"),
      cg.api("GET", "/reports/intervals"),
      cg.api("GET", "/supervisor/agents"),
      cg.api("GET", "/cluster/status"),
    ]);
    board.site = queues.site;
    board.order = queues.queues.map((view) => view.skill);
    for (const view of queues.queues) board.queues.set(view.skill, view);
    board.report = report;
    board.agents = agents.agents;
    board.cluster = cluster;
    cg.text("error", "");
    render();
    document.body.dataset.refreshed = String(board.lastRefresh);
  } catch (error) {
    cg.text("error", "refresh failed: " + error.message);
  } finally {
    board.refreshing = false;
    if (board.refreshAgain) {
      board.refreshAgain = false;
      refresh();
    }
  }
}

function onEvent(event) {
  if (event.type === "queue" && event.queue) {
    board.queues.set(event.queue.skill, event.queue);
    renderQueues();
    renderTiles();
  }
  refresh();
}

function onLink(up) {
  const link = document.getElementById("link");
  link.textContent = up ? "live" : "offline";
  link.className = "link " + (up ? "up" : "down");
  if (up) refresh();
}

function tick() {
  cg.text("clock", new Date().toLocaleTimeString());
}

document.addEventListener("DOMContentLoaded", () => {
  cg.boot(["supervisor"], () => {
    tick();
    setInterval(tick, 1000);
    setInterval(refresh, POLL_MS);
    refresh();
    cg.stream("/supervisor/stream", onEvent, onLink);
  });
});
