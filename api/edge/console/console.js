// The tierwise web console: a client of /graphql with the signed-in person's own token. The token lives in
// this module's memory only (no cookie, no storage): every access decision is the API's, and a reload or
// "Sign out" forgets it. Charts are SVG drawn here; nothing is loaded from anywhere but this server.

let token = null;
let viewer = null;
// behind the company's OIDC proxy the proxy adds the person's token to every request to /graphql: the console
// then holds no token at all (docs: "Web console")
let viaProxy = false;

const $ = (id) => document.getElementById(id);

// h("td", {class: "num"}, "12") → an element; children are nodes or text (never parsed as HTML)
function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "rect", "text", "g", "line", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

async function gql(query, variables = {}) {
  if (!token && !viaProxy) throw new ApiError("not signed in", "UNAUTHENTICATED");
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      credentials: "same-origin",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    throw new ApiError(`the server did not answer (${e.message})`, "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} without JSON`, "HTTP");
  }
  const errors = body.errors || [];
  // a refused operation, or any other error, fails the call; a field the role may not read inside an
  // answer (FORBIDDEN at a nested path) is left empty, as the API answers it
  const fatal = errors.find((e) => !body.data || !e.path || e.path.length < 2
    || !(e.extensions && String(e.extensions.code).startsWith("FORBIDDEN")));
  if (fatal) throw new ApiError(fatal.message, (fatal.extensions && fatal.extensions.code) || `HTTP ${response.status}`);
  return body.data;
}

function errorBox(e) {
  const refused = ["FORBIDDEN", "UNAUTHENTICATED"].includes(e.code);
  return h("div", { class: "card error", role: "alert", "data-error": e.code || "" },
    refused ? "Refused by the API: " : "Error: ", e.message, e.code ? ` (${e.code})` : "");
}

// --- sign-in, sign-out, navigation --------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const proxy = event.submitter && event.submitter.id === "signin-proxy";
  const value = $("token").value.trim();
  $("signin-error").textContent = "";
  if (!value && !proxy) {
    $("signin-error").textContent = "Paste a token first.";
    return;
  }
  token = proxy ? null : value;
  viaProxy = proxy;
  try {
    const data = await gql("{ viewer { subject kind roles policyVersion } }");
    viewer = data.viewer;
  } catch (e) {
    token = null;
    viaProxy = false;
    $("signin-error").textContent = `Sign-in failed: ${e.message}`;
    return;
  }
  $("token").value = "";
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `${viewer.subject} · ${viewer.roles.join(", ") || "no roles"}`;
  const start = viewer.roles.includes("admin") ? "#access" : "#queue";
  if (location.hash) route();
  else location.hash = start;  // the hashchange routes
}

function signOut() {
  const proxied = viaProxy;
  token = null;
  viaProxy = false;
  viewer = null;
  $("view").replaceChildren();
  $("view").hidden = true;
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
  history.replaceState(null, "", location.pathname);
  $("token").focus();
  // the proxy's own session ends at its sign-out address (oauth2-proxy's default)
  if (proxied) location.assign("/oauth2/sign_out");
}

const PAGES = { access: accessPage, reports: reportsPage, audit: auditPage, queue: queuePage, tiers: tiersPage };

async function route() {
  if (!token) return;
  const name = location.hash.slice(1) || "access";
  const page = PAGES[name] || accessPage;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = $("view");
  view.hidden = false;
  view.setAttribute("data-page", name);
  view.setAttribute("aria-busy", "true");
  view.replaceChildren(h("p", { class: "empty" }, "Loading…"));
  try {
    await page(view);
  } catch (e) {
    view.replaceChildren(errorBox(e));
  }
  view.removeAttribute("aria-busy");
}

// --- tables, charts, CSV -------------------------------------------------------------------------------

function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(2);
  return String(v);
}

function table(columns, rows, attrs = {}) {
  if (!rows.length) return h("p", { class: "empty" }, "Nothing to show.");
  return h("div", { class: "scroll" }, h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => {
      const v = c.get(r);
      return h("td", { class: typeof v === "number" ? "num" : null }, fmt(v));
    }))))));
}

function csv(columns, rows) {
  const cell = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.map((c) => cell(c.label)), ...rows.map((r) => columns.map((c) => cell(c.get(r))))]
    .map((line) => line.join(",")).join("\n") + "\n";
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// horizontal bars: one per row, label and value
function barChart(rows, label, value, unit = "") {
  const data = rows.map((r) => ({ label: String(label(r) ?? "—"), value: Number(value(r) ?? 0) }));
  const max = Math.max(1e-9, ...data.map((d) => Math.abs(d.value)));
  const rowH = 22, left = 170, width = 720, barW = width - left - 70;
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${width} ${data.length * rowH + 10}`, role: "img" });
  data.forEach((d, i) => {
    const y = 5 + i * rowH;
    const w = Math.max(1, (Math.abs(d.value) / max) * barW);
    svg.append(
      h("text", { x: left - 6, y: y + 15, "text-anchor": "end" }, d.label.slice(0, 28)),
      h("rect", { x: left, y: y + 3, width: w, height: rowH - 6, fill: d.value < 0 ? "#c94b4b" : "#2456c9" },
        h("title", {}, `${d.label}: ${fmt(d.value)}${unit}`)),
      h("text", { x: left + w + 4, y: y + 15 }, `${fmt(d.value)}${unit}`),
    );
  });
  return svg;
}

function report({ id, title, rows, columns, label, value, unit }) {
  const tableBox = h("div", { hidden: true, "data-table": id }, table(columns, rows));
  const showTable = h("button", {
    type: "button", "aria-expanded": "false", "aria-controls": `table-${id}`,
    onclick: () => {
      tableBox.hidden = !tableBox.hidden;
      showTable.setAttribute("aria-expanded", String(!tableBox.hidden));
      showTable.textContent = tableBox.hidden ? "Show table" : "Hide table";
    },
  }, "Show table");
  tableBox.id = `table-${id}`;
  const chart = rows.length ? barChart(rows, label, value, unit) : h("p", { class: "empty" }, "No data yet.");
  chart.setAttribute?.("aria-label", title);
  return h("section", { class: "card", "data-report": id },
    h("h2", {}, title),
    h("div", { class: "toolbar" }, showTable,
      h("button", { type: "button", onclick: () => download(`${id}.csv`, csv(columns, rows)) }, "Download CSV")),
    chart, tableBox);
}

// --- Access: the role × field matrix ---------------------------------------------------------------------

const MATRIX = `{ accessMatrix { roles policyVersion rows { field typeName fieldName sensitivity decisions } }
  roles { name inherits grants { subject object action effect } } }`;

let matrixType = "Customer";

async function accessPage(view) {
  const data = await gql(MATRIX);
  const m = data.accessMatrix;
  const grants = new Map(data.roles.map((r) => [r.name, r.grants]));
  const types = [...new Set(m.rows.map((r) => r.typeName))];
  const select = h("select", { id: "matrix-type", onchange: () => { matrixType = select.value; draw(); } },
    h("option", { value: "" }, "every type"), types.map((t) => h("option", { value: t, selected: t === matrixType }, t)));
  const filter = h("input", { id: "matrix-filter", type: "search", placeholder: "field name", oninput: () => draw() });
  const holder = h("div", { class: "scroll" });
  const note = h("p", { id: "matrix-note", role: "status" });

  function draw() {
    const q = filter.value.trim().toLowerCase();
    const rows = m.rows.filter((r) => (!matrixType || r.typeName === matrixType) && (!q || r.field.toLowerCase().includes(q)));
    const body = h("tbody");
    let group = null;
    for (const r of rows) {
      const g = `${r.typeName} · ${r.sensitivity}`;
      if (g !== group) {
        group = g;
        body.append(h("tr", { class: "group" }, h("th", { colspan: m.roles.length + 1, scope: "rowgroup" }, g)));
      }
      body.append(h("tr", {},
        h("th", { scope: "row" }, h("span", { class: `sens-${r.sensitivity}` }, r.field)),
        m.roles.map((role, i) => {
          const d = r.decisions[i];
          return h("td", { class: `cell ${d}` }, h("button", {
            type: "button", class: d, "data-field": r.field, "data-role": role, "data-decision": d,
            "aria-label": `${role} on ${r.field}: ${d}`, onclick: () => cellDialog(role, r, d, grants.get(role) || []),
          }, d));
        })));
    }
    holder.replaceChildren(rows.length ? h("table", { id: "matrix" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "field"), m.roles.map((r) => h("th", { scope: "col" }, r)))),
      body) : h("p", { class: "empty" }, "No field matches."));
  }
  draw();
  view.replaceChildren(
    h("h1", {}, "Access"),
    h("p", {}, `Read decisions of every role on every field (policy version ${m.policyVersion}), after inheritance and `
      + "deny-overrides. Click a cell for the reason and to change it."),
    h("div", { class: "toolbar inline" }, h("label", { for: "matrix-type" }, "Type"), select,
      h("label", { for: "matrix-filter" }, "Field"), filter),
    note, holder);
}

// deny-overrides holds per action: denying READ leaves a masked read (READ_MASKED) as it is, so "deny" is both
const CHANGES = [
  { id: "full", label: "Allow read (FULL)", calls: [["grantAccess", "READ", "ALLOW"]] },
  { id: "masked", label: "Allow masked read (MASKED)", calls: [["grantAccess", "READ_MASKED", "ALLOW"]] },
  { id: "denied", label: "Deny read and masked read (DENIED, overrides any allow)",
    calls: [["grantAccess", "READ", "DENY"], ["grantAccess", "READ_MASKED", "DENY"]] },
];

async function cellDialog(role, row, decision, roleGrants) {
  const dialog = h("dialog", { id: "cell-dialog", "aria-labelledby": "cell-title" });
  const reason = h("p", { id: "cell-reason" }, "Asking the API why…");
  const steps = h("div", { id: "cell-steps" });
  const close = () => { dialog.close(); dialog.remove(); };
  // the rules of this role on exactly this field that decide a read (the matrix shows reads)
  const direct = roleGrants.filter((g) => g.object === row.field && ["read", "read_masked"].includes(g.action));
  const options = [
    ...CHANGES,
    ...direct.map((g) => ({
      id: `revoke-${g.action}-${g.effect}`, label: `Revoke the rule ${g.action} ${g.effect}`,
      calls: [["revokeAccess", g.action.toUpperCase(), g.effect.toUpperCase()]],
    })),
  ];
  steps.append(h("menu", {}, options.map((o) => h("li", {}, h("button", {
    type: "button", "data-change": o.id, onclick: () => confirmStep(o),
  }, o.label)))));

  function confirmStep(o) {
    const calls = o.calls.map(([m, action, effect]) =>
      `${m}(role: "${role}", object: "${row.field}", action: ${action}, effect: ${effect})`);
    steps.replaceChildren(
      h("p", {}, "This changes the policy for every member of ", h("strong", {}, role), ":"),
      h("pre", { id: "cell-change" }, calls.join("\n")),
      h("p", {}, `The cell is ${decision} now; the matrix shows the effective decision once the API has applied it.`),
      h("menu", {},
        h("li", {}, h("button", { type: "button", class: "primary", id: "cell-confirm", onclick: () => apply(o) }, "Confirm")),
        h("li", {}, h("button", { type: "button", onclick: close }, "Cancel"))));
    $("cell-confirm").focus();
  }

  async function apply(o) {
    steps.replaceChildren(h("p", {}, "Applying…"));
    try {
      let version = null;
      for (const [m, action, effect] of o.calls) {  // one at a time: each is its own audited change
        const data = await gql(`mutation($role: String!, $object: String!, $action: AccessAction!, $effect: Effect!) {
          r: ${m}(role: $role, object: $object, action: $action, effect: $effect) {
            ok policyVersion userErrors { message code } } }`, { role, object: row.field, action, effect });
        const errors = data.r.userErrors;
        if (errors.length) {
          steps.replaceChildren(h("p", { class: "error", role: "alert" }, errors.map((e) => e.message).join("; ")));
          return;
        }
        version = data.r.policyVersion;
      }
      close();
      await route();
      const after = document.querySelector(`#matrix button[data-field="${row.field}"][data-role="${role}"]`);
      const note = $("matrix-note");
      if (note) note.textContent = `${role} on ${row.field}: ${decision} → ${after ? after.dataset.decision : "?"} `
        + `(policy version ${version})`;
    } catch (e) {
      steps.replaceChildren(errorBox(e));
    }
  }

  dialog.append(
    h("h2", { id: "cell-title" }, `${role} · ${row.field}`),
    h("p", {}, `Effective read decision: `, h("strong", { class: decision }, decision), ` (field ${row.sensitivity})`),
    reason,
    h("p", {}, direct.length ? `Read rules of ${role} on exactly this field: ${direct.map((g) => `${g.action} ${g.effect}`).join(", ")}`
      : `${role} has no rule on exactly this field (the decision comes from wildcards, inheritance or the classification).`),
    steps,
    h("menu", {}, h("li", {}, h("button", { type: "button", onclick: close }, "Close"))));
  document.body.append(dialog);
  dialog.showModal();
  try {
    const data = await gql(`query($s: String!, $f: String!) { explainAccess(subject: $s, field: $f) {
      allowed decision rules reason } }`, { s: `role:${role}`, f: row.field });
    const e = data.explainAccess;
    reason.replaceChildren(h("strong", {}, "Why: "), e.reason,
      e.rules.length ? h("span", {}, " — rule ", h("code", {}, e.rules.join(" | "))) : "");
  } catch (e) {
    reason.replaceChildren(errorBox(e));
  }
}

// --- Reports ---------------------------------------------------------------------------------------------

const REPORTS = `{
  tierDistribution { customers revenue tiers { tier name customers customerShare revenue revenueShare } }
  reports {
    nps: surveyScores(metric: NPS, groupBy: [TIER]) { tier responses score responseRate }
    csat: surveyScores(metric: CSAT, groupBy: [TIER]) { tier responses score responseRate }
    ces: surveyScores(metric: CES, groupBy: [TIER]) { tier responses score responseRate }
    complaints { perThousandCustomers { tier category categoryLabel complaints customers perThousand }
      topRootCauses { code label complaints sharePercent } }
    fairness { tiers { tier complaints slaBreachRate medianFirstResponseMinutes medianResolutionMinutes nps } }
    churnRisk { levels { tier level customers meanScore } }
  }
}`;

async function reportsPage(view) {
  const data = await gql(REPORTS);
  const tiers = data.tierDistribution ? data.tierDistribution.tiers : [];
  const r = data.reports || {};
  const col = (label, key) => ({ label, get: (x) => x[key] });
  const scores = (metric, rows) => report({
    id: metric.toLowerCase(), title: `${metric} by tier`, rows: rows || [],
    columns: [col("tier", "tier"), col("responses", "responses"), col(metric, "score"), col("response rate", "responseRate")],
    label: (x) => x.tier, value: (x) => x.score,
  });
  view.replaceChildren(
    h("h1", {}, "Reports"),
    report({
      id: "tier-distribution", title: "Customers per tier", rows: tiers,
      columns: [col("tier", "tier"), col("name", "name"), col("customers", "customers"), col("customer share", "customerShare"),
        col("revenue", "revenue"), col("revenue share", "revenueShare")],
      label: (x) => x.tier, value: (x) => x.customers,
    }),
    report({
      id: "revenue-share", title: "Revenue share per tier (%)", rows: tiers,
      columns: [col("tier", "tier"), col("revenue", "revenue"), col("revenue share", "revenueShare")],
      label: (x) => x.tier, value: (x) => 100 * (x.revenueShare || 0), unit: "%",
    }),
    scores("NPS", r.nps), scores("CSAT", r.csat), scores("CES", r.ces),
    report({
      id: "complaints", title: "Complaints per 1 000 customers (tier · category)",
      rows: r.complaints ? r.complaints.perThousandCustomers : [],
      columns: [col("tier", "tier"), col("category", "categoryLabel"), col("complaints", "complaints"),
        col("customers", "customers"), col("per 1 000", "perThousand")],
      label: (x) => `${x.tier} · ${x.categoryLabel}`, value: (x) => x.perThousand,
    }),
    report({
      id: "root-causes", title: "Top root causes (% of complaints)", rows: r.complaints ? r.complaints.topRootCauses : [],
      columns: [col("code", "code"), col("root cause", "label"), col("complaints", "complaints"), col("share %", "sharePercent")],
      label: (x) => x.label, value: (x) => x.sharePercent, unit: "%",
    }),
    report({
      id: "fairness", title: "Fairness: SLA breach rate per tier (%)", rows: r.fairness ? r.fairness.tiers : [],
      columns: [col("tier", "tier"), col("complaints", "complaints"), col("SLA breach rate", "slaBreachRate"),
        col("median first response (min)", "medianFirstResponseMinutes"),
        col("median resolution (min)", "medianResolutionMinutes"), col("NPS", "nps")],
      label: (x) => x.tier, value: (x) => 100 * (x.slaBreachRate || 0), unit: "%",
    }),
    report({
      id: "churn", title: "Churn risk: customers per tier and level", rows: r.churnRisk ? r.churnRisk.levels : [],
      columns: [col("tier", "tier"), col("level", "level"), col("customers", "customers"), col("mean score", "meanScore")],
      label: (x) => `${x.tier ?? "none"} · ${x.level}`, value: (x) => x.customers,
    }),
  );
}

// --- Audit -----------------------------------------------------------------------------------------------

async function auditPage(view) {
  const form = h("form", { id: "audit-form", class: "toolbar inline" },
    h("label", { for: "audit-actor" }, "Actor"), h("input", { id: "audit-actor", name: "actor", placeholder: "user:alice" }),
    h("label", { for: "audit-action" }, "Action"), h("input", { id: "audit-action", name: "action", placeholder: "grant" }),
    h("label", { for: "audit-target" }, "Customer / target id"), h("input", { id: "audit-target", name: "targetId" }),
    h("label", { for: "audit-since" }, "From"), h("input", { id: "audit-since", name: "since", type: "datetime-local" }),
    h("label", { for: "audit-until" }, "Until"), h("input", { id: "audit-until", name: "until", type: "datetime-local" }),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  const out = h("div", { id: "audit-result" });
  let entries = [];
  let cursor = null;
  const more = h("button", { type: "button", hidden: true, onclick: () => load(false) }, "More");

  async function load(fresh) {
    const f = new FormData(form);
    const filter = {};
    for (const k of ["actor", "action", "targetId"]) if (f.get(k)) filter[k] = f.get(k);
    if (f.get("since")) filter.since = new Date(f.get("since")).toISOString();
    const until = f.get("until") ? new Date(f.get("until")) : null;
    if (fresh) { entries = []; cursor = null; }
    try {
      const data = await gql(`query($filter: AuditFilter, $after: String) { auditLog(first: 50, after: $after, filter: $filter) {
        pageInfo { hasNextPage endCursor } edges { node { id at actor action targetType targetIds fields before after } } } }`,
      { filter, after: cursor });
      const page = data.auditLog;
      entries = entries.concat(page.edges.map((e) => e.node));
      cursor = page.pageInfo.endCursor;
      more.hidden = !page.pageInfo.hasNextPage;
      // the API filters from a time on; the end of the range is applied to the entries loaded
      const shown = until ? entries.filter((e) => new Date(e.at) < until) : entries;
      out.replaceChildren(table([
        { label: "at", get: (e) => e.at }, { label: "actor", get: (e) => e.actor }, { label: "action", get: (e) => e.action },
        { label: "target", get: (e) => `${e.targetType || ""} ${e.targetIds.join(" ")}` },
        { label: "fields", get: (e) => e.fields.join(", ") },
        { label: "change", get: (e) => [e.before, e.after].filter((x) => x !== null).map((x) => JSON.stringify(x)).join(" → ") },
      ], shown, { id: "audit-table" }));
      out.setAttribute("data-filter", JSON.stringify(filter));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); load(true); });
  view.replaceChildren(h("h1", {}, "Audit log"), form, out, more);
  await load(true);
}

// --- Work queues -----------------------------------------------------------------------------------------

const COMPLAINT_QUEUE = `query($filter: ComplaintQueueFilter) { complaintQueue(first: 50, filter: $filter) {
  edges { node { id subject severity status assignee tierAtOpen resolutionTimeLeft firstResponseTimeLeft breached
  customer { id name email phone tier { code } } } } } }`;

const CHURN_QUEUE = `{ churnQueue(first: 30) { totalCount edges { node { lastContactAt
  customer { id name email phone tier { code } } churnRisk { level score } } } } }`;

function left(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const m = Math.round(seconds / 60);
  return m < 0 ? `${-m} min late` : `${m} min`;
}

// one section per queue: a queue the role may not read says so, the others still show
async function queueSection(id, title, load, columns) {
  try {
    return h("section", { class: "card", id }, h("h2", {}, title), table(columns, await load()));
  } catch (e) {
    return h("section", { class: "card", id }, h("h2", {}, title), errorBox(e));
  }
}

async function queuePage(view) {
  const complaintColumns = [
    { label: "subject", get: (c) => c.subject }, { label: "severity", get: (c) => c.severity },
    { label: "status", get: (c) => c.status }, { label: "assignee", get: (c) => c.assignee },
    { label: "first response due", get: (c) => left(c.firstResponseTimeLeft) },
    { label: "resolution due", get: (c) => left(c.resolutionTimeLeft) },
    { label: "customer", get: (c) => c.customer && c.customer.name },
    { label: "e-mail", get: (c) => c.customer && c.customer.email },
    { label: "phone", get: (c) => c.customer && c.customer.phone },
    { label: "tier", get: (c) => c.customer && c.customer.tier && c.customer.tier.code },
  ];
  const complaints = (filter) => async () =>
    (await gql(COMPLAINT_QUEUE, { filter })).complaintQueue.edges.map((e) => e.node);
  const sections = await Promise.all([
    queueSection("queue-breached", "Breached", complaints({ breached: true }), complaintColumns),
    queueSection("queue-due", "Due within 24 hours", complaints({ dueWithinHours: 24 }), complaintColumns),
    queueSection("queue-mine", "Assigned to me", complaints({ assignedToMe: true }), complaintColumns),
    queueSection("queue-churn", "Customers at churn risk", async () =>
      (await gql(CHURN_QUEUE)).churnQueue.edges.map((e) => e.node), [
      { label: "customer", get: (n) => n.customer && n.customer.name },
      { label: "e-mail", get: (n) => n.customer && n.customer.email },
      { label: "phone", get: (n) => n.customer && n.customer.phone },
      { label: "tier", get: (n) => n.customer && n.customer.tier && n.customer.tier.code },
      { label: "level", get: (n) => n.churnRisk && n.churnRisk.level },
      { label: "score", get: (n) => n.churnRisk && n.churnRisk.score },
      { label: "last contact", get: (n) => n.lastContactAt },
    ]),
  ]);
  view.replaceChildren(
    h("h1", {}, "Work queues"),
    h("p", {}, "As your role sees them: values your role may only see masked stay masked, "
      + "fields it may not see are empty."),
    ...sections);
}

// --- Tiers -----------------------------------------------------------------------------------------------

async function tiersPage(view) {
  const data = await gql(`{ tierPolicies { id version name status revision createdAt activatedAt
    tiers { code name rank } } }`);
  const policies = data.tierPolicies || [];
  const sim = h("div", { id: "simulation" });
  const rows = policies.map((p) => h("tr", {},
    h("td", {}, p.name), h("td", { class: "num" }, p.version), h("td", {}, p.status),
    h("td", {}, (p.tiers || []).map((t) => t.code).join(", ")),
    h("td", {}, p.status === "DRAFT" ? [
      h("button", { type: "button", "data-simulate": p.id, onclick: () => simulate(p) }, "Simulate"), " ",
      h("button", { type: "button", "data-activate": p.id, onclick: () => activate(p) }, "Activate…"),
    ] : "")));

  async function simulate(p) {
    sim.replaceChildren(h("p", {}, "Simulating…"));
    try {
      const d = await gql(`query($id: ID!) { simulateTierPolicy(draftId: $id) { customers changing
        moves { fromTier toTier customers } } }`, { id: p.id });
      const s = d.simulateTierPolicy;
      const from = [...new Set(s.moves.map((m) => m.fromTier ?? "none"))];
      const to = [...new Set(s.moves.map((m) => m.toTier))];
      const count = (f, t) => s.moves.filter((m) => (m.fromTier ?? "none") === f && m.toTier === t)
        .reduce((n, m) => n + m.customers, 0);
      sim.replaceChildren(h("section", { class: "card" },
        h("h2", {}, `Simulation of ${p.name} v${p.version}: ${s.changing} of ${s.customers} customers change tier`),
        h("div", { class: "scroll" }, h("table", { id: "simulation-matrix" },
          h("thead", {}, h("tr", {}, h("th", {}, "from \\ to"), to.map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, from.map((f) => h("tr", {}, h("th", { scope: "row" }, f),
            to.map((t) => h("td", { class: "num" }, count(f, t))))))))));
    } catch (e) {
      sim.replaceChildren(errorBox(e));
    }
  }

  async function activate(p) {
    if (!window.confirm(`Activate ${p.name} v${p.version}? The active policy is retired and customers are re-tiered.`)) return;
    try {
      const d = await gql(`mutation($id: ID!, $rev: Int) { activateTierPolicy(id: $id, expectedRevision: $rev) {
        policy { version status } userErrors { message } } }`, { id: p.id, rev: p.revision });
      const errors = d.activateTierPolicy.userErrors;
      if (errors.length) sim.replaceChildren(h("p", { class: "error", role: "alert" }, errors.map((e) => e.message).join("; ")));
      else await route();
    } catch (e) {
      sim.replaceChildren(errorBox(e));
    }
  }

  view.replaceChildren(h("h1", {}, "Tier policies"),
    policies.length ? h("div", { class: "scroll" }, h("table", { id: "tier-policies" },
      h("thead", {}, h("tr", {}, ["name", "version", "status", "tiers", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))) : h("p", { class: "empty" }, "No tier policies."),
    sim);
}

$("signin-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
