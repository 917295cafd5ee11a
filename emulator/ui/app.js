// The emulator's dashboard: plain DOM, no framework, no build step.
//
// Everything shown comes from the control plane as JSON. Every value is put on the page as text
// (`el` below: strings become text nodes, never HTML), so custom ids, metadata, model output and
// scenario YAML are shown exactly as they are.
"use strict";

const TOKEN_KEY = "scaigrid-emulator-admin-token";
const POLL_MS = 500; // how often the change mark is read (one cheap, unjournaled route)
const PAGE = 100; // lines per page of a batch's detail
const FINAL = new Set(["completed", "failed", "cancelled"]);

const state = { mark: null, tab: "batches", detail: null, webhook: null, data: null, busy: false };
// scenarios picked in a select and not yet applied, by tenant ("" for the global one): a refresh
// rebuilds the selects, and must not undo a choice the user is about to apply
const picked = new Map();

// --- DOM helpers ---------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function fill(parent, children) {
  parent.replaceChildren(...children);
}

function json(value) {
  return value === null || value === undefined ? "" : JSON.stringify(value);
}

function short(text, max) {
  return text.length > max ? text.slice(0, max) + "…" : text;
}

function say(text, isError) {
  const box = $("message");
  box.textContent = text;
  box.className = isError ? "error" : "";
}

// --- the control plane ---------------------------------------------------------------------------

class Refused extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
  const headers = { "X-Emulator-Dashboard": "1" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["X-Emulator-Admin-Token"] = token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const answer = await resp.json().catch(() => null);
  if (!resp.ok) {
    const error = (answer && answer.error) || {};
    throw new Refused(resp.status, error.code || `HTTP_${resp.status}`, error.message || resp.statusText);
  }
  return answer.data;
}

const get = (path) => call("GET", path);
const enc = encodeURIComponent;

// Run an action the user asked for; say what happened, then show the new state at once.
async function act(what, method, path, body) {
  try {
    await call(method, path, body);
    say(what);
  } catch (err) {
    if (!signedOut(err)) say(err.message, true);
  }
  await refresh();
}

function signedOut(err) {
  if (!(err instanceof Refused) || err.status !== 401) return false;
  $("main").hidden = true;
  $("detail").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  say(sessionStorage.getItem(TOKEN_KEY) ? "That admin token was refused." : "", true);
  return true;
}

// --- formatting ----------------------------------------------------------------------------------

function parseDuration(text) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) return null;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[match[2] || "s"];
  return Number(match[1]) * unit;
}

function seconds(from, to) {
  if (!from || !to) return "";
  const s = (Date.parse(to) - Date.parse(from)) / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function time(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

function ended(batch) {
  return batch.completed_at || batch.cancelled_at || batch.failed_at;
}

// --- the batches, per tenant ---------------------------------------------------------------------

function tenantsOf(data) {
  const tenants = new Set();
  for (const kind of ["batches", "files", "webhooks"]) for (const x of data[kind]) tenants.add(x.tenant_id);
  for (const t of Object.keys(data.scenarios.tenants)) tenants.add(t);
  return [...tenants].sort();
}

function scenarioSelect(who, names, current, label) {
  const options = names.includes(current) ? names : [current, ...names];
  const chosen = picked.has(who) ? picked.get(who) : current;
  return el(
    "select",
    { "aria-label": label, onchange: (e) => picked.set(who, e.target.value) },
    options.map((n) => el("option", { value: n, selected: n === chosen }, n === "" ? "(global)" : n)),
  );
}

function renderTenants(data) {
  const names = data.scenarios.bundled.map((s) => s.name);
  const tenants = tenantsOf(data);
  if (!tenants.length) {
    fill($("tenants"), [el("p", { class: "empty" }, "No tenant has made anything yet.")]);
    return;
  }
  fill($("tenants"), tenants.map((tenant) => renderTenant(data, tenant, names)));
}

function renderTenant(data, tenant, names) {
  const own = data.scenarios.tenants[tenant];
  const batches = data.batches.filter((b) => b.tenant_id === tenant);
  const select = scenarioSelect(tenant, ["", ...names], own ? own.name : "", `scenario of ${tenant}`);
  return el(
    "section",
    { class: "tenant", dataset: { tenant } },
    el(
      "header",
      {},
      el("h2", {}, tenant),
      el("span", { class: "scenario" }, "scenario: ", own ? own.name : `${data.scenarios.global.name} (global)`),
      select,
      el("button", {
        type: "button",
        onclick: () => {
          const name = select.value;
          picked.delete(tenant);
          const path = `/_emulator/tenants/${enc(tenant)}/scenario`;
          if (name) act(`${tenant} now runs ${name}`, "PUT", path, { name });
          else act(`${tenant} follows the global scenario`, "DELETE", path);
        },
      }, "Set scenario"),
      el("button", {
        type: "button",
        class: "danger",
        onclick: () => act(`${tenant} reset`, "POST", "/_emulator/reset", { tenant_id: tenant }),
      }, "Reset tenant"),
    ),
    el(
      "table",
      { class: "batches" },
      el("thead", {}, el("tr", {}, ["batch", "status", "progress", "counts", "created", "started", "ended", "took", "cost", "metadata", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, batches.map((b) => renderBatch(tenant, b))),
    ),
  );
}

function renderBatch(tenant, b) {
  const done = b.completed_count + b.failed_count;
  const cancel = FINAL.has(b.status)
    ? ""
    : el("button", {
        type: "button",
        class: "cancel",
        onclick: () => act(`${b.id} cancelled`, "POST", `/_emulator/tenants/${enc(tenant)}/batches/${enc(b.id)}/cancel`),
      }, "Cancel");
  return el(
    "tr",
    { dataset: { batchId: b.id, status: b.status } },
    el("td", {}, el("a", { href: "#", class: "open", onclick: (e) => { e.preventDefault(); openDetail(tenant, b.id); } }, b.id)),
    el("td", { class: `status ${b.status}` }, b.status),
    el("td", { class: "progress" }, el("progress", { max: b.total_count || 1, value: done }), ` ${b.total_count ? Math.floor((100 * done) / b.total_count) : 0}%`),
    el("td", { class: "counts" }, `${done}/${b.total_count}`, b.failed_count ? ` (${b.failed_count} failed)` : ""),
    el("td", {}, time(b.created_at)),
    el("td", {}, time(b.started_at)),
    el("td", {}, time(ended(b))),
    el("td", {}, seconds(b.started_at || b.created_at, ended(b))),
    el("td", { class: "cost", title: `live ${b.cost.live}, discount ${b.cost.discount}` }, `${b.cost.amount} ${b.cost.currency}`),
    el("td", { class: "metadata" }, Object.entries(b.metadata || {}).map(([k, v]) => el("span", { class: "kv" }, `${k}=${v}`))),
    el("td", {}, cancel),
  );
}

// --- a batch's detail: its lines, a page at a time -----------------------------------------------

function openDetail(tenant, batchId) {
  state.detail = { tenant, batchId, offset: 0, pages: [], status: "" };
  $("detail-status").value = "";
  $("detail").hidden = false;
  refreshDetail();
}

async function refreshDetail() {
  const d = state.detail;
  if (!d) return;
  const base = `/_emulator/tenants/${enc(d.tenant)}/batches/${enc(d.batchId)}`;
  const query = `offset=${d.offset}&limit=${PAGE}` + (d.status ? `&status=${d.status}` : "");
  const [page, batch] = await Promise.all([
    get(`${base}/lines?${query}`),
    (state.data && state.data.batches.find((b) => b.id === d.batchId)) || null,
  ]);
  if (state.detail !== d) return; // another batch was opened meanwhile
  d.next = page.next_offset;
  $("detail-title").textContent = d.batchId;
  if (batch) renderFields(batch);
  const first = page.items.length ? page.items[0].index + 1 : 0;
  const last = page.items.length ? page.items[page.items.length - 1].index + 1 : 0;
  $("detail-range").textContent = page.items.length ? `lines ${first}–${last} of ${page.total_count}` : `no lines of ${page.total_count}`;
  $("detail-prev").disabled = !d.pages.length;
  $("detail-first").disabled = !d.pages.length;
  $("detail-next").disabled = page.next_offset === null;
  fill($("lines"), page.items.map(renderLine));
}

function renderFields(b) {
  const fields = [
    ["tenant", b.tenant_id], ["status", b.status], ["window", b.endpoint_completion_window],
    ["input", b.input_file_url], ["requests", `${b.completed_count + b.failed_count}/${b.total_count} (${b.failed_count} failed)`],
    ["created", time(b.created_at)], ["started", time(b.started_at)], ["ended", time(ended(b))],
    ["expires", time(b.expires_at)], ["tokens", `${b.usage.input_tokens} in, ${b.usage.output_tokens} out`],
    ["cost", `${b.cost.amount} ${b.cost.currency} (live ${b.cost.live}, discount ${b.cost.discount})`],
    ["metadata", json(b.metadata)], ["error", json(b.error)],
  ];
  fill($("detail-fields"), fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, v)]));
}

function resultText(line) {
  if (line.status === "pending") return "";
  if (line.status === "error") return json(line.error);
  const r = line.response || {};
  const choice = r.choices && r.choices[0];
  if (choice && choice.message && typeof choice.message.content === "string") return choice.message.content;
  if (choice && typeof choice.text === "string") return choice.text;
  return json(r);
}

function renderLine(line) {
  return el(
    "tr",
    { dataset: { index: line.index, status: line.status } },
    el("td", {}, line.index + 1),
    el("td", {}, line.line),
    el("td", { class: "custom-id" }, line.custom_id),
    el("td", {}, line.url),
    el("td", { class: `status ${line.status}` }, line.status),
    el("td", { class: "body" }, el("code", { title: json(line.body) }, short(json(line.body), 160))),
    el("td", { class: "result" }, el("code", {}, short(resultText(line), 400))),
  );
}

function page(move) {
  const d = state.detail;
  if (move === "next" && d.next !== null) {
    d.pages.push(d.offset);
    d.offset = d.next;
  } else if (move === "prev" && d.pages.length) {
    d.offset = d.pages.pop();
  } else if (move === "first") {
    d.pages = [];
    d.offset = 0;
  }
  refreshDetail().catch(showError);
}

// --- webhooks, journal, verdict, scenarios ---------------------------------------------------------

function renderWebhooks(data) {
  fill($("webhooks"), data.webhooks.map((w) => el(
    "tr",
    { dataset: { webhookId: w.id } },
    el("td", {}, w.tenant_id),
    el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); state.webhook = w; refreshDeliveries().catch(showError); } }, w.id)),
    el("td", {}, w.url),
    el("td", {}, w.events.join(", ")),
    el("td", { class: `status ${w.status}` }, w.status),
    el("td", {}, w.consecutive_failures),
  )));
}

async function refreshDeliveries() {
  const w = state.webhook;
  if (!w) return;
  const answer = await get(`/_emulator/tenants/${enc(w.tenant_id)}/webhooks/${enc(w.id)}/deliveries?limit=100`);
  $("deliveries-title").hidden = false;
  $("deliveries-table").hidden = false;
  $("deliveries-title").textContent = `Deliveries of ${w.id} (${w.url})`;
  fill($("deliveries"), answer.items.map((d) => el(
    "tr",
    { dataset: { deliveryId: d.id } },
    el("td", {}, d.id), el("td", {}, `${d.event_type} ${d.event_id}`), el("td", { class: `status ${d.status}` }, d.status),
    el("td", {}, d.attempts), el("td", {}, d.status_code ?? ""), el("td", {}, d.error_message ?? ""),
    el("td", {}, time(d.last_attempt_at)), el("td", {}, time(d.next_attempt_at)),
  )));
}

async function refreshJournal() {
  const form = new FormData($("journal-filters"));
  const query = new URLSearchParams();
  for (const [name, value] of form) if (String(value).trim()) query.set(name, String(value).trim());
  const answer = await get(`/_emulator/journal?${query}`);
  fill($("journal"), answer.items.slice().reverse().map((e) => el(
    "tr",
    { dataset: { requestId: e.request_id } },
    el("td", {}, time(e.time)), el("td", {}, e.method), el("td", {}, e.path + (e.query ? `?${e.query}` : "")),
    el("td", { class: `code c${String(e.status)[0]}xx` }, e.status), el("td", {}, e.tenant_id ?? ""), el("td", {}, e.request_id),
  )));
}

async function refreshVerdict() {
  const answer = await get("/_emulator/verdict");
  $("verdict-summary").textContent = `${answer.findings.length} finding(s) over ${answer.requests_judged} request(s); polls under ${answer.thresholds.min_poll_interval} s apart and over ${answer.thresholds.rate_limit} requests a minute count.`;
  fill($("verdict"), answer.findings.map((f) => el(
    "li",
    { dataset: { check: f.check } },
    el("strong", {}, f.check), " ", el("span", { class: "tenant-id" }, f.tenant_id), " ", el("span", { class: "subject" }, f.subject),
    el("p", {}, f.message),
    el("ul", {}, f.evidence.map((e) => el("li", {}, `${time(e.time)} ${e.method} ${e.path} ${e.status ?? ""} ${e.request_id}`))),
  )));
}

function renderScenarios(data) {
  const s = data.scenarios;
  const names = s.bundled.map((b) => b.name);
  const select = scenarioSelect("", names, s.global.name, "global scenario");
  select.id = "global-scenario";
  $("global-scenario").replaceWith(select);
  if (state.tab !== "scenarios") return;
  const rows = [["global", s.global], ...Object.entries(s.tenants)];
  fill($("scenarios"), [
    el("h2", {}, "In force"),
    el("table", {}, el("tbody", {}, rows.map(([who, sc]) => el(
      "tr",
      { dataset: { scope: who } },
      el("td", {}, who), el("td", {}, sc.name), el("td", {}, sc.source || ""), el("td", { class: "description" }, sc.description || ""),
    )))),
    el("div", { id: "scenario-yaml" }),
    el("h2", {}, "Bundled"),
    el("dl", {}, s.bundled.flatMap((b) => [el("dt", {}, b.name), el("dd", {}, b.description || "")])),
  ]);
}

// The YAML of each scenario in force (the global one, then each tenant's), as text.
async function refreshScenarioYaml() {
  const s = state.data && state.data.scenarios;
  if (!s) return;
  const scopes = [["global", "/_emulator/scenario"], ...Object.keys(s.tenants).map((t) => [t, `/_emulator/tenants/${enc(t)}/scenario`])];
  const found = await Promise.all(scopes.map(([, path]) => get(path)));
  const box = $("scenario-yaml");
  if (box) fill(box, scopes.flatMap(([who], i) => [el("h3", {}, `${who}: ${found[i].name}`), el("pre", { dataset: { scope: who } }, found[i].yaml)]));
}

// --- refreshing ----------------------------------------------------------------------------------

function renderClock(clock) {
  $("clock").textContent = `${time(clock.now)} · ${clock.mode}${clock.mode === "scaled" ? ` ×${clock.scale}` : ""}`;
}

async function refresh() {
  const data = await get("/_emulator/state");
  state.data = data;
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  renderClock(data.clock);
  renderTenants(data);
  renderWebhooks(data);
  renderScenarios(data);
  const views = { journal: refreshJournal, verdict: refreshVerdict, webhooks: refreshDeliveries, scenarios: refreshScenarioYaml };
  const work = [refreshDetail()];
  if (views[state.tab]) work.push(views[state.tab]());
  await Promise.all(work);
}

function showError(err) {
  if (!signedOut(err)) say(err.message, true);
}

// Poll the change mark; fetch the rest only when it moved. One poll at a time.
async function poll() {
  if (!state.busy && $("login").hidden !== false) {
    state.busy = true;
    try {
      const changes = await get("/_emulator/changes");
      renderClock(changes.clock);
      if (changes.mark !== state.mark) {
        await refresh();
        state.mark = changes.mark; // only once shown: a failed refresh is tried again
      }
    } catch (err) {
      showError(err);
    } finally {
      state.busy = false;
    }
  }
  setTimeout(poll, POLL_MS);
}

function showTab(name) {
  state.tab = name;
  for (const button of document.querySelectorAll(".tab")) button.classList.toggle("active", button.dataset.tab === name);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `tab-${name}`;
  refresh().catch(showError);
}

function wire() {
  for (const button of document.querySelectorAll(".tab")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("advance-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const by = parseDuration($("advance-by").value);
    if (by === null) return say(`Not a duration: ${$("advance-by").value} (say 90s, 30m, 2h or 1d)`, true);
    act(`clock advanced by ${$("advance-by").value.trim()}`, "POST", "/_emulator/clock/advance", { seconds: by });
  });
  $("scenario-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("global-scenario").value;
    picked.delete("");
    act(`global scenario: ${name}`, "PUT", "/_emulator/scenario", { name });
  });
  $("journal-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    refreshJournal().then(() => say(""), showError);
  });
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    state.mark = null;
    refresh().then(() => say(""), showError);
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  $("detail-close").addEventListener("click", () => {
    state.detail = null;
    $("detail").hidden = true;
  });
  $("detail-next").addEventListener("click", () => page("next"));
  $("detail-prev").addEventListener("click", () => page("prev"));
  $("detail-first").addEventListener("click", () => page("first"));
  $("detail-status").addEventListener("change", () => {
    state.detail.status = $("detail-status").value;
    page("first");
  });
}

wire();
poll();
