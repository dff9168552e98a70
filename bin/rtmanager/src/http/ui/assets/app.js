// rtmanager console: a small single-page app over the admin REST API.
// The admin token lives in sessionStorage only (gone when the tab closes);
// it is sent as a bearer header, never put in a URL or a cookie. Every
// piece of data is inserted with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "rtm.admin.token";
const REFRESH_MS = 3000;
const API = "/admin/v1";

// ------------------------------------------------------------ helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(kind, value) {
  const v = value || "unknown";
  return h("span", { class: `badge ${kind}-${v}` }, v.replace(/_/g, " "));
}

function outcomeBadge(o) {
  return h("span", { class: `badge ${o}` }, o);
}

function age(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function when(iso) {
  if (!iso) return "—";
  return h("time", { datetime: iso, title: iso }, `${iso.replace("T", " ").replace(/\.\d+Z$/, "Z")} (${age(iso)})`);
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "—" : v)]));
}

function table(caption, headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "Nothing to show.");
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

function section(title, id, ...body) {
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...body);
}

function swap(id, node) {
  const el = document.getElementById(id);
  if (el) el.replaceChildren(node);
}

// ------------------------------------------------------------ API

class AuthError extends Error {}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new AuthError("not signed in");
  const init = { method, headers: { Authorization: `Bearer ${token}` }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, init);
  let json = null;
  try { json = await res.json(); } catch (_) { json = null; }
  if (res.status === 401 || res.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new AuthError((json && json.error && json.error.message) || "the token was refused");
  }
  return { status: res.status, ok: res.ok, body: json };
}

function errorText(r) {
  const e = r.body && r.body.error;
  return e ? `${e.code}: ${e.message}` : `HTTP ${r.status}`;
}

// ------------------------------------------------------------ routing

let timer = null;
let current = null;

function stopRefresh() {
  if (timer) clearInterval(timer);
  timer = null;
}

// Runs `refresh` now and every REFRESH_MS while the tab is visible.
function live(refresh) {
  stopRefresh();
  const tick = async () => {
    if (document.hidden) return;
    try {
      await refresh();
      document.getElementById("refreshed").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e instanceof AuthError) return showLogin(e.message);
      document.getElementById("refreshed").textContent = `Update failed: ${e.message}`;
    }
  };
  timer = setInterval(tick, REFRESH_MS);
  return tick();
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function setPage(title, navId) {
  document.title = `${title} · rtmanager console`;
  for (const a of document.querySelectorAll("#nav a")) a.removeAttribute("aria-current");
  if (navId) document.getElementById(navId).setAttribute("aria-current", "page");
}

async function route() {
  stopRefresh();
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  const { path, params } = parseHash();
  const main = document.getElementById("main");
  current = path;
  try {
    if (path === "/" || path === "") return await overviewPage(main);
    if (path === "/games") return await gamesPage(main, params);
    const m = path.match(/^\/game\/([A-Za-z0-9][A-Za-z0-9_.-]{0,62})$/);
    if (m) return await gamePage(main, m[1]);
    setPage("Not found");
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
  } catch (e) {
    if (e instanceof AuthError) return showLogin(e.message);
    main.replaceChildren(h("h1", {}, "Error"), h("p", { class: "error", role: "alert" }, e.message));
  }
}

// ------------------------------------------------------------ login

function showLogin(message) {
  stopRefresh();
  sessionStorage.removeItem(TOKEN_KEY);
  setPage("Sign in");
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("refreshed").textContent = "";
  const error = h("p", { id: "login-error", class: "error", role: "alert" }, message ? `Sign-in failed: ${message}` : "");
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-help" });
  const form = h("form", { class: "login", id: "login-form" },
    h("div", { class: "field" },
      h("label", { for: "token" }, "Admin token"),
      input,
      h("p", { id: "token-help", class: "muted" }, "The value of RTM_ADMIN_TOKEN. It is kept in this browser tab only and sent as a bearer header.")),
    h("button", { type: "submit", class: "primary", id: "login-submit" }, "Sign in"),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      const r = await api("GET", "/overview");
      if (!r.ok) throw new Error(errorText(r));
      if (!location.hash || location.hash === "#") location.hash = "#/";
      route();
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = `Sign-in failed: ${e.message}`;
      input.focus();
    }
  });
  document.getElementById("main").replaceChildren(h("h1", {}, "Sign in"), form);
  input.focus();
}

// ------------------------------------------------------------ overview

async function overviewPage(main) {
  setPage("Overview", "nav-overview");
  main.replaceChildren(
    h("h1", {}, "Overview"),
    h("div", { class: "cols" },
      section("Games by status", "by-status", h("div", { id: "ov-status" }, "Loading…")),
      section("Games by health", "by-health", h("p", { class: "muted" }, "Games that are not removed."), h("div", { id: "ov-health" }))),
    h("div", { class: "cols" },
      section("Lobby intake", "lobby", h("div", { id: "ov-lobby" })),
      section("Dependencies", "deps", h("div", { id: "ov-deps" }))),
    section("Workers", "workers", h("div", { id: "ov-workers" })));
  await live(async () => {
    const r = await api("GET", "/overview");
    if (current !== "/" && current !== "") return;
    if (!r.ok) throw new Error(errorText(r));
    const o = r.body;
    const cards = (map, kind, param) => h("div", { class: "grid" }, Object.entries(map).map(([k, n]) =>
      h("a", { class: "card", href: `#/games?${param}=${encodeURIComponent(k)}`, "data-count": k },
        h("span", { class: "n" }, n), badge(kind, k))));
    swap("ov-status", h("div", {}, h("p", {}, `${o.games.total} games in total.`), cards(o.games.by_status, "st", "status")));
    swap("ov-health", cards(o.games.by_health, "h", "health"));
    const l = o.lobby;
    swap("ov-lobby", kv([
      ["Lag (not yet delivered)", l.lag === null ? "unknown" : l.lag],
      ["Pending (delivered, not acknowledged)", l.pending === null ? "unknown" : l.pending],
      ["Dead letters", l.dead_letters === null ? `unknown (${l.dead_letters_error || "?"})` : l.dead_letters],
      ["This replica's consumer connected", l.consumer_connected === null ? "unknown" : l.consumer_connected ? "yes" : "no"],
      ["Health events waiting to be published", o.health_outbox_pending === null ? "unknown" : o.health_outbox_pending],
    ]));
    swap("ov-deps", table("Dependency readiness (this replica)", ["Dependency", "State", "Latency", "Error"],
      Object.entries(o.dependencies).map(([name, d]) => [name,
        h("span", { class: `badge ${d.ok ? "ok" : "bad"}` }, d.ok ? "ready" : "not ready"),
        d.latency_ms === undefined ? "" : `${d.latency_ms} ms`, d.error || ""])));
    swap("ov-workers", table("Singleton workers and the replica leading each", ["Worker", "Leader", "Since"],
      o.workers.map((w) => [w.name,
        w.led ? (w.leader || "another database role") : h("span", { class: "badge bad" }, "no leader"),
        w.since ? when(w.since) : "—"])));
  });
}

// ------------------------------------------------------------ games

const STATUSES = ["running", "stopped", "removed"];
const HEALTHS = ["healthy", "probe_failed", "exited", "oom", "inspect_unhealthy", "container_disappeared", "unknown"];
const SORTS = [["game_id", "Game id"], ["status", "Status"], ["health", "Health"], ["observed_at", "Last health observation"], ["started_at", "Started"], ["last_op_at", "Last operation"], ["image_ref", "Image"]];

function select(id, label, options, value) {
  return h("div", {},
    h("label", { for: id }, label),
    h("select", { id, name: id }, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t))));
}

async function gamesPage(main, params) {
  setPage("Games", "nav-games");
  const p = (k, d) => params.get(k) || d;
  const limit = Number(p("limit", "50"));
  const offset = Number(p("offset", "0"));
  const form = h("form", { class: "filters", id: "filters", role: "search", "aria-label": "Filter games" },
    select("f-status", "Status", [["", "any"], ...STATUSES.map((s) => [s, s])], p("status", "")),
    select("f-health", "Health", [["", "any"], ...HEALTHS.map((s) => [s, s.replace(/_/g, " ")])], p("health", "")),
    h("div", {}, h("label", { for: "f-image" }, "Image (repository or tag)"), h("input", { id: "f-image", name: "image", value: p("image", ""), placeholder: "e.g. engine:1.4" })),
    h("div", {}, h("label", { for: "f-prefix" }, "Game id starts with"), h("input", { id: "f-prefix", name: "prefix", value: p("prefix", "") })),
    select("f-sort", "Sort by", SORTS, p("sort", "game_id")),
    select("f-order", "Order", [["asc", "ascending"], ["desc", "descending"]], p("order", "asc")),
    select("f-limit", "Per page", [["25", "25"], ["50", "50"], ["100", "100"], ["200", "200"]], String(limit)),
    h("button", { type: "submit", class: "primary", id: "f-apply" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    const set = (k, id) => { const v = document.getElementById(id).value.trim(); if (v) q.set(k, v); };
    set("status", "f-status"); set("health", "f-health"); set("image", "f-image"); set("prefix", "f-prefix");
    set("sort", "f-sort"); set("order", "f-order"); set("limit", "f-limit");
    location.hash = `#/games?${q}`;
  });
  main.replaceChildren(h("h1", {}, "Games"), form, h("div", { id: "games-result" }, "Loading…"));
  const query = new URLSearchParams(params);
  query.set("limit", String(limit));
  query.set("offset", String(offset));
  const go = (o) => { const q = new URLSearchParams(params); q.set("offset", String(Math.max(0, o))); location.hash = `#/games?${q}`; };
  await live(async () => {
    const r = await api("GET", `/games?${query}`);
    if (current !== "/games") return;
    if (!r.ok) { swap("games-result", h("p", { class: "error", role: "alert" }, errorText(r))); return; }
    const { games, total } = r.body;
    const first = total === 0 ? 0 : offset + 1;
    const last = offset + games.length;
    const rows = games.map((g) => [
      h("a", { href: `#/game/${encodeURIComponent(g.game_id)}`, class: "game-link" }, g.game_id),
      badge("st", g.status),
      g.health ? h("span", {}, badge("h", g.health.status), " ", h("span", { class: "muted" }, age(g.health.observed_at),
        // RTM's own stop is not a health change: say when the health shown predates it.
        g.status !== "running" && Date.parse(g.health.observed_at) < Date.parse(g.last_op_at) ? " (before the last operation)" : "")) : badge("h", "unknown"),
      g.image_ref || "—",
      g.started_at ? when(g.started_at) : "—",
      when(g.last_op_at),
    ]);
    swap("games-result", h("div", {},
      h("p", { id: "games-count", role: "status" }, total === 0 ? "No game matches." : `Showing ${first}–${last} of ${total} games.`),
      table("Games matching the filters", ["Game", "Status", "Health (last observation)", "Image", "Started", "Last operation"], rows, "No game matches these filters."),
      h("div", { class: "pager" },
        h("button", { type: "button", id: "prev", disabled: offset === 0, onclick: () => go(offset - limit) }, "Previous page"),
        h("button", { type: "button", id: "next", disabled: last >= total, onclick: () => go(offset + limit) }, "Next page"))));
  });
}

// ------------------------------------------------------------ one game

function confirmDialog(text, okLabel) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const form = document.getElementById("confirm-form");
    const cancel = document.getElementById("confirm-cancel");
    const done = (v) => { form.onsubmit = null; cancel.onclick = null; dlg.oncancel = null; dlg.close(); resolve(v); };
    form.onsubmit = (ev) => { ev.preventDefault(); done(true); };
    cancel.onclick = () => done(false);
    dlg.oncancel = () => done(false);
    dlg.showModal();
  });
}

function showResult(r, what) {
  const op = (r.body && r.body.operation) || null;
  const ok = r.ok;
  const parts = [];
  if (ok) parts.push(`${what}: succeeded`);
  else parts.push(`${what}: refused or failed — ${errorText(r)}`);
  if (op) parts.push(` (recorded as operation #${op.id}, ${op.op_kind}, outcome ${op.outcome}${op.error_code ? `, ${op.error_code}` : ""})`);
  if (r.body && r.body.replayed) parts.push(" — a replay of an earlier request");
  swap("action-result", h("div", { class: `result ${ok ? "success" : "failure"}`, role: "status" }, parts.join("")));
}

async function gamePage(main, id) {
  setPage(`Game ${id}`, "nav-games");
  const enc = encodeURIComponent(id);
  let before = null; // audit page cursor; null = newest page (refreshed live)
  const action = async (kind, body, text, okLabel) => {
    if (!(await confirmDialog(text, okLabel))) return;
    for (const b of document.querySelectorAll("#actions button")) b.disabled = true;
    swap("action-result", h("p", { role: "status" }, `${kind}: running…`));
    try {
      const r = await api("POST", `/runtimes/${enc}/${kind}`, body);
      showResult(r, kind);
    } finally {
      for (const b of document.querySelectorAll("#actions button")) b.disabled = false;
      before = null;
      await refresh();
    }
  };
  const image = h("input", { id: "patch-image", name: "image_ref", size: 40 });
  const force = h("input", { id: "patch-force", name: "force", type: "checkbox" });
  const actions = h("div", { class: "actions", id: "actions" },
    h("button", { type: "button", id: "act-stop", onclick: () => action("stop", undefined, `Stop game ${id}? The engine gets SIGTERM, then SIGKILL after the grace period. The container is kept.`, "Stop") }, "Stop"),
    h("button", { type: "button", id: "act-restart", onclick: () => action("restart", undefined, `Restart game ${id}? Its engine is stopped and started again with the same image.`, "Restart") }, "Restart"),
    h("button", { type: "button", id: "act-cleanup", onclick: () => action("cleanup", undefined, `Remove the container of stopped game ${id}? The state directory is kept.`, "Remove container") }, "Clean up container"),
    h("fieldset", {},
      h("legend", {}, "Patch to a new image"),
      h("div", { class: "field" }, h("label", { for: "patch-image" }, "New image reference"), image),
      h("div", { class: "check" }, force, h("label", { for: "patch-force" }, "Force: allow a change beyond the patch version (e.g. 1.4 → 2.0)")),
      h("button", { type: "button", id: "act-patch", onclick: () => {
        const body = { image_ref: image.value.trim(), force: force.checked };
        const warn = force.checked ? " FORCE is on: the semantic-version rule (only the patch part may change) is not applied." : "";
        return action("patch", body, `Patch game ${id} to ${body.image_ref || "(empty)"}? If the new engine is not healthy in time, RTM rolls back.${warn}`, "Patch");
      } }, "Patch")));
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/games" }, "← All games")),
    h("h1", {}, `Game ${id}`),
    h("div", { class: "cols" },
      section("Record", "record", h("div", { id: "g-record" }, "Loading…")),
      section("Current health", "health", h("div", { id: "g-health" }))),
    section("Actions", "actions-h", actions, h("div", { id: "action-result" })),
    section("Health history", "history", h("p", { class: "muted" }, "Changes published on the health stream, newest first."), h("div", { id: "g-history" })),
    section("Audit trail", "audit", h("p", { class: "muted" }, "Operations RTM performed on this game, newest first."), h("div", { id: "g-audit" })),
    section("Container log", "logs", h("p", { class: "muted" }, "The last lines of the current container's output."), h("div", { id: "g-logs" })));

  const auditPage = async () => {
    const q = new URLSearchParams({ limit: "20" });
    if (before) q.set("before", String(before));
    const r = await api("GET", `/runtimes/${enc}/operations?${q}`);
    if (!r.ok) return swap("g-audit", h("p", { class: "error" }, errorText(r)));
    const ops = r.body.operations;
    const next = r.body.next_before;
    swap("g-audit", h("div", {},
      table("Operations, newest first", ["#", "Started", "Operation", "Source", "Outcome", "Error", "Image"],
        ops.map((o) => [String(o.id), when(o.started_at), o.op_kind, o.op_source, outcomeBadge(o.outcome),
          o.error_code ? `${o.error_code}: ${o.error_message || ""}` : "", o.image_ref || ""]), "No operation recorded."),
      h("div", { class: "pager" },
        h("button", { type: "button", id: "audit-newest", disabled: !before, onclick: () => { before = null; auditPage(); } }, "Newest"),
        h("button", { type: "button", id: "audit-older", disabled: !next, onclick: () => { before = next; auditPage(); } }, "Older operations"))));
  };

  const refresh = async () => {
    const [rec, hist, logs] = await Promise.all([
      api("GET", `/runtimes/${enc}`),
      api("GET", `/runtimes/${enc}/health-history?limit=50`),
      api("GET", `/runtimes/${enc}/logs?tail=200`),
    ]);
    if (current !== `/game/${id}`) return;
    if (rec.ok) {
      const g = rec.body;
      swap("g-record", kv([
        ["Status", badge("st", g.status)], ["Image", g.image_ref], ["Container", g.container_id],
        ["Engine endpoint", g.engine_endpoint], ["Network", g.docker_network], ["State path", g.state_path],
        ["Started", g.started_at ? when(g.started_at) : null], ["Stopped", g.stopped_at ? when(g.stopped_at) : null],
        ["Removed", g.removed_at ? when(g.removed_at) : null], ["Last operation", when(g.last_op_at)], ["Created", when(g.created_at)],
      ]));
      const hh = g.health;
      swap("g-health", hh ? h("div", { id: "g-health-body" },
        kv([["Health", badge("h", hh.status)], ["Observed", when(hh.observed_at)], ["Source", hh.source], ["Container", hh.container_id],
          ...Object.entries(hh.details || {}).map(([k, v]) => [`Detail: ${k}`, String(v)])]),
        Date.parse(hh.observed_at) < Date.parse(g.last_op_at)
          ? h("p", { class: "muted" }, "Observed before the last operation: RTM's own stop, restart or patch is not a health change; the next observation of a running engine replaces this.") : null)
        : h("p", { id: "g-health-body" }, badge("h", "unknown"), " No health observation yet."));
      if (!image.value && g.image_ref && document.activeElement !== image) image.placeholder = g.image_ref;
    } else {
      swap("g-record", h("p", { class: rec.status === 404 ? "muted" : "error" }, rec.status === 404 ? "No runtime record for this game (a failed start is still audited below)." : errorText(rec)));
      swap("g-health", h("p", { class: "muted" }, "—"));
    }
    if (hist.ok) {
      const evs = hist.body.events;
      swap("g-history", h("div", {},
        hist.body.stream_error ? h("p", { class: "error" }, hist.body.stream_error) : null,
        table("Health changes, newest first", ["Observed", "Health", "Source", "Details"],
          evs.map((e) => [when(e.observed_at), badge("h", e.event_type), e.source || "", Object.entries(e.details || {}).map(([k, v]) => `${k}=${v}`).join(", ")]),
          `No change of this game among the newest ${hist.body.scanned} health events.`)));
    } else {
      swap("g-history", h("p", { class: "error" }, errorText(hist)));
    }
    if (logs.ok) {
      const lines = logs.body.lines || [];
      swap("g-logs", lines.length
        ? h("div", {}, logs.body.truncated ? h("p", { class: "muted" }, "Truncated to the newest lines.") : null,
          h("pre", { class: "log", id: "log-lines", tabindex: "0", "aria-label": "Container log" }, lines.map((l) => h("span", { class: l.stream }, `${l.text}\n`))))
        : h("p", { class: "muted" }, "The container has printed nothing yet."));
    } else {
      const why = logs.status === 404 || logs.status === 405 ? (logs.body && logs.body.error ? logs.body.error.message : "not available") : errorText(logs);
      swap("g-logs", h("p", { class: "muted", id: "logs-unavailable" }, `Logs unavailable: ${why}.`));
    }
    if (!before) await auditPage();
  };
  await live(refresh);
}

// ------------------------------------------------------------ start

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/";
  showLogin();
});
window.addEventListener("hashchange", route);
route();
