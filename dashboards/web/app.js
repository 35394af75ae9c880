// Calltrail web UI: one page, five views, no dependencies. Every figure comes from the query
// API with the caller's bearer token (so the UI sees exactly what the token's role may see);
// charts are SVG drawn by the server (POST /api/v1/charts) from figures the page already
// fetched. Data is put in the page with textContent only, never as HTML.
"use strict";

const TOKEN_KEY = "calltrail.token";
const PAGES = ["overview", "chargeback", "anomalies", "audit", "integrity"];
const DAY_MS = 86400000;

// ---- small helpers --------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const day = (d) => d.toISOString().slice(0, 10);
const parseDay = (s) => new Date(s + "T00:00:00Z");
const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const fmtPct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %");
const fmtMs = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(1) + " ms");
const fmtTime = (ns) => new Date(Number(ns) / 1e6).toISOString().replace(".000Z", "Z");

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function claims() {
  const t = token();
  if (!t) return {};
  try {
    const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (_) {
    return {};
  }
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const sent = token();
  if (!sent) throw new ApiError(401, "not logged in");
  const headers = Object.assign({ Authorization: "Bearer " + sent }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    // Only the token that was refused is dropped: a request still in flight from before a
    // logout must not log the next user out.
    if (token() === sent) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("Your token was refused or has expired. Log in again.");
    }
    throw new ApiError(401, "not logged in");
  }
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = (await response.json()).error || message;
    } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, `${path.split("?")[0]}: ${message}`);
  }
  return response;
}

const getJson = async (path) => (await api(path, { headers: { Accept: "application/json" } })).json();

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}

// ---- routing --------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, rest] = hash.split("?");
  return { page: PAGES.includes(name) ? name : "overview", params: new URLSearchParams(rest || "") };
}

function go(page, params) {
  const q = query(params);
  const target = "#/" + page + (q ? "?" + q : "");
  if (location.hash === target) render();
  else location.hash = target;
}

function main() {
  return document.getElementById("page");
}

function begin(page, title) {
  const m = main();
  m.dataset.page = page;
  m.dataset.state = "loading";
  m.replaceChildren(el("h1", { text: title }), el("p", { id: "error", role: "alert" }));
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = title + " · Calltrail";
  return m;
}

let generation = 0;

async function render() {
  if (!token()) return showLogin();
  const mine = ++generation;
  const { page, params } = route();
  const m = begin(page, { overview: "Overview", chargeback: "Chargeback", anomalies: "Anomalies", audit: "Audit search", integrity: "Integrity" }[page]);
  try {
    await VIEWS[page](m, params, () => mine === generation);
    if (mine === generation) {
      m.dataset.state = "ready";
      // User Timing marks: the benchmark reads when each page's data was on screen.
      performance.mark("calltrail:ready:" + page);
    }
  } catch (e) {
    if (mine !== generation) return;
    if (e instanceof ApiError && e.status === 401) return;
    m.dataset.state = "error";
    document.getElementById("error").textContent = e.message;
  }
}

// ---- login ----------------------------------------------------------------------------------

function showLogin(message) {
  generation++;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const m = main();
  m.dataset.page = "login";
  m.dataset.state = "ready";
  const input = el("input", { id: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = el("form", { id: "login" },
    el("label", { for: "token", text: "Bearer token (JWT)" }), input,
    el("p", { class: "note", text: "On the server's machine, `calltrail token --role auditor --url` prints a link that logs you in with a short-lived local token." }),
    el("button", { id: "login-submit", type: "submit", text: "Log in" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    loggedIn();
  });
  m.replaceChildren(el("h1", { text: "Log in" }), message ? el("p", { id: "error", role: "alert", text: message }) : "", form);
  input.focus();
}

function loggedIn() {
  const c = claims();
  const roles = [].concat(c.roles || c.role || []).join(", ");
  document.getElementById("who").textContent = `${c.sub || "?"}${roles ? " · " + roles : ""}`;
  document.getElementById("logout").hidden = false;
  const { page } = route();
  if (!location.hash.startsWith("#/")) location.hash = "#/" + page;
  else render();
}

// ---- charts ---------------------------------------------------------------------------------

/// A figure whose image the server draws from `points` ([{label, value}]).
function chart(name, kind, title, yLabel, points) {
  const img = el("img", { alt: `${title}: ${points.map((p) => p.label + " " + p.value).join("; ") || "no data"}`, width: 720, height: 260 });
  const figure = el("figure", { dataset: { chart: name } }, img, el("figcaption", { text: points.length ? title : title + " (no data in this range)" }));
  api("/api/v1/charts", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ kind, title, y_label: yLabel, points }),
  }).then(async (r) => {
    img.dataset.points = r.headers.get("x-calltrail-points") || "0";
    img.src = URL.createObjectURL(await r.blob());
  }).catch((e) => {
    figure.dataset.error = e.message;
    img.alt = "chart unavailable: " + e.message;
  });
  return figure;
}

function table(id, headers, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : null, text: h.label || h })))),
    el("tbody", {}, rows));
}

function labelled(id, text, control) {
  control.id = id;
  return el("label", { for: id }, text, control);
}

function select(options, value) {
  const s = el("select", {});
  for (const [v, text] of options) s.append(el("option", { value: v, text, selected: v === value }));
  return s;
}

// ---- overview -------------------------------------------------------------------------------

function defaultWeeks(params) {
  const now = new Date();
  const daysToMonday = (8 - now.getUTCDay()) % 7 || 7;
  const nextMonday = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + daysToMonday));
  const to = params.get("to") || day(nextMonday);
  const from = params.get("from") || day(new Date(parseDay(to).getTime() - 8 * 7 * DAY_MS));
  return { from, to };
}

async function overview(m, params, current) {
  const { from, to } = defaultWeeks(params);
  const team = params.get("team") || "";
  const [org, byTeam] = await Promise.all([
    getJson("/api/v1/roi?" + query({ from, to })),
    getJson("/api/v1/roi?" + query({ from, to, by: "team" })),
  ]);
  if (!current()) return;
  const teams = [...new Set(byTeam.weeks.map((w) => w.key).filter((k) => k !== null))].sort();
  const weeks = team ? byTeam.weeks.filter((w) => w.key === team) : org.weeks;
  const tops = team ? byTeam.top_tools.filter((t) => t.key === team) : org.top_tools;
  const last = weeks[weeks.length - 1] || {};

  const teamSelect = select([["", "All teams"], ...teams.map((t) => [t, t])], team);
  const fromInput = el("input", { type: "date", value: from });
  const toInput = el("input", { type: "date", value: to });
  teamSelect.addEventListener("change", () => go("overview", { from, to, team: teamSelect.value }));
  const apply = el("button", { type: "button", text: "Apply", onclick: () => go("overview", { from: fromInput.value, to: toInput.value, team: teamSelect.value }) });
  const kpi = (name, label, value, text) => el("div", { class: "kpi", dataset: { kpi: name, value: value === undefined ? "" : value } },
    el("div", { class: "label", text: label }), el("div", { class: "value", text }));

  m.append(
    el("div", { class: "filters" }, labelled("team-filter", "Team", teamSelect), labelled("from", "From", fromInput), labelled("to", "To (exclusive)", toInput), apply),
    el("h2", { text: last.week_start ? `Week of ${last.week_start.slice(0, 10)}` : "No calls in this range" }),
    el("div", { class: "kpis" },
      kpi("active_principals", "Weekly active principals", last.active_principals, fmtInt(last.active_principals)),
      kpi("calls", "Calls", last.calls, fmtInt(last.calls)),
      kpi("success_rate", "Success rate", last.success_rate, fmtPct(last.success_rate)),
      kpi("p95_ms", "p95 latency", last.p95_ms, fmtMs(last.p95_ms)),
      kpi("attribution_coverage", "Calls by a person (attribution coverage)", last.attribution_coverage, fmtPct(last.attribution_coverage))),
    chart("roi-calls", "bars", "Calls per week", "calls", weeks.map((w) => ({ label: w.week_start.slice(5, 10), value: w.calls }))),
    chart("roi-active", "line", "Weekly active principals (adoption)", "principals", weeks.map((w) => ({ label: w.week_start.slice(5, 10), value: w.active_principals }))),
    chart("roi-p95", "line", "p95 latency per week", "ms", weeks.map((w) => ({ label: w.week_start.slice(5, 10), value: w.p95_ms }))),
    el("h2", { text: "Weeks" }),
    table("roi-weeks", ["Week", { label: "Active", num: true }, { label: "People", num: true }, { label: "Calls", num: true }, { label: "Success", num: true }, { label: "p50", num: true }, { label: "p95", num: true }, { label: "Servers", num: true }, { label: "Tools", num: true }, { label: "Coverage", num: true }, { label: "Change", num: true }],
      weeks.map((w) => el("tr", { dataset: { week: w.week_start } },
        el("td", { text: w.week_start.slice(0, 10) }),
        el("td", { class: "num", text: fmtInt(w.active_principals) }),
        el("td", { class: "num", text: fmtInt(w.active_humans) }),
        el("td", { class: "num", text: fmtInt(w.calls) }),
        el("td", { class: "num", text: fmtPct(w.success_rate) }),
        el("td", { class: "num", text: fmtMs(w.p50_ms) }),
        el("td", { class: "num", text: fmtMs(w.p95_ms) }),
        el("td", { class: "num", text: fmtInt(w.servers) }),
        el("td", { class: "num", text: fmtInt(w.tools) }),
        el("td", { class: "num", text: fmtPct(w.attribution_coverage) }),
        el("td", { class: "num", text: w.active_change === null ? "–" : fmtPct(w.active_change) })))),
    el("h2", { text: "Top tools" }),
    el("ol", { id: "top-tools" }, tops.map((t) => el("li", { text: `${t.tool} on ${t.server || "unknown server"}: ${fmtInt(t.calls)} calls` }))));
}

// ---- chargeback -----------------------------------------------------------------------------

function monthRange(month) {
  const [y, mo] = month.split("-").map(Number);
  return { from: day(new Date(Date.UTC(y, mo - 1, 1))), to: day(new Date(Date.UTC(y, mo, 1))) };
}

async function chargeback(m, params, current) {
  const month = params.get("month") || new Date().toISOString().slice(0, 7);
  const by = params.get("by") || "team";
  const { from, to } = monthRange(month);
  const report = await getJson("/api/v1/chargeback?" + query({ from, to, by, granularity: "month" }));
  if (!current()) return;
  const monthInput = el("input", { type: "month", value: month });
  const bySelect = select([["team", "Team"], ["cost_center", "Cost center"], ["tenant", "Tenant"]], by);
  const apply = () => go("chargeback", { month: monthInput.value, by: bySelect.value });
  monthInput.addEventListener("change", apply);
  bySelect.addEventListener("change", apply);
  const drill = el("section", { id: "drill", "aria-live": "polite" });
  // A month priced by two price tables has a row per group and version: say which is which.
  const versioned = report.price_table_versions.length > 1;
  const group = (r) => (r.kind === "idle" ? "(idle: no calls)" : r[by] === null ? "(not attributed)" : r[by]);
  const label = (r) => group(r) + (versioned ? ` [${r.price_table_version}]` : "");

  const showDrill = async (key, name) => {
    drill.replaceChildren(el("h2", { text: `${name}: by server and tool` }), el("p", { text: "Loading…" }));
    try {
      const d = await getJson("/api/v1/chargeback/drilldown?" + query({ from, to, by, key: key }));
      drill.replaceChildren(el("h2", { text: `${name}: by server and tool` }),
        table("drilldown", ["Server", "Tool", { label: "Calls", num: true }, { label: "Failed", num: true }, { label: "Usage cost", num: true }, { label: "Total cost", num: true }, "Price table"],
          d.rows.map((r) => el("tr", { dataset: { server: r.server || "", tool: r.tool || "" } },
            el("td", { text: r.server || "(not recorded)" }), el("td", { text: r.tool || "(not a tool call)" }),
            el("td", { class: "num", dataset: { col: "calls" }, text: fmtInt(r.calls) }),
            el("td", { class: "num", text: fmtInt(r.failed_calls) }),
            el("td", { class: "num", text: r.usage_cost }),
            el("td", { class: "num", dataset: { col: "total_cost" }, text: r.total_cost }),
            el("td", { text: r.price_table_versions.join(", ") })))));
    } catch (e) {
      drill.replaceChildren(el("p", { id: "drill-error", role: "alert", text: e.message }));
    }
  };

  const download = el("button", { id: "focus-download", type: "button", class: "secondary", text: "Download FOCUS CSV" });
  download.addEventListener("click", async () => {
    download.disabled = true;
    try {
      const r = await api("/api/v1/chargeback/focus?" + query({ from, to }), { headers: { Accept: "text/csv" } });
      const a = el("a", { href: URL.createObjectURL(await r.blob()), download: `focus-${month}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      download.dataset.done = "true";
    } catch (e) {
      download.dataset.error = e.message;
    } finally {
      download.disabled = false;
    }
  });

  const t = report.totals;
  m.append(
    el("div", { class: "filters" }, labelled("month", "Month", monthInput), labelled("cb-by", "Group by", bySelect), download),
    el("p", {}, "Price table version(s): ", el("strong", { id: "price-versions", text: report.price_table_versions.join(", ") || "–" }),
      ` · currency ${report.currency} · usage ${t.usage_cost} · platform ${t.platform_cost} (allocated ${t.allocated_platform_cost}, idle ${t.idle_platform_cost})`,
      report.complete ? el("span", { class: t.reconciles ? "ok" : "bad", text: t.reconciles ? " · reconciles" : " · does not reconcile" }) : " · your share only"),
    chart("chargeback", "bars", `Total cost by ${by.replace("_", " ")}, ${month} (${report.currency})`, report.currency, report.rows.map((r) => ({ label: String(label(r)).slice(0, 80), value: Number(r.total_cost) }))),
    table("chargeback", [by.replace("_", " "), "Kind", { label: "Calls", num: true }, { label: "Failed", num: true }, { label: "Usage cost", num: true }, { label: "Platform share", num: true }, { label: "Total cost", num: true }, "Price table", ""],
      report.rows.map((r) => el("tr", { dataset: { key: r.kind === "idle" ? "" : r[by] === null ? "" : r[by], kind: r.kind } },
        el("td", { text: label(r) }), el("td", { text: r.kind }),
        el("td", { class: "num", dataset: { col: "calls" }, text: String(r.calls) }),
        el("td", { class: "num", text: String(r.failed_calls) }),
        el("td", { class: "num", text: r.usage_cost }),
        el("td", { class: "num", text: r.platform_cost }),
        el("td", { class: "num", dataset: { col: "total_cost" }, text: r.total_cost }),
        el("td", { text: r.price_table_version }),
        el("td", {}, r.kind === "usage" ? el("button", { type: "button", class: "drill secondary", text: "By server and tool", "aria-label": `Cost of ${label(r)} by server and tool`, onclick: () => showDrill(r[by] === null ? "" : r[by], group(r)) }) : "")))),
    drill);
}

// ---- anomalies ------------------------------------------------------------------------------

async function anomalies(m, params, current) {
  const to = params.get("to") || day(new Date(Date.now() + DAY_MS));
  const from = params.get("from") || day(new Date(parseDay(to).getTime() - 7 * DAY_MS));
  const severity = params.get("severity") || "";
  const detector = params.get("detector") || "";
  const entity = params.get("entity") || "";
  const data = await getJson("/api/v1/anomalies?" + query({ from, to, severity, detector, entity }));
  if (!current()) return;
  const sev = select([["", "Any"], ["low", "Low and up"], ["medium", "Medium and up"], ["high", "High and up"], ["critical", "Critical"]], severity);
  const det = select([["", "Any"], ...["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", "D9"].map((d) => [d, d])], detector);
  const ent = el("input", { type: "text", value: entity, placeholder: "principal, team or server" });
  const fromInput = el("input", { type: "date", value: from });
  const toInput = el("input", { type: "date", value: to });
  const apply = el("button", { id: "an-apply", type: "button", text: "Apply", onclick: () => go("anomalies", { from: fromInput.value, to: toInput.value, severity: sev.value, detector: det.value, entity: ent.value.trim() }) });
  const perDay = new Map();
  for (const f of data.findings) {
    const d = fmtTime(f.window_start_ns).slice(0, 10);
    perDay.set(d, (perDay.get(d) || 0) + 1);
  }
  const days = [...perDay.keys()].sort();
  m.append(
    el("div", { class: "filters" }, labelled("an-from", "From", fromInput), labelled("an-to", "To (exclusive)", toInput), labelled("an-severity", "Severity", sev), labelled("an-detector", "Detector", det), labelled("an-entity", "Entity", ent), apply),
    el("p", { id: "an-count", text: `${data.findings.length} finding(s), newest first.` }),
    chart("anomalies", "bars", "Findings per day", "findings", days.map((d) => ({ label: d.slice(5), value: perDay.get(d) }))),
    table("anomalies", ["Window (UTC)", "Severity", "Detector", "Entity", { label: "Observed", num: true }, { label: "Expected", num: true }, { label: "Score", num: true }, "Explanation", ""],
      data.findings.map((f) => {
        const audit = { from: fmtTime(f.window_start_ns).slice(0, 16), to: fmtTime(f.window_end_ns).slice(0, 16), principal: f.principal || "", team: f.principal ? "" : f.team || "", server: f.server_name || "" };
        return el("tr", { dataset: { findingId: f.finding_id } },
          el("td", { text: `${fmtTime(f.window_start_ns).slice(0, 16)} – ${fmtTime(f.window_end_ns).slice(11, 16)}` }),
          el("td", { class: "sev-" + f.severity, text: f.severity }),
          el("td", { text: `${f.detector} ${f.rule}` }),
          el("td", { text: `${f.entity_kind} ${f.entity}` }),
          el("td", { class: "num", text: String(f.observed) }),
          el("td", { class: "num", text: f.expected === null ? "–" : String(f.expected) }),
          el("td", { class: "num", text: Number(f.score).toFixed(2) }),
          el("td", { class: "explanation", text: f.explanation }),
          el("td", {}, el("a", { class: "calls-link", href: "#/audit?" + query(audit), text: "Calls" })));
      })));
}

// ---- audit search ---------------------------------------------------------------------------

// [shown as, column]: the chain position and hashes first, as a proof needs them.
const DETAIL_FIELDS = [["event_id", "event_id"], ["chain_id", "chain_id"], ["chain_seq", "seq"], ["record_hash", "leaf_hash"], ["chain_hash", "chain_hash"]].concat(["start_time", "duration_ms", "principal", "principal_kind", "principal_reason", "team", "tenant", "cost_center", "server_name", "tool_name", "method", "operation_class", "outcome", "error_type", "side", "trace_id", "span_id", "session_id", "client_name", "ingest_protocol"].map((k) => [k, k]));

async function audit(m, params, current) {
  const now = new Date();
  const to = params.get("to") || new Date(now.getTime() + 60000).toISOString().slice(0, 16);
  const from = params.get("from") || new Date(now.getTime() - DAY_MS).toISOString().slice(0, 16);
  const filters = {};
  for (const k of ["principal", "team", "server", "tool", "outcome"]) filters[k] = params.get(k) || "";
  const inputs = {};
  for (const k of ["principal", "team", "server", "tool"]) inputs[k] = el("input", { type: "text", value: filters[k] });
  inputs.outcome = select([["", "Any"], ["ok", "ok"], ["error", "error"], ["denied", "denied"], ["timeout", "timeout"], ["cancelled", "cancelled"]], filters.outcome);
  inputs.from = el("input", { type: "datetime-local", value: from });
  inputs.to = el("input", { type: "datetime-local", value: to });
  const values = () => Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value.trim()]));
  const search = el("button", { id: "search", type: "button", text: "Search", onclick: () => go("audit", values()) });
  const utc = (local) => local + ":00Z";
  const data = await getJson("/api/v1/calls?" + query(Object.assign({}, filters, { from: utc(from), to: utc(to) })));
  if (!current()) return;
  const detail = el("section", { id: "call-detail", "aria-live": "polite" }, el("p", { class: "note", text: "Choose a call to see its record, chain position and hashes." }));
  const show = (row) => {
    detail.replaceChildren(el("h2", { text: "Call record" }),
      el("dl", { class: "detail" }, DETAIL_FIELDS.flatMap(([name, k]) => [el("dt", { text: name }), el("dd", { class: name.endsWith("hash") || name.endsWith("_id") ? "mono" : null, dataset: { field: name }, text: row[k] === undefined || row[k] === null ? "–" : String(row[k]) })])),
      el("p", { class: "note", text: `Prove this record offline: calltrail prove ${row.event_id}` }));
  };
  const status = el("p", { id: "export-status", "aria-live": "polite" });
  const startExport = el("button", { id: "start-export", type: "button", class: "secondary", text: "Start compliance export of this range" });
  startExport.addEventListener("click", async () => {
    startExport.disabled = true;
    const body = { from: utc(from), to: utc(to) };
    if (filters.principal) body.principals = [filters.principal];
    if (filters.server) body.servers = [filters.server];
    if (filters.tool) body.tools = [filters.tool];
    try {
      const r = await api("/api/v1/exports", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      let job = await r.json();
      status.dataset.id = job.id;
      // Polls while the page is shown; leaving it (or logging out) stops the poll.
      for (let i = 0; i < 60 && job.state === "running" && current(); i++) {
        status.textContent = `Export ${job.id}: running…`;
        await new Promise((res) => setTimeout(res, 1000));
        job = (await getJson("/api/v1/exports")).exports.find((j) => j.id === job.id) || job;
      }
      status.dataset.state = job.state;
      status.textContent = job.state === "done"
        ? `Export ${job.id}: ${fmtInt(job.records)} records written to ${job.dir} on the server, with their proofs (check with calltrail verify-export).`
        : `Export ${job.id}: ${job.state}${job.error ? ": " + job.error : ""}`;
    } catch (e) {
      status.dataset.state = "failed";
      status.textContent = e.message;
    } finally {
      startExport.disabled = false;
    }
  });
  m.append(
    el("div", { class: "filters" },
      labelled("f-principal", "Principal", inputs.principal), labelled("f-team", "Team", inputs.team),
      labelled("f-server", "Server", inputs.server), labelled("f-tool", "Tool", inputs.tool),
      labelled("f-outcome", "Outcome", inputs.outcome), labelled("f-from", "From (UTC)", inputs.from),
      labelled("f-to", "To (UTC)", inputs.to), search),
    el("p", { class: "note", text: `${data.rows.length} call record(s), newest first${data.rows.length >= 200 ? " (the first 200; narrow the filters)" : ""}. Exports select by time, principal, server and tool.` }),
    el("div", { class: "filters" }, startExport, status),
    table("calls", ["Start (UTC)", "Principal", "Team", "Server", "Tool", "Outcome", { label: "ms", num: true }, "Side", { label: "Seq", num: true }, ""],
      data.rows.map((r) => el("tr", { dataset: { seq: r.seq, chain: r.chain_id, eventId: r.event_id }, onclick: () => show(r) },
        el("td", { text: String(r.start_time).replace("T", " ").slice(0, 23) }),
        el("td", { text: r.principal || "–" }), el("td", { text: r.team || "–" }),
        el("td", { text: r.server_name || "–" }), el("td", { text: r.tool_name || "–" }),
        el("td", { class: r.outcome === "ok" ? "ok" : "bad", text: r.outcome }),
        el("td", { class: "num", text: r.duration_ms === null ? "–" : Number(r.duration_ms).toFixed(1) }),
        el("td", { text: r.side }), el("td", { class: "num", text: String(r.seq) }),
        el("td", {}, el("button", { type: "button", class: "secondary details", text: "Details", "aria-label": `Details of call ${r.seq}` }))))),
    detail);
}

// ---- integrity ------------------------------------------------------------------------------

async function integrity(m, params, current) {
  const data = await getJson("/api/v1/integrity");
  if (!current()) return;
  const v = data.verify;
  const verifyBox = el("div", { id: "verify-result", dataset: { ok: v ? String(v.ok) : "" } },
    v ? el("p", {}, el("span", { class: v.ok ? "ok" : "bad", text: v.ok ? "No tampering found" : `${v.findings.length} finding(s)` }),
      ` at ${v.at}: ${fmtInt(v.segments)} segments, ${fmtInt(v.records)} records, ${fmtInt(v.chains)} chain(s) verified.`)
      : el("p", { text: "No verify has been run by this server yet." }),
    v && !v.ok ? el("ul", {}, v.findings.map((f) => el("li", { text: f }))) : "");
  const run = el("button", { id: "run-verify", type: "button", text: "Verify now" });
  run.addEventListener("click", async () => {
    run.disabled = true;
    run.textContent = "Verifying…";
    try {
      await api("/api/v1/verify", { method: "POST" });
      render();
    } catch (e) {
      verifyBox.append(el("p", { role: "alert", text: e.message }));
      run.disabled = false;
    }
  });
  const r = data.retention;
  m.append(
    el("h2", { text: "Chains and checkpoints" }),
    table("chains", ["Chain", { label: "Records", num: true }, { label: "Newest checkpoint size", num: true }, "Signed at (UTC)"],
      data.chains.map((c) => el("tr", { dataset: { chain: c.chain_id } },
        el("td", { class: "mono", text: c.chain_id }), el("td", { class: "num", text: fmtInt(c.records) }),
        el("td", { class: "num", text: c.newest_checkpoint_size === null ? "none" : fmtInt(c.newest_checkpoint_size) }),
        el("td", { text: c.newest_checkpoint_at === null ? "–" : new Date(c.newest_checkpoint_at * 1000).toISOString() })))),
    el("h2", { text: "Last verify" }), verifyBox, run,
    el("h2", { text: "Forwarding to SIEMs" }),
    data.forwarding.length
      ? table("destinations", ["Destination", { label: "Lag (records)", num: true }, { label: "Lag (seconds)", num: true }, { label: "Dead letters", num: true }],
        data.forwarding.map((d) => el("tr", { dataset: { destination: d.name } },
          el("td", { text: d.name }), el("td", { class: "num", text: fmtInt(d.lag_records) }),
          el("td", { class: "num", text: fmtInt(d.lag_seconds) }), el("td", { class: "num", text: fmtInt(d.dead_letters) }))))
      : table("destinations", ["Destination"], [el("tr", {}, el("td", { text: "No forwarding destinations are configured." }))]),
    el("h2", { text: "Retention" }),
    el("section", { id: "retention" },
      table("retention-classes", ["Class", { label: "Keep days", num: true }, { label: "Segments", num: true }, { label: "Records", num: true }, "Oldest record", "Next expiry"],
        r.classes.map((c) => el("tr", { dataset: { class: c.class } },
          el("td", { text: c.class }), el("td", { class: "num", text: fmtInt(c.keep_days) }),
          el("td", { class: "num", text: fmtInt(c.segments) }), el("td", { class: "num", text: fmtInt(c.records) }),
          el("td", { text: c.oldest === null ? "–" : new Date(c.oldest * 1000).toISOString() }),
          el("td", { text: c.next_expiry === null ? "–" : new Date(c.next_expiry * 1000).toISOString() })))),
      el("p", { text: `Due for deletion now: ${fmtInt(r.due_segments)} segment(s), ${fmtInt(r.due_records)} records; kept past expiry by holds: ${fmtInt(r.held_segments)}; deleted so far: ${fmtInt(r.receipts)} (each with a signed receipt).` })),
    el("h2", { text: "Legal holds" }),
    table("holds", ["Hold", "Scope", "Reason", "Placed by", "Placed at (UTC)"],
      data.holds.map((h) => el("tr", { dataset: { hold: h.id } },
        el("td", { text: h.id }),
        el("td", { text: Object.entries(h.scope).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${k.endsWith("_ns") ? fmtTime(v) : v}`).join(", ") || "everything" }),
        el("td", { text: h.reason }), el("td", { text: h.placed_by }),
        el("td", { text: fmtTime(h.placed_at_ns) })))));
}

const VIEWS = { overview, chargeback, anomalies, audit, integrity };

// ---- start ----------------------------------------------------------------------------------

function start() {
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    // Clearing the route without a hashchange: the login form is shown once.
    history.replaceState(null, "", location.pathname);
    showLogin();
  });
  // A login link (`calltrail token --url`) carries the token in the fragment, which browsers
  // never send to a server; it is moved to session storage and removed from the address bar.
  const m = location.hash.match(/^#token=([A-Za-z0-9_\-.]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, "", location.pathname + "#/overview");
  }
  window.addEventListener("hashchange", render);
  if (token()) loggedIn();
  else showLogin();
}

document.addEventListener("DOMContentLoaded", start);
