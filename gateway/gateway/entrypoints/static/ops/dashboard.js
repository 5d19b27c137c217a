// The operator dashboard: signs in (POST /v1/auth/token), polls GET /v1/ops/overview and draws it.
// Plain JavaScript, no library, nothing loaded from elsewhere. Text from the server is only ever set
// as textContent (queries may contain anything). The token lives in sessionStorage: closing the tab
// signs out. A token can also be handed over in the address's fragment: /ops/dashboard#token=...
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const POLL_MS = Math.max(500, Number(params.get("interval_ms")) || 3000);
  const HISTORY = 60; // points per series in the chart
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COLORS = {
    availability: "#1f77b4", booking: "#d62728", payments: "#2ca02c", notifications: "#9467bd",
    gateway: "#ff7f0e", other: "#7f7f7f",
  };
  const SERIES = ["availability", "booking", "payments", "notifications", "gateway", "other"];
  const store = window.sessionStorage;
  const state = { history: [], timer: null, polling: false };

  const $ = (id) => document.getElementById(id);

  // --- formatting --------------------------------------------------------------------------------

  const dash = "–";
  const num = (v) => (v === null || v === undefined ? dash : String(v));
  const percent = (v) => (v === null || v === undefined ? dash : (100 * v).toFixed(1) + " %");
  function seconds(v) {
    if (v === null || v === undefined) return dash;
    if (v < 1) return Math.round(v * 1000) + " ms";
    if (v < 120) return v.toFixed(1) + " s";
    return (v / 60).toFixed(1) + " min";
  }
  const short = (text, width) => {
    const flat = String(text || "").replace(/\s+/g, " ").trim();
    return flat.length <= width ? flat : flat.slice(0, width - 1) + "…";
  };

  // --- signing in --------------------------------------------------------------------------------

  function setStatus(text, isError) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function showLogin(message) {
    stopPolling();
    $("dashboard").hidden = true;
    $("logout-button").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }

  function showDashboard() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("logout-button").hidden = false;
  }

  function saveTokens(tokens) {
    store.setItem("reserva.ops.access", tokens.access_token);
    if (tokens.refresh_token) store.setItem("reserva.ops.refresh", tokens.refresh_token);
  }

  function forgetTokens() {
    store.removeItem("reserva.ops.access");
    store.removeItem("reserva.ops.refresh");
  }

  async function postJson(path, body) {
    const reply = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    });
    const payload = await reply.json().catch(() => ({}));
    return { ok: reply.ok, status: reply.status, payload };
  }

  async function login(event) {
    event.preventDefault();
    $("login-button").disabled = true;
    $("login-error").textContent = "";
    try {
      const answer = await postJson("/v1/auth/token", { email: $("email").value, password: $("password").value });
      if (!answer.ok) {
        $("login-error").textContent = answer.payload.detail || "Sign-in failed (" + answer.status + ").";
        return;
      }
      saveTokens(answer.payload);
      $("password").value = "";
      start();
    } catch (error) {
      $("login-error").textContent = "The gateway did not answer: " + error;
    } finally {
      $("login-button").disabled = false;
    }
  }

  async function refreshTokens() {
    const refresh = store.getItem("reserva.ops.refresh");
    if (!refresh) return false;
    const answer = await postJson("/v1/auth/refresh", { refresh_token: refresh });
    if (!answer.ok) return false;
    saveTokens(answer.payload);
    return true;
  }

  function logout() {
    const access = store.getItem("reserva.ops.access");
    const refresh = store.getItem("reserva.ops.refresh");
    forgetTokens();
    if (access) {
      fetch("/v1/auth/logout", {
        method: "POST",
        headers: { Authorization: "Bearer " + access, "Content-Type": "application/json" },
        body: JSON.stringify(refresh ? { refresh_token: refresh } : {}),
      }).catch(() => {});
    }
    state.history = [];
    showLogin("Signed out.");
    setStatus("Sign in as an agent to see the platform's figures.");
  }

  // --- polling -----------------------------------------------------------------------------------

  function stopPolling() {
    if (state.timer) window.clearTimeout(state.timer);
    state.timer = null;
    state.polling = false;
  }

  function schedule() {
    if (state.polling) state.timer = window.setTimeout(poll, POLL_MS);
  }

  async function fetchOverview() {
    return fetch("/v1/ops/overview", {
      headers: { Authorization: "Bearer " + store.getItem("reserva.ops.access"), Accept: "application/json" },
      credentials: "omit",
      cache: "no-store",
    });
  }

  async function poll() {
    let reply;
    try {
      reply = await fetchOverview();
      if (reply.status === 401 && (await refreshTokens())) reply = await fetchOverview();
    } catch (error) {
      setStatus("The gateway did not answer (" + error + "); retrying.", true);
      schedule();
      return;
    }
    if (reply.status === 401) {
      forgetTokens();
      showLogin("Your session has ended: sign in again.");
      return;
    }
    if (reply.status === 403) {
      forgetTokens();
      showLogin("This dashboard is for agents only.");
      return;
    }
    if (!reply.ok) {
      const problem = await reply.json().catch(() => ({}));
      setStatus("The overview failed (" + reply.status + " " + (problem.code || "") + "); retrying.", true);
      schedule();
      return;
    }
    const overview = await reply.json();
    render(overview);
    setStatus("Database " + overview.database + " · updated " + new Date().toLocaleTimeString() +
      " · every " + POLL_MS / 1000 + " s");
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    schedule();
  }

  function start() {
    showDashboard();
    stopPolling();
    state.polling = true;
    poll();
  }

  // --- rendering ---------------------------------------------------------------------------------

  function cell(row, text, field, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (field) td.dataset.field = field;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fillTable(id, items, columns, keyOf, emptyText) {
    const body = $(id).querySelector("tbody");
    const rows = items.map((item) => {
      const tr = document.createElement("tr");
      Object.assign(tr.dataset, keyOf(item));
      for (const [field, value, className] of columns(item)) cell(tr, value, field, className);
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(tr, emptyText);
      td.colSpan = $(id).querySelectorAll("thead th").length;
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function render(o) {
    const t = o.totals;
    $("total-locks").textContent = num(t.locks);
    $("blocked-count").textContent = num(t.blocked_sessions);
    $("outbox-pending").textContent = num(t.outbox_pending);
    $("outbox-lag").textContent = seconds(t.outbox_oldest_age_s);
    $("cache-hit-rate").textContent = percent(t.cache_hit_rate);
    const table = o.lock_table;
    $("lock-table").textContent = table.shared_table_locks + " / " + table.capacity + " (" +
      percent(table.usage_ratio) + ")";
    $("lock-table").classList.toggle("error", table.near_exhaustion);
    $("visibility-warning").hidden = o.full_visibility;
    $("snapshots-warning").hidden = o.snapshots_available;

    fillTable("services-table", o.services, (s) => [
      ["service", s.service],
      ["instances", num(s.instances)],
      ["sessions", num(s.live_locks.backends)],
      ["live_locks", num(s.live_locks.locks)],
      ["waiting", num(s.live_locks.waiting_backends)],
      ["probe_max_locks", s.lock_probe.transactions ? num(s.lock_probe.max_locks) : dash],
      ["probe_transactions", num(s.lock_probe.transactions)],
      ["near_budget", num(s.lock_probe.near_budget)],
      ["over_budget", num(s.lock_probe.over_budget)],
      ["outbox_pending", s.outbox ? num(s.outbox.pending) : dash],
      ["outbox_oldest_age", s.outbox ? seconds(s.outbox.oldest_age_s) : dash],
      ["cache_hit_rate", percent(s.cache.hit_rate)],
      ["cache_recent_hit_rate", percent(s.cache.recent_hit_rate)],
    ], (s) => ({ service: s.service }), "No service.");

    fillTable("blocked-table", o.blocked_sessions, (b) => [
      ["pid", num(b.pid)],
      ["application", b.application_name],
      ["user", num(b.usename)],
      ["waiting_for", b.waiting_for || dash],
      ["waiting", seconds(b.state_age_s)],
      ["blocked_by", b.blockers.map((x) => x.pid + " (" + (x.application_name || "?") + ", " +
        (x.state || "?") + ")").join(", ")],
      ["query", short(b.query, 200), "query"],
    ], (b) => ({ pid: String(b.pid), blockedBy: b.blocked_by.join(" ") }), "No session waits on a lock.");

    const slow = [
      ...o.slow_statements.running.map((s) => ({
        where: "running", service: s.application_name, pid: s.pid, seconds: s.query_age_s, statement: s.query,
      })),
      ...o.slow_statements.recent.map((s) => ({
        where: "logged", service: s.service, pid: null, seconds: s.duration_ms / 1000, statement: s.statement,
      })),
    ];
    fillTable("slow-table", slow, (s) => [
      ["where", s.where],
      ["service", s.service],
      ["pid", num(s.pid)],
      ["duration", seconds(s.seconds)],
      ["statement", short(s.statement, 300), "query"],
    ], (s) => ({ where: s.where }), "No statement slower than " + o.slow_statements.threshold_ms + " ms.");

    const long = new Map();
    for (const s of [...o.long_transactions, ...o.idle_in_transaction]) long.set(s.pid, s);
    fillTable("long-table", [...long.values()], (s) => [
      ["pid", num(s.pid)],
      ["application", s.application_name],
      ["user", num(s.usename)],
      ["state", num(s.state)],
      ["xact_age", seconds(s.xact_age_s)],
      ["locks", num(s.locks)],
      ["query", short(s.query, 200), "query"],
    ], (s) => ({ pid: String(s.pid) }), "No long or idle transaction.");

    const operations = o.services.flatMap((s) => s.lock_probe.operations.map((op) => ({ service: s.service, ...op })));
    operations.sort((a, b) => b.max_locks - a.max_locks || a.service.localeCompare(b.service));
    fillTable("operations-table", operations, (op) => [
      ["service", op.service],
      ["operation", op.operation],
      ["kind", op.kind],
      ["transactions", num(op.transactions)],
      ["max_locks", num(op.max_locks)],
      ["max_relation_locks", num(op.max_relation_locks)],
      ["max_advisory_locks", num(op.max_advisory_locks)],
    ], (op) => ({ service: op.service, operation: op.operation, kind: op.kind }), "No transaction measured yet.");

    record(o);
    drawChart();
  }

  // --- the chart: locks held per service (pg_locks), one line each, the last HISTORY polls ---------

  function record(o) {
    const point = { at: Date.now(), values: {} };
    for (const name of SERIES) point.values[name] = 0;
    for (const usage of o.lock_usage) {
      const name = SERIES.includes(usage.application_name) ? usage.application_name : "other";
      point.values[name] += usage.locks;
    }
    state.history.push(point);
    if (state.history.length > HISTORY) state.history.shift();
  }

  function svg(tag, attributes, text) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function niceCeiling(value) {
    if (value <= 5) return 5;
    const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) if (step * magnitude >= value) return step * magnitude;
    return 10 * magnitude;
  }

  function drawChart() {
    const chart = $("locks-chart");
    const [width, height] = [760, 240];
    const m = { left: 44, right: 12, top: 12, bottom: 28 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const points = state.history;
    const max = niceCeiling(Math.max(1, ...points.flatMap((p) => Object.values(p.values))));
    const x = (i) => m.left + (HISTORY <= 1 ? 0 : (plotW * (i + HISTORY - points.length)) / (HISTORY - 1));
    const y = (v) => m.top + plotH - (plotH * v) / max;
    const children = [];
    for (let k = 0; k <= 4; k++) {
      const value = (max * k) / 4;
      children.push(svg("line", { class: "grid", x1: m.left, x2: width - m.right, y1: y(value), y2: y(value) }));
      children.push(svg("text", { x: m.left - 6, y: y(value) + 4, "text-anchor": "end" }, String(Math.round(value))));
    }
    children.push(svg("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: m.top + plotH }));
    children.push(svg("line", { class: "axis", x1: m.left, x2: width - m.right, y1: m.top + plotH, y2: m.top + plotH }));
    children.push(svg("text", { x: m.left, y: height - 8 }, "last " + Math.round((HISTORY * POLL_MS) / 1000) + " s"));
    children.push(svg("text", { x: width - m.right, y: height - 8, "text-anchor": "end" }, "now"));
    const legend = [];
    for (const name of SERIES) {
      const seen = points.some((p) => p.values[name] > 0);
      if (!seen && name === "other") continue;
      const coordinates = points.map((p, i) => x(i).toFixed(1) + "," + y(p.values[name]).toFixed(1));
      children.push(svg("polyline", {
        points: coordinates.join(" "), stroke: COLORS[name], "data-service": name,
        "data-last": points.length ? points[points.length - 1].values[name] : 0,
      }));
      legend.push(name);
    }
    chart.replaceChildren(...children);
    chart.dataset.points = String(points.length);
    const caption = $("chart-legend");
    caption.replaceChildren(...legend.map((name) => {
      const item = document.createElement("span");
      const swatch = svg("svg", { class: "swatch", viewBox: "0 0 10 10", width: 10, height: 10 });
      swatch.appendChild(svg("rect", { width: 10, height: 10, fill: COLORS[name] }));
      item.append(swatch, " " + name + " " + (points.length ? points[points.length - 1].values[name] : 0));
      return item;
    }));
  }

  // --- start -------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("logout-button").addEventListener("click", logout);
    const handed = new URLSearchParams(window.location.hash.slice(1)).get("token");
    if (handed) {
      saveTokens({ access_token: handed });
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    if (store.getItem("reserva.ops.access")) start();
    else showLogin();
  });
})();
