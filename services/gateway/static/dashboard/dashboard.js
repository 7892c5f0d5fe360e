// The dashboard's only script: no framework, no chart library, nothing from a CDN. It reads two
// gateway endpoints with the key kept in sessionStorage and redraws every REFRESH_MS.
"use strict";

const KEY_NAME = "bigtech-lake.api-key";
// every 15 s, or ?refresh=N seconds (at least 2)
const REFRESH_MS = Math.max(2, Number(new URLSearchParams(location.search).get("refresh")) || 15) * 1000;
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
const SENTIMENT_COLOURS = { negative: "#c0392b", neutral: "#95a5a6", positive: "#27ae60" };
const numbers = new Intl.NumberFormat("en");
let timer = null;

class KeyRefused extends Error {}

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);  // text is always text, never HTML
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path) {
  const key = sessionStorage.getItem(KEY_NAME);
  const answer = await fetch(path, { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
  if (answer.status === 401) throw new KeyRefused("The gateway refused this key (unknown or revoked).");
  if (answer.status === 403) throw new KeyRefused("This key may not read stats.");
  if (!answer.ok) {
    let message = `${path}: HTTP ${answer.status}`;
    try {
      const body = await answer.json();
      if (body.error) message = `${path}: ${body.error.message}`;
    } catch (_) { /* not JSON: keep the status */ }
    throw new Error(message);
  }
  return answer.json();
}

async function post(path, body) {
  const key = sessionStorage.getItem(KEY_NAME);
  const answer = await fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
    cache: "no-store",
  });
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(data.error ? data.error.message : `${path}: HTTP ${answer.status}`);
  return data;
}

function badge(status) {
  return el("span", { class: `badge ${status}` }, status);
}

function renderTotals(stats) {
  const set = (id, n) => { $(id).textContent = numbers.format(n); };
  set("t-raw", stats.raw_row_count);
  set("t-staged", stats.staging_row_count);
  set("t-curated", stats.curated_row_count);
  set("t-rejected", stats.rejected_row_count);
  set("t-duplicates", stats.duplicate_row_count);
  set("t-runs", stats.runs);
}

function card(label, value, alert = false, testid = "") {
  const attrs = { class: alert ? "card alert" : "card" };
  if (testid) attrs["data-testid"] = testid;
  return el("div", attrs, el("span", { class: "label" }, label), el("span", { class: "value" }, value));
}

function renderPipeline(pipeline, error) {
  const box = $("pipeline");
  if (!pipeline) {
    box.replaceChildren(card("Kafka", "unreachable", true));
    box.title = error || "";
    return;
  }
  const cards = Object.entries(pipeline.lag).map(([service, lag]) =>
    card(`${service} lag`, numbers.format(lag), false, `lag-${service}`));
  cards.push(card("Dead letters", numbers.format(pipeline.dead_letter_total),
    pipeline.dead_letter_total > 0, "dead-letters"));
  box.replaceChildren(...cards);
}

function renderRuns(runs) {
  const rows = runs.map((run) => {
    const layers = el("td", { class: "layers" });
    for (const [name, status] of Object.entries(run.layers)) {
      layers.append(el("span", { class: `badge ${status}`, title: `${name}: ${status}` }, name));
    }
    const ranked = Object.entries(run.rejected_by_reason)
      .sort((a, b) => b[1] - a[1])
      .map(([reason, n]) => `${reason} ${numbers.format(n)}`);
    const shown = ranked.slice(0, 3).join(", ") + (ranked.length > 3 ? `, +${ranked.length - 3} more` : "");
    const status = el("td", {}, badge(run.status));
    if (run.error) status.title = run.error;
    return el("tr", { "data-run-id": run.run_id },
      el("td", { class: "run" }, run.run_id),
      status,
      el("td", {}, run.requested_at.replace("T", " ").slice(0, 19)),
      layers,
      ...[run.raw_rows, run.staged_rows, run.rejected_rows, run.duplicate_rows, run.curated_docs]
        .map((n) => el("td", { class: "num" }, numbers.format(n))),
      el("td", { class: "reasons", title: ranked.join("\n") }, shown || "—"));
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "10" }, "No run yet.")));
  $("runs").replaceChildren(...rows);
}

async function redrive(runId, count) {
  const ok = window.confirm(
    `Redrive ${count} dead letter(s) of run ${runId}?\n\nEach event is published again to its topic, ` +
    "once; the run goes back to running. Fix the cause first, or the events fail again.");
  if (!ok) return;
  const result = $("redrive-result");
  try {
    const done = await post("/dead-letters/redrive", { run_id: runId });
    result.textContent = `Redriven ${done.redriven} dead letter(s) of ${runId}` +
      (done.runs_reopened.length ? "; the run is running again." : ".");
  } catch (error) {
    result.textContent = `Redrive refused: ${error.message}`;
  }
  result.hidden = false;
  refresh();
}

function renderDeadLetters(letters, role) {
  const perRun = {};
  for (const letter of letters) perRun[letter.run_id] = (perRun[letter.run_id] || 0) + 1;
  const offered = new Set();
  const rows = letters.map((letter) => {
    const action = el("td", {});
    if (role === "admin" && letter.run_id && !offered.has(letter.run_id)) {
      offered.add(letter.run_id);  // one button per run, on its newest letter
      const button = el("button", { type: "button", "data-testid": "redrive" }, "Redrive run");
      button.addEventListener("click", () => redrive(letter.run_id, perRun[letter.run_id]));
      action.append(button);
    }
    return el("tr", { "data-letter-id": letter.letter_id },
      el("td", { class: "run" }, letter.run_id || "—"),
      el("td", {}, letter.topic),
      el("td", {}, letter.service),
      el("td", { class: "num" }, letter.chunk_id === null ? "—" : String(letter.chunk_id)),
      el("td", { class: "num" }, String(letter.attempts)),
      el("td", {}, letter.last_failed_at.replace("T", " ").slice(0, 19)),
      el("td", { class: "error-text" }, letter.error),
      action);
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "8" }, "None: nothing waits.")));
  $("dead-letters").replaceChildren(...rows);
}

// --- charts: plain SVG -----------------------------------------------------------------------
const BOX = { width: 800, height: 280, left: 56, right: 12, top: 12, bottom: 30 };

function frame(node, days, maxY, yLabel) {
  node.replaceChildren();
  const plotW = BOX.width - BOX.left - BOX.right;
  const plotH = BOX.height - BOX.top - BOX.bottom;
  const x = (i) => BOX.left + (days.length < 2 ? plotW / 2 : (i * plotW) / (days.length - 1));
  const y = (v) => BOX.top + plotH - (maxY > 0 ? (v / maxY) * plotH : 0);
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const v = maxY * f;
    node.append(svg("line", { class: "grid", x1: BOX.left, x2: BOX.width - BOX.right, y1: y(v), y2: y(v) }));
    node.append(svg("text", { x: BOX.left - 6, y: y(v) + 4, "text-anchor": "end" }, yLabel(v)));
  }
  const last = days.length - 1;
  const ticks = last < 1 ? [0] : [0, Math.floor(last / 2), last];
  for (const i of new Set(ticks)) {
    if (days[i] === undefined) continue;
    const anchor = last < 1 || (i > 0 && i < last) ? "middle" : i === 0 ? "start" : "end";
    node.append(svg("text", { x: x(i), y: BOX.height - 8, "text-anchor": anchor }, days[i]));
  }
  return { x, y };
}

function empty(node, message) {
  node.replaceChildren(svg("text", { class: "empty", x: 400, y: 140, "text-anchor": "middle" }, message));
}

function legend(list, entries) {
  list.replaceChildren(...entries.map(([name, colour, extra]) => {
    const swatch = svg("svg", { width: 12, height: 12, viewBox: "0 0 12 12", "aria-hidden": "true" });
    swatch.append(svg("rect", { width: 12, height: 12, rx: 2, fill: colour }));
    return el("li", {}, swatch, extra ? `${name} (${extra})` : name);
  }));
}

// The smallest 1, 2, 2.5 or 5 × 10^k at or above v, so that the quarter grid lines fall on round numbers.
function niceCeiling(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((c) => c >= v);
}

function compact(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? `${v}` : v.toFixed(1);
}

function drawCompanies(daily) {
  const node = $("chart-companies");
  const series = Object.entries(daily.by_company);
  if (daily.days.length === 0) {
    empty(node, "No staged tweets yet");
    $("legend-companies").replaceChildren();
    return;
  }
  const maxY = niceCeiling(Math.max(1, ...series.flatMap(([, values]) => values)));
  const { x, y } = frame(node, daily.days, maxY, compact);
  series.forEach(([name, values], k) => {
    const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const line = svg("polyline", { class: "series", points, stroke: PALETTE[k % PALETTE.length] });
    line.append(svg("title", {}, name));
    node.append(line);
  });
  legend($("legend-companies"), series.map(([name, values], k) =>
    [name, PALETTE[k % PALETTE.length], numbers.format(values.reduce((a, b) => a + b, 0))]));
}

function drawSentiment(daily) {
  const node = $("chart-sentiment");
  const names = Object.keys(daily.by_sentiment).sort();
  if (daily.days.length === 0) {
    empty(node, "No staged tweets yet");
    $("legend-sentiment").replaceChildren();
    return;
  }
  const totals = daily.days.map((_, i) => names.reduce((s, n) => s + daily.by_sentiment[n][i], 0));
  const { x, y } = frame(node, daily.days, 1, (v) => `${Math.round(v * 100)}%`);
  let below = daily.days.map(() => 0);
  for (const name of names) {
    const above = below.map((b, i) => b + (totals[i] ? daily.by_sentiment[name][i] / totals[i] : 0));
    const top = above.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    const bottom = below.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).reverse();
    const band = svg("polygon", {
      points: [...top, ...bottom].join(" "),
      fill: SENTIMENT_COLOURS[name] || "#888", "fill-opacity": 0.85,
    });
    band.append(svg("title", {}, name));
    node.append(band);
    below = above;
  }
  const sum = (name) => daily.by_sentiment[name].reduce((a, b) => a + b, 0);
  const all = names.reduce((s, n) => s + sum(n), 0) || 1;
  legend($("legend-sentiment"), names.map((name) =>
    [name, SENTIMENT_COLOURS[name] || "#888", `${((100 * sum(name)) / all).toFixed(1)}%`]));
}

// --- flow ------------------------------------------------------------------------------------
function showSignIn(message) {
  clearTimeout(timer);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("status").textContent = "Not signed in";
  const error = $("sign-in-error");
  error.hidden = !message;
  error.textContent = message || "";
}

async function refresh() {
  clearTimeout(timer);
  try {
    const [overview, daily] = await Promise.all([api("/dashboard/overview"), api("/stats/daily")]);
    renderTotals(overview.stats);
    renderPipeline(overview.pipeline, overview.pipeline_error);
    renderRuns(overview.runs);
    renderDeadLetters(overview.dead_letters, overview.role);
    drawCompanies(daily);
    drawSentiment(daily);
    $("board-error").hidden = true;
    const at = new Date(overview.generated_at).toISOString().slice(11, 19);
    $("status").textContent = `Updated ${at} UTC · refreshes every ${REFRESH_MS / 1000} s`;
  } catch (error) {
    if (error instanceof KeyRefused) {
      sessionStorage.removeItem(KEY_NAME);
      showSignIn(error.message);
      return;
    }
    $("board-error").textContent = `Could not refresh: ${error.message}. Retrying.`;
    $("board-error").hidden = false;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function showBoard() {
  $("sign-in").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("status").textContent = "Loading…";
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_NAME, key);
    $("key").value = "";
    showBoard();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_NAME);
    showSignIn();
  });
  if (sessionStorage.getItem(KEY_NAME)) showBoard();
  else showSignIn();
});
