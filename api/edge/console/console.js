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
  const svg = ["svg", "rect", "text", "g", "line", "title", "polyline", "circle"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
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

// gql(query, variables, {viewAs: "support_agent"}) runs the query as that role (X-Tierwise-View-As: the API
// answers with the role's decisions, masks and refusals, read-only); {withErrors: true} returns
// {data, errors} so a page can say which fields the API refused
async function gql(query, variables = {}, options = {}) {
  if (!token && !viaProxy) throw new ApiError("not signed in", "UNAUTHENTICATED");
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.viewAs) headers["X-Tierwise-View-As"] = options.viewAs;
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
  return options.withErrors ? { data: body.data, errors } : body.data;
}

// a modal confirmation: resolves true on Confirm, false on Cancel or Escape
function confirmDialog(title, body, confirmLabel = "Confirm") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-title" });
    let answered = false;
    const done = (value) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    dialog.append(h("h2", { id: "confirm-title" }, title), ...[body].flat(),
      h("menu", {},
        h("li", {}, h("button", { type: "button", class: "primary", id: "confirm-ok", onclick: () => done(true) }, confirmLabel)),
        h("li", {}, h("button", { type: "button", id: "confirm-cancel", onclick: () => done(false) }, "Cancel"))));
    document.body.append(dialog);
    dialog.showModal();
    $("confirm-ok").focus();
  });
}

// focused once it is in the page (see showErrors), so it is read out and scrolled to
function userErrorBox(errors, id) {
  return h("div", { class: "card error", role: "alert", id, tabindex: "-1" },
    h("p", {}, "The API refused the change:"),
    h("ul", {}, errors.map((e) => h("li", { "data-code": e.code || "" }, e.field ? `${e.field}: ${e.message}` : e.message))));
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

const PAGES = {
  access: accessPage, people: peoplePage, tokens: tokensPage, viewas: viewAsPage,
  reports: reportsPage, audit: auditPage, queue: queuePage, tiers: tiersPage,
};

let routes = 0;  // navigations started: only the latest one draws

async function route() {
  if (!viewer) return;  // signed in (with a token, or through the proxy) once the API said who is asking
  const seq = ++routes;
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
  // the page is built aside and shown only if no later navigation started meanwhile: a slow page must not
  // replace the one the person went on to
  const built = h("div");
  try {
    await page(built);
  } catch (e) {
    // the page's name above the refusal, so a refused page still says which page it is
    const link = document.querySelector(`#nav a[href="#${name}"]`);
    built.replaceChildren(h("h1", {}, link ? link.textContent : name), errorBox(e));
  }
  if (seq !== routes || !viewer) return;
  view.replaceChildren(...built.childNodes);
  view.removeAttribute("aria-busy");
}

// --- tables, charts, CSV -------------------------------------------------------------------------------

function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(2);
  return String(v);
}

// a time of the API (ISO 8601) as "2026-12-06 18:48:09 UTC": to the second (audit entries a moment apart stay
// apart), in UTC like the API, without the microseconds and offset that made the columns hard to read
function when(iso) {
  if (!iso) return null;
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : `${t.toISOString().slice(0, 19).replace("T", " ")} UTC`;
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

// horizontal bars: one per row, label and value. With negative values (an NPS) the bars grow left and right of a
// zero line, so -33 does not read as a longer bar than +10. A row without a value (null: e.g. no responses)
// gets no bar and says "no data" rather than a bar of 0, which would read as a score of 0.
function barChart(rows, label, value, unit = "") {
  const data = rows.map((r) => {
    const v = value(r);
    return { label: String(label(r) ?? "—"), value: v === null || v === undefined ? null : Number(v) };
  });
  const values = data.filter((d) => d.value !== null).map((d) => d.value);
  const pos = Math.max(0, ...values), neg = Math.max(0, ...values.map((v) => -v));
  const longest = Math.max(...data.map((d) => Math.min(d.label.length, 40)));
  const rowH = 22, width = 720, left = Math.min(300, Math.max(60, Math.round(longest * 6.2) + 12));
  const barW = width - left - 70;
  const zero = left + (neg ? (barW * neg) / (neg + pos) : 0);
  const scale = barW / Math.max(1e-9, pos + neg);
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${width} ${data.length * rowH + 10}`, role: "img" });
  if (neg) svg.append(h("line", { x1: zero, x2: zero, y1: 2, y2: data.length * rowH + 8, stroke: "#999" }));
  data.forEach((d, i) => {
    const y = 5 + i * rowH;
    const name = d.label.length > 40 ? `${d.label.slice(0, 39)}…` : d.label;
    svg.append(h("text", { x: left - 6, y: y + 15, "text-anchor": "end" }, name, h("title", {}, d.label)));
    if (d.value === null) {
      svg.append(h("text", { x: zero + 4, y: y + 15, class: "nodata" }, "no data"));
      return;
    }
    const w = Math.max(1, Math.abs(d.value) * scale);
    svg.append(
      h("rect", { x: d.value < 0 ? zero - w : zero, y: y + 3, width: w, height: rowH - 6,
        fill: d.value < 0 ? "#c94b4b" : "#2456c9" }, h("title", {}, `${d.label}: ${fmt(d.value)}${unit}`)),
      // a negative value is written right of the zero line, where its row has room
      h("text", { x: zero + (d.value < 0 ? 0 : w) + 4, y: y + 15 }, `${fmt(d.value)}${unit}`),
    );
  });
  return svg;
}

// every month from the first to the last of ["2024-03", "2024-06"]: ["2024-03", "2024-04", "2024-05", "2024-06"],
// so a chart over months spaces them as time passes (a month without data is a gap, not a shorter step)
function everyMonth(months) {
  if (!months.length || !months.every((m) => /^\d{4}-\d{2}$/.test(m))) return months;
  const index = (m) => Number(m.slice(0, 4)) * 12 + Number(m.slice(5, 7)) - 1;
  const sorted = [...months].sort();
  const out = [];
  for (let i = index(sorted[0]); i <= index(sorted[sorted.length - 1]); i++) {
    out.push(`${Math.floor(i / 12)}-${String((i % 12) + 1).padStart(2, "0")}`);
  }
  return out;
}

// one line per series (e.g. a tier) over x (e.g. a month), with a dot and its value at each point; axis(xs) gives
// every x to place (e.g. everyMonth). A line joins only neighbouring points: where a series has no value the
// line breaks, so it does not draw a trend through months without answers.
const PALETTE = ["#2456c9", "#c94b4b", "#2f9e44", "#e67700", "#7048e8", "#0c8599", "#5c5f66"];

function lineChart(rows, series, x, y, axis = (xs) => xs) {
  const xs = axis([...new Set(rows.map(x))].sort());
  const names = [...new Set(rows.map(series))];
  const values = rows.map(y).filter((v) => v !== null && v !== undefined).map(Number);
  const lo = Math.min(0, ...values), hi = Math.max(1e-9, ...values);
  const width = 720, height = 260, left = 50, right = 110, top = 10, bottom = 30;
  const px = (i) => left + (xs.length === 1 ? (width - left - right) / 2 : (i * (width - left - right)) / (xs.length - 1));
  const py = (v) => top + ((hi - v) / (hi - lo || 1)) * (height - top - bottom);
  // at most about eight labels on the x axis; the last one replaces a label too close before it
  const step = Math.ceil(xs.length / 8);
  const labelled = xs.map((_, i) => i).filter((i) => i % step === 0);
  const lastX = xs.length - 1;
  if (lastX >= 0 && labelled[labelled.length - 1] !== lastX) {
    if (px(lastX) - px(labelled[labelled.length - 1]) < 60) labelled.pop();  // a label is about 45 px wide
    labelled.push(lastX);
  }
  const svg = h("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img" },
    h("line", { x1: left, x2: width - right, y1: py(0), y2: py(0), stroke: "#999" }),
    [...new Set([hi, lo, 0])].map((v) => h("text", { x: left - 6, y: py(v) + 4, "text-anchor": "end" }, fmt(v))),
    labelled.map((i) => h("text", { x: px(i), y: height - 10, "text-anchor": "middle" }, xs[i])));
  const legend = [];  // the y of each series' name written so far: names at the same height are moved apart
  names.forEach((name, n) => {
    const color = PALETTE[n % PALETTE.length];
    const points = xs.map((v, i) => {
      const row = rows.find((r) => series(r) === name && x(r) === v);
      const value = row ? y(row) : null;
      return value === null || value === undefined ? null : [px(i), py(Number(value)), Number(value), v, i];
    }).filter(Boolean);
    let run = [];
    const line = () => {
      if (run.length > 1) {
        svg.append(h("polyline", { points: run.map(([a, b]) => `${a},${b}`).join(" "), fill: "none", stroke: color,
          "stroke-width": 2 }));
      }
    };
    points.forEach((p, k) => {
      if (k && p[4] !== points[k - 1][4] + 1) { line(); run = []; }
      run.push(p);
    });
    line();
    for (const [a, b, value, v] of points) {
      svg.append(h("circle", { cx: a, cy: b, r: 4, fill: color }, h("title", {}, `${name} ${v}: ${fmt(value)}`)));
    }
    const last = points[points.length - 1];
    if (last) {
      let at = last[1] + 4;
      while (legend.some((other) => Math.abs(other - at) < 12)) at += 12;
      legend.push(at);
      svg.append(h("text", { x: width - right + 8, y: at, fill: color }, name));
    }
  });
  return svg;
}

function report({ id, title, rows, columns, label, value, unit, chart: draw, attrs = {} }) {
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
  const chart = !rows.length ? h("p", { class: "empty" }, "No data yet.")
    : draw ? draw(rows) : barChart(rows, label, value, unit);
  chart.setAttribute?.("aria-label", title);
  return h("section", { class: "card", "data-report": id, ...attrs },
    h("h2", {}, title),
    h("div", { class: "toolbar" }, showTable,
      h("button", { type: "button", onclick: () => download(`${id}.csv`, csv(columns, rows)) }, "Download CSV")),
    chart, tableBox);
}

// --- Access: the role × field matrix ---------------------------------------------------------------------

const MATRIX = `{ accessMatrix { roles policyVersion rows { field typeName fieldName sensitivity decisions consentChannel } }
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

// deny-overrides holds per action: denying READ leaves a masked read (READ_MASKED) and a consented one
// (READ_IF_CONSENTED) as they are, so "deny" denies each read action the field honours
function changesFor(row) {
  const consent = row.consentChannel;
  return [
    { id: "full", label: "Allow read (FULL)", calls: [["grantAccess", "READ", "ALLOW"]] },
    consent && { id: "consented", label: `Allow read where the customer consented to ${consent} contact (CONSENTED)`,
      calls: [["grantAccess", "READ_IF_CONSENTED", "ALLOW"]] },
    { id: "masked", label: "Allow masked read (MASKED)", calls: [["grantAccess", "READ_MASKED", "ALLOW"]] },
    { id: "denied", label: `Deny read, masked read${consent ? " and consented read" : ""} (DENIED, overrides any allow)`,
      calls: [["grantAccess", "READ", "DENY"], ["grantAccess", "READ_MASKED", "DENY"],
        ...(consent ? [["grantAccess", "READ_IF_CONSENTED", "DENY"]] : [])] },
  ].filter(Boolean);
}

async function cellDialog(role, row, decision, roleGrants) {
  const dialog = h("dialog", { id: "cell-dialog", "aria-labelledby": "cell-title" });
  const reason = h("p", { id: "cell-reason" }, "Asking the API why…");
  const steps = h("div", { id: "cell-steps" });
  const close = () => { dialog.close(); dialog.remove(); };
  // the rules of this role on exactly this field that decide a read (the matrix shows reads)
  const direct = roleGrants.filter((g) => g.object === row.field
    && ["read", "read_masked", "read_if_consented"].includes(g.action));
  const options = [
    ...changesFor(row),
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

// --- People: role assignments of staff users -------------------------------------------------------------

async function peoplePage(view) {
  const data = await gql(`{ roles { name description } policies { subject object action } }`);
  const roleNames = data.roles.map((r) => r.name);
  // role assignments are the policy's "g" rules of user subjects (roles inheriting roles are rules too)
  const rows = data.policies
    .filter((p) => p.action === "member" && p.subject.startsWith("user:"))
    .map((p) => ({ user: p.subject.slice("user:".length), role: p.object.replace(/^role:/, "") }))
    .sort((a, b) => a.user.localeCompare(b.user) || a.role.localeCompare(b.role));
  const note = h("div", { id: "people-note", role: "status" });

  async function change(mutation, user, role, done) {
    try {
      const d = await gql(`mutation($user: String!, $role: String!) { r: ${mutation}(user: $user, role: $role) {
        ok policyVersion userErrors { field code message } } }`, { user, role });
      if (d.r.userErrors.length) {
        note.replaceChildren(userErrorBox(d.r.userErrors, "people-errors"));
        return;
      }
      await route();
      const after = $("people-note");
      if (after) after.textContent = `${done} (policy version ${d.r.policyVersion})`;
    } catch (e) {
      note.replaceChildren(errorBox(e));
    }
  }

  const userInput = h("input", { id: "assign-user", name: "user", required: true, autocomplete: "off", placeholder: "bob" });
  const roleSelect = h("select", { id: "assign-role", name: "role" }, roleNames.map((r) => h("option", { value: r }, r)));
  const form = h("form", { id: "assign-form", class: "toolbar inline" },
    h("label", { for: "assign-user" }, "User (the token's sub)"), userInput,
    h("label", { for: "assign-role" }, "Role"), roleSelect,
    h("button", { type: "submit", class: "primary" }, "Assign…"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const user = userInput.value.trim();
    const role = roleSelect.value;
    if (!user) return;
    const ok = await confirmDialog(`Assign ${role} to ${user}?`, [
      h("p", {}, `${user} gets every right of the role `, h("strong", {}, role), " at their next request."),
      h("pre", { id: "confirm-change" }, `assignRole(user: "${user}", role: "${role}")`)]);
    if (ok) await change("assignRole", user, role, `Assigned ${role} to ${user}`);
  });

  const assignments = rows.length ? h("div", { class: "scroll" }, h("table", { id: "assignments" },
    h("thead", {}, h("tr", {}, ["user", "role", ""].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", { "data-user": r.user, "data-role": r.role },
      h("td", {}, r.user), h("td", {}, r.role),
      h("td", {}, h("button", {
        type: "button", "data-unassign": `${r.user}|${r.role}`, "aria-label": `Unassign ${r.role} from ${r.user}`,
        onclick: async () => {
          const ok = await confirmDialog(`Take ${r.role} from ${r.user}?`, [
            h("p", {}, `${r.user} loses the rights of `, h("strong", {}, r.role), " at their next request."),
            h("pre", { id: "confirm-change" }, `unassignRole(user: "${r.user}", role: "${r.role}")`)]);
          if (ok) await change("unassignRole", r.user, r.role, `Took ${r.role} from ${r.user}`);
        },
      }, "Unassign…"))))))) : h("p", { class: "empty" }, "No staff user holds a role yet.");

  view.replaceChildren(
    h("h1", {}, "People"),
    h("p", {}, "Roles of staff users: a staff token carries only who the person is; what they may do comes from "
      + "the roles assigned here. Every change is audited and applies at the person's next request."),
    form, note, assignments,
    h("h2", {}, "Roles"),
    table([{ label: "role", get: (r) => r.name }, { label: "description", get: (r) => r.description }], data.roles, { id: "role-list" }));
}

// --- Partner tokens ----------------------------------------------------------------------------------------

const TOKENS = `{ apiTokens { id name partnerId role scopes createdBy createdAt expiresAt revokedAt lastUsedAt } }`;

function tokenStatus(t) {
  if (t.revokedAt) return "revoked";
  if (t.expiresAt && new Date(t.expiresAt) <= new Date()) return "expired";
  return "live";
}

async function tokensPage(view) {
  const roles = (await gql("{ roles { name } }")).roles.map((r) => r.name);
  const list = h("div", { id: "token-list" });
  const note = h("div", { id: "token-note", role: "status" });
  const secret = h("div", { id: "token-secret" });

  async function refresh() {
    const tokens = (await gql(TOKENS)).apiTokens;
    list.replaceChildren(tokens.length ? h("div", { class: "scroll" }, h("table", { id: "tokens" },
      h("thead", {}, h("tr", {}, ["name", "partner", "role", "scopes", "created", "expires", "last used", "status", ""]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, tokens.map((t) => h("tr", { "data-token": t.id },
        h("td", {}, t.name), h("td", {}, t.partnerId), h("td", {}, t.role), h("td", {}, t.scopes.join(" ")),
        h("td", {}, fmt(when(t.createdAt))), h("td", {}, t.expiresAt ? when(t.expiresAt) : "never"),
        h("td", { "data-last-used": t.lastUsedAt || "" }, t.lastUsedAt ? when(t.lastUsedAt) : "never"),
        h("td", { "data-status": tokenStatus(t) }, tokenStatus(t)),
        h("td", {}, tokenStatus(t) === "live" ? h("button", {
          type: "button", "data-revoke": t.id, "aria-label": `Revoke ${t.name}`,
          onclick: () => revoke(t),
        }, "Revoke…") : "")))))) : h("p", { class: "empty" }, "No partner tokens."));
  }

  async function revoke(t) {
    const ok = await confirmDialog(`Revoke the token ${t.name}?`, [
      h("p", {}, "Every request with it is refused from now on, on every instance. This cannot be undone."),
      h("pre", { id: "confirm-change" }, `revokePartnerToken(id: "${t.id}")`)], "Revoke");
    if (!ok) return;
    try {
      const d = await gql(`mutation($id: ID!) { revokePartnerToken(id: $id) { ok userErrors { field code message } } }`,
        { id: t.id });
      if (d.revokePartnerToken.userErrors.length) note.replaceChildren(userErrorBox(d.revokePartnerToken.userErrors, "token-errors"));
      else note.textContent = `Revoked ${t.name}.`;
      await refresh();
    } catch (e) {
      note.replaceChildren(errorBox(e));
    }
  }

  const in90days = new Date(Date.now() + 90 * 86400e3);
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  const form = h("form", { id: "token-form", class: "card" },
    h("h2", {}, "New partner token"),
    h("label", { for: "token-partner" }, "Partner"), h("input", { id: "token-partner", name: "partner", required: true }),
    h("label", { for: "token-name" }, "Name (what it is for)"), h("input", { id: "token-name", name: "name", required: true }),
    h("label", { for: "token-role" }, "Role"), h("select", { id: "token-role", name: "role" },
      roles.map((r) => h("option", { value: r, selected: r === "partner" }, r))),
    h("label", { for: "token-scopes" }, "Scopes, one a line (read:Customer.*, write:Mutation.recordPurchases …)"),
    h("textarea", { id: "token-scopes", name: "scopes", rows: 3, spellcheck: "false" }, "read:*\nwrite:*"),
    h("label", { for: "token-expires" }, "Expires (empty: until revoked)"),
    h("input", { id: "token-expires", name: "expires", type: "datetime-local", value: local(in90days) }),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Create token")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const scopes = String(f.get("scopes")).split("\n").map((x) => x.trim()).filter(Boolean);
    secret.replaceChildren();
    try {
      const d = await gql(`mutation($partner: String!, $name: String!, $role: String!, $scopes: [String!], $expiresAt: DateTime) {
        createPartnerToken(partner: $partner, name: $name, role: $role, scopes: $scopes, expiresAt: $expiresAt) {
          token apiToken { id name } userErrors { field code message } } }`, {
        partner: f.get("partner"), name: f.get("name"), role: f.get("role"), scopes,
        expiresAt: f.get("expires") ? new Date(f.get("expires")).toISOString() : null,
      });
      const r = d.createPartnerToken;
      if (r.userErrors.length) {
        secret.replaceChildren(userErrorBox(r.userErrors, "token-errors"));
        return;
      }
      // the secret is on this page until it is left: never stored, never shown again by the API
      secret.replaceChildren(h("div", { class: "card", role: "status" },
        h("p", {}, h("strong", {}, `The token ${r.apiToken.name}: copy it now, it is shown once.`),
          " Only its hash is kept; if it is lost, revoke it and create another."),
        h("pre", { id: "new-token" }, r.token)));
      secret.scrollIntoView({ block: "nearest" });
      form.reset();
      await refresh();
    } catch (err) {
      secret.replaceChildren(errorBox(err));
    }
  });
  await refresh();
  view.replaceChildren(h("h1", {}, "Partner tokens"),
    h("p", {}, "Tokens partners call the API with: a role narrowed by scopes, an expiry, revocation. "
      + "\u201cLast used\u201d is kept to the minute."),
    form, secret, note, list);
}

// --- View as role: a customer page with another role's decisions ------------------------------------------

// Every request of this page carries X-Tierwise-View-As: the API answers as the role would be answered —
// its masks, its refusals — and nothing here is fetched with the admin's own reads. Before drawing, the
// page checks that the API did answer as the role (viewer.viewingAs): a proxy that dropped the header
// would otherwise make the admin's values look like the role's.
const VIEW_CUSTOMER = `query($id: ID!) { customer(id: $id) { id name email phone nationalId birthDate locale lifecycleStage
  address { line1 line2 postalCode city country } tier { code name } tierSince
  metrics { lifetimeSpend spend12m orders12m lastPurchaseAt openComplaints latestNps }
  churnRisk { level score } consent { email sms phone } } }`;

let viewAs = { role: null, customer: null };

async function viewAsPage(view) {
  const roles = (await gql("{ roles { name } }")).roles.map((r) => r.name);
  const role = viewAs.role && roles.includes(viewAs.role) ? viewAs.role
    : roles.includes("support_agent") ? "support_agent" : roles[0];
  const select = h("select", { id: "viewas-role", name: "role" },
    roles.map((r) => h("option", { value: r, selected: r === role }, r)));
  const out = h("div", { id: "viewas-result" });
  const form = h("form", { id: "viewas-form", class: "toolbar inline" },
    h("label", { for: "viewas-role" }, "Role"), select,
    h("button", { type: "submit", class: "primary" }, "View as this role"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    viewAs = { role: select.value, customer: null };
    show();
  });

  async function show() {
    const r = viewAs.role || role;
    out.setAttribute("aria-busy", "true");
    out.replaceChildren(h("p", { class: "empty" }, "Asking the API as ", r, "…"));
    try {
      const me = (await gql(`{ viewer { roles viewingAs fieldAccess(type: "Customer") { field access } } }`, {},
        { viewAs: r })).viewer;
      if (me.viewingAs !== r || me.roles.length !== 1 || me.roles[0] !== r) {
        throw new ApiError(`the API did not answer as ${r} (it answered as ${me.roles.join(", ")}): nothing is shown`,
          "VIEW_AS_IGNORED");
      }
      const access = new Map(me.fieldAccess.map((f) => [f.field, f.access]));
      const banner = h("p", { class: "card", id: "viewas-banner", role: "status" }, "Viewing as ", h("strong", {}, r),
        ": every value below is the API's answer to this role (masked where it is masked, refused where it is "
        + "refused); read-only.");
      let body;
      if (viewAs.customer) body = await customerCard(r, viewAs.customer, access);
      else body = await customerList(r);
      out.replaceChildren(banner, body);
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
    out.removeAttribute("aria-busy");
  }

  async function customerList(r) {
    const d = await gql(`{ customers(first: 20) { edges { node { id name tier { code } } } } }`, {},
      { viewAs: r, withErrors: true });
    const nodes = d.data.customers ? d.data.customers.edges.map((e) => e.node) : [];
    if (!nodes.length) return h("p", { class: "empty" }, `${r} lists no customers.`);
    return h("div", {}, h("h2", {}, `Customers as ${r} lists them`), h("ul", { id: "viewas-customers" },
      nodes.map((n) => h("li", {}, h("button", {
        type: "button", "data-customer": n.id, onclick: () => { viewAs.customer = n.id; show(); },
      }, n.name ?? "(name refused)"), n.tier ? ` · ${n.tier.code}` : ""))));
  }

  async function customerCard(r, id, access) {
    const d = await gql(VIEW_CUSTOMER, { id }, { viewAs: r, withErrors: true });
    const refused = new Set(d.errors.filter((e) => e.path).map((e) => e.path.slice(1).join(".")));
    const c = d.data.customer;
    if (!c) return h("p", { class: "empty" }, `${r} may not open this customer.`);
    const value = (path, v) => {
      if (refused.has(path)) return h("span", { class: "DENIED", "data-refused": path }, "refused by the API");
      if (v === null || v === undefined) return h("span", { class: "empty" }, "—");
      if (typeof v === "object") return h("dl", {}, Object.entries(v).flatMap(([k, x]) => [h("dt", {}, k), h("dd", {}, value(`${path}.${k}`, x))]));
      return String(v);
    };
    const fields = ["name", "email", "phone", "nationalId", "birthDate", "locale", "lifecycleStage", "address", "tier",
      "tierSince", "metrics", "churnRisk", "consent"];
    return h("section", { class: "card", id: "viewas-customer", "data-role": r },
      h("h2", {}, `Customer as ${r} sees it`),
      h("button", { type: "button", onclick: () => { viewAs.customer = null; show(); } }, "Back to the list"),
      h("div", { class: "scroll" }, h("table", { id: "viewas-fields" }, h("thead", {}, h("tr", {},
        ["field", `${r}'s access`, "value"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, fields.map((f) => {
        const level = access.get(`Customer.${f}`) || "FULL";
        return h("tr", { "data-field": f },
          h("th", { scope: "row" }, f), h("td", { class: level }, level), h("td", { "data-value": f }, value(f, c[f])));
      })))));
  }

  view.replaceChildren(h("h1", {}, "View as role"),
    h("p", {}, "A customer page as another role sees it, answered by the API for that role (X-Tierwise-View-As): "
      + "for admins, for roles that read nothing they may not."),
    form, out);
  viewAs.role = viewAs.role || role;
  await show();
}

// --- Reports ---------------------------------------------------------------------------------------------

const REPORTS = `query($since: DateTime!) {
  tierDistribution { customers revenue tiers { tier name customers customerShare revenue revenueShare } }
  reports {
    nps: surveyScores(metric: NPS, groupBy: [TIER]) { tier responses score responseRate }
    csat: surveyScores(metric: CSAT, groupBy: [TIER]) { tier responses score responseRate }
    ces: surveyScores(metric: CES, groupBy: [TIER]) { tier responses score responseRate }
    npsOverTime: surveyScores(metric: NPS, groupBy: [TIER, PERIOD], period: MONTH) { tier periodStart responses score }
    csatOverTime: surveyScores(metric: CSAT, groupBy: [TIER, PERIOD], period: MONTH) { tier periodStart responses score }
    cesOverTime: surveyScores(metric: CES, groupBy: [TIER, PERIOD], period: MONTH) { tier periodStart responses score }
    complaints { perThousandCustomers { tier category categoryLabel complaints customers perThousand }
      topRootCauses { code label complaints sharePercent } }
    fairness { tiers { tier complaints slaBreachRate medianFirstResponseMinutes medianResolutionMinutes nps } }
    churnRisk { levels { tier level customers meanScore } }
  }
  tierMigrations(since: $since) { since until customers moved cells { fromTier toTier customers } }
}`;

const MIGRATION_DAYS = 90;
// a share (0.25) as a percentage (25); none stays none (the chart says "no data", not 0 %)
const percent = (share) => (share === null || share === undefined ? null : 100 * share);

async function reportsPage(view) {
  const since = new Date(Date.now() - MIGRATION_DAYS * 86400e3).toISOString();
  const data = await gql(REPORTS, { since });
  const migrations = data.tierMigrations;
  const tiers = data.tierDistribution ? data.tierDistribution.tiers : [];
  const r = data.reports || {};
  const col = (label, key) => ({ label, get: (x) => x[key] });
  const scores = (metric, rows) => report({
    id: metric.toLowerCase(), title: `${metric} by tier`, rows: rows || [],
    columns: [col("tier", "tier"), col("responses", "responses"), col(metric, "score"), col("response rate", "responseRate")],
    label: (x) => x.tier, value: (x) => x.score,
  });
  const overTime = (metric, rows) => report({
    id: `${metric.toLowerCase()}-over-time`, title: `${metric} by tier, month by month`, rows: rows || [],
    columns: [col("tier", "tier"), { label: "month", get: (x) => (x.periodStart || "").slice(0, 7) },
      col("responses", "responses"), col(metric, "score")],
    chart: (rows_) => lineChart(rows_, (x) => x.tier ?? "none", (x) => (x.periodStart || "").slice(0, 7), (x) => x.score,
      everyMonth),
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
      label: (x) => x.tier, value: (x) => percent(x.revenueShare), unit: "%",
    }),
    report({
      id: "migrations", title: `Tier migrations over the last ${MIGRATION_DAYS} days`
        + (migrations ? `: ${migrations.moved} of ${migrations.customers} customers moved` : ""),
      rows: migrations ? migrations.cells : [],
      attrs: { "data-since": since },
      columns: [{ label: "from", get: (x) => x.fromTier ?? "none" }, col("to", "toTier"), col("customers", "customers")],
      label: (x) => `${x.fromTier ?? "none"} → ${x.toTier}`, value: (x) => x.customers,
    }),
    scores("NPS", r.nps), scores("CSAT", r.csat), scores("CES", r.ces),
    overTime("NPS", r.npsOverTime), overTime("CSAT", r.csatOverTime), overTime("CES", r.cesOverTime),
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
      label: (x) => x.tier, value: (x) => percent(x.slaBreachRate), unit: "%",
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
    if (f.get("until")) filter.until = new Date(f.get("until")).toISOString();
    if (fresh) { entries = []; cursor = null; }
    try {
      const data = await gql(`query($filter: AuditFilter, $after: String) { auditLog(first: 50, after: $after, filter: $filter) {
        pageInfo { hasNextPage endCursor } edges { node { id at actor action targetType targetIds fields before after } } } }`,
      { filter, after: cursor });
      const page = data.auditLog;
      entries = entries.concat(page.edges.map((e) => e.node));
      cursor = page.pageInfo.endCursor;
      more.hidden = !page.pageInfo.hasNextPage;
      out.replaceChildren(table([
        { label: "at", get: (e) => when(e.at) }, { label: "actor", get: (e) => e.actor }, { label: "action", get: (e) => e.action },
        { label: "target", get: (e) => `${e.targetType || ""} ${e.targetIds.join(" ")}` },
        { label: "fields", get: (e) => e.fields.join(", ") },
        { label: "change", get: (e) => [e.before, e.after].filter((x) => x !== null).map((x) => JSON.stringify(x)).join(" → ") },
      ], entries, { id: "audit-table" }));
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

// time left before a deadline, in the unit a person reads at a glance: "45 min", "5 h", "6 d", or "… late"
function left(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const m = Math.round(Math.abs(seconds) / 60);
  const span = m < 120 ? `${m} min` : m < 72 * 60 ? `${Math.round(m / 60)} h` : `${Math.round(m / 1440)} d`;
  return seconds < 0 ? `${span} late` : span;
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
      { label: "last contact", get: (n) => when(n.lastContactAt) },
    ]),
  ]);
  view.replaceChildren(
    h("h1", {}, "Work queues"),
    h("p", {}, "As your role sees them: values your role may only see masked stay masked, "
      + "fields it may not see are empty."),
    ...sections);
}

// --- Tiers -----------------------------------------------------------------------------------------------

const POLICIES = `{ tierPolicies { id version name description status revision graceDays minStayDays spendWindowDays
  createdAt activatedAt tiers { code name rank entryRule retainRule benefits } } }`;

async function tiersPage(view) {
  const policies = (await gql(POLICIES)).tierPolicies || [];
  const active = policies.find((p) => p.status === "ACTIVE");
  const sim = h("div", { id: "simulation" });
  const editor = h("div", { id: "draft-editor-box" });
  const note = h("div", { id: "tiers-note", role: "status" });
  const rows = policies.map((p) => h("tr", { "data-policy": p.id },
    h("td", {}, p.name), h("td", { class: "num" }, p.version), h("td", {}, p.status),
    h("td", {}, (p.tiers || []).map((t) => t.code).join(", ")),
    h("td", {}, p.status === "DRAFT" ? [
      h("button", { type: "button", "data-edit": p.id, onclick: () => edit(p) }, "Edit"), " ",
      h("button", { type: "button", "data-simulate": p.id, onclick: () => simulate(p) }, "Simulate"), " ",
      h("button", { type: "button", "data-activate": p.id, onclick: () => activate(p) }, "Activate…"),
    ] : "")));

  async function newDraft() {
    try {
      const d = await gql(`mutation($input: CreateTierPolicyDraftInput!) { createTierPolicyDraft(input: $input) {
        policy { id } userErrors { field code message } } }`,
      { input: { name: `${active ? active.name : "Tiers"} (draft)`, copyFrom: active ? active.id : null } });
      const r = d.createTierPolicyDraft;
      if (r.userErrors.length) {
        note.replaceChildren(userErrorBox(r.userErrors, "draft-errors"));
        return;
      }
      await reopenDraft(r.policy.id);
    } catch (e) {
      note.replaceChildren(errorBox(e));
    }
  }

  function edit(p) {
    editDraft(editor, p);
  }

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
            to.map((t) => h("td", { class: "num" }, count(f, t)))))))),
        report({
          id: "simulation-moves", title: "Customers per move (from → to)", rows: s.moves,
          columns: [{ label: "from", get: (m) => m.fromTier ?? "none" }, { label: "to", get: (m) => m.toTier },
            { label: "customers", get: (m) => m.customers }],
          label: (m) => `${m.fromTier ?? "none"} → ${m.toTier}`, value: (m) => m.customers,
        })));
    } catch (e) {
      sim.replaceChildren(errorBox(e));
    }
  }

  async function activate(p) {
    const ok = await confirmDialog(`Activate ${p.name} v${p.version}?`, [
      h("p", {}, active ? `${active.name} v${active.version} is retired, ` : "", "and every customer is placed again under ",
        h("strong", {}, `${p.name} v${p.version}`), ". Simulate first to see the moves."),
      h("pre", { id: "confirm-change" }, `activateTierPolicy(id: "${p.id}", expectedRevision: ${p.revision})`)], "Activate");
    if (!ok) return;
    try {
      const d = await gql(`mutation($id: ID!, $rev: Int) { activateTierPolicy(id: $id, expectedRevision: $rev) {
        policy { version status } userErrors { field code message } } }`, { id: p.id, rev: p.revision });
      const errors = d.activateTierPolicy.userErrors;
      if (errors.length) {
        sim.replaceChildren(userErrorBox(errors, "activate-errors"));
        return;
      }
      await route();
      const after = $("tiers-note");
      if (after) after.textContent = `Activated ${p.name} v${d.activateTierPolicy.policy.version}.`;
    } catch (e) {
      sim.replaceChildren(errorBox(e));
    }
  }

  view.replaceChildren(h("h1", {}, "Tier policies"),
    h("div", { class: "toolbar" }, h("button", { type: "button", id: "new-draft", onclick: newDraft },
      active ? `New draft from ${active.name} v${active.version}` : "New draft")),
    note,
    policies.length ? h("div", { class: "scroll" }, h("table", { id: "tier-policies" },
      h("thead", {}, h("tr", {}, ["name", "version", "status", "tiers", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))) : h("p", { class: "empty" }, "No tier policies."),
    editor, sim);
}

// the tiers page drawn again (the list shows the draft as saved), with the draft's editor open
async function reopenDraft(id, message) {
  await route();
  const draft = ((await gql(POLICIES)).tierPolicies || []).find((p) => p.id === id);
  if (draft && $("draft-editor-box")) editDraft($("draft-editor-box"), draft, message);
}

// The draft editor: the policy's settings and its tiers as JSON (the rules are JSON in the API too). The API
// validates the whole draft on every save and its messages are shown as they come, with the field they name.
function editDraft(box, p, message) {
  const tiers = (p.tiers || []).map((t) => ({ code: t.code, name: t.name, rank: t.rank, entryRule: t.entryRule,
    retainRule: t.retainRule, benefits: t.benefits }));
  const number = (id, label, v) => [h("label", { for: id }, label),
    h("input", { id, name: id, type: "number", value: v ?? "", required: true })];
  const errors = h("div", { id: "draft-result", role: "status" }, message || "");
  const form = h("form", { id: "draft-editor", class: "card", "data-policy": p.id },
    h("h2", {}, `Edit draft ${p.name} v${p.version} (revision ${p.revision})`),
    h("label", { for: "draft-name" }, "Name"), h("input", { id: "draft-name", name: "name", value: p.name, required: true }),
    h("label", { for: "draft-description" }, "Description"),
    h("input", { id: "draft-description", name: "description", value: p.description ?? "" }),
    number("draft-grace", "Grace days (before a downgrade)", p.graceDays),
    number("draft-minstay", "Minimum stay in a tier (days)", p.minStayDays),
    number("draft-window", "Spend window (days)", p.spendWindowDays),
    h("label", { for: "draft-tiers" }, "Tiers (JSON: code, name, rank, entryRule, retainRule, benefits)"),
    h("textarea", { id: "draft-tiers", name: "tiers", rows: 16, spellcheck: "false" }, JSON.stringify(tiers, null, 2)),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Save draft"), " ",
      h("button", { type: "button", onclick: () => box.replaceChildren() }, "Close")),
    errors);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    let parsed;
    try {
      parsed = JSON.parse(String(f.get("tiers")));
    } catch (err) {
      errors.replaceChildren(h("p", { class: "error", role: "alert" }, `The tiers are not JSON: ${err.message}`));
      return;
    }
    try {
      const d = await gql(`mutation($input: UpdateTierPolicyDraftInput!) { updateTierPolicyDraft(input: $input) {
        policy { id revision } userErrors { field code message } } }`, { input: {
        id: p.id, expectedRevision: p.revision, name: f.get("name"), description: f.get("description") || null,
        graceDays: Number(f.get("draft-grace")), minStayDays: Number(f.get("draft-minstay")),
        spendWindowDays: Number(f.get("draft-window")), tiers: parsed,
      } });
      const r = d.updateTierPolicyDraft;
      if (r.userErrors.length) {
        errors.replaceChildren(userErrorBox(r.userErrors, "draft-errors"));
        $("draft-errors").focus();
        return;
      }
      await reopenDraft(p.id, h("p", { id: "draft-saved" }, `Saved: revision ${r.policy.revision}. Simulate it from the list.`));
    } catch (err) {
      errors.replaceChildren(errorBox(err));
    }
  });
  box.replaceChildren(form);
  $("draft-name").focus();
}

$("signin-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
