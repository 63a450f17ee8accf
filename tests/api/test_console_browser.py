"""The web console (issue 14) in a real headless Chromium against ``tierwise serve`` on a seeded database, with
name resolution answering nothing but 127.0.0.1: an admin signs in with a token, sees the role x field matrix
and changes a cell, and the API (another caller, over HTTP) sees the change; a support agent sees masked
values masked, never an e-mail in clear, and the admin pages refused by the API; the reports draw their
charts with the API's numbers; sign-out forgets the token; nothing is loaded from anywhere but the server.

Screenshots of each screen (the sign-in and every page of the console's router, as an admin and as a support
agent, at 1280 px and at phone width) go to ``.tierwise/console-screenshots/`` (look at them); README.md's
console picture is ``access-matrix.png`` of a run.

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/test installs them where apt is available);
skipped, saying so, only where no browser could be installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from api.edge import cli
from api.edge.auth import issue_staff_token
from tests.browser import ROOT, chromium, needs_chromium, served, wait_for
from tests.conftest import test_settings

SCREENSHOTS = ROOT / ".tierwise" / "console-screenshots"

pytestmark = needs_chromium


@pytest.fixture
def server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``tierwise serve`` (a real process, real HTTP) on a fresh database seeded with 120 demo customers;
    alice is an admin there, bob a support agent."""
    monkeypatch.setenv("TIERWISE_DATABASE_URL", database_url)
    assert cli.main(["seed", "--customers", "120"]) == 0
    assert cli.main(["roles", "assign", "alice", "admin"]) == 0
    assert cli.main(["roles", "assign", "bob", "support_agent"]) == 0
    with served(database_url) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium(1280, 900) as driver:
        yield driver


def _gql(base: str, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    body: dict[str, Any] = response.json()
    return body


def _shot(d: Any, name: str, full: bool = False) -> None:
    """The window as ``SCREENSHOTS/<name>.png``; ``full``: the whole page (the window made as tall as the page,
    then back)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = d.get_window_size()
    if full:
        height = d.execute_script("return document.documentElement.scrollHeight")
        d.set_window_size(size["width"], min(int(height) + 200, 12000))
    try:
        assert d.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    finally:
        if full:
            d.set_window_size(size["width"], size["height"])


def _fmt(value: Any) -> str:
    """A number as the console shows it (console.js ``fmt``): none as "—", whole numbers as they are, others
    with two decimals rounded half away from zero (JavaScript's ``toFixed``)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return str(Decimal(value).quantize(Decimal("0.01"), ROUND_HALF_UP))
    return str(value)


def _shown_table(d: Any, report: str) -> list[list[str]]:
    """The rows of a report's table, opened with its "Show table" button."""
    from selenium.webdriver.common.by import By

    section = d.find_element(By.CSS_SELECTOR, f'section[data-report="{report}"]')
    toggle = section.find_element(By.CSS_SELECTOR, "button[aria-expanded]")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert section.find_element(By.CSS_SELECTOR, "[data-table]").is_displayed()
    rows: list[list[str]] = d.execute_script(
        "return [...arguments[0].querySelectorAll('[data-table] tbody tr')]"
        ".map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent))",
        section,
    )
    return rows


def _marks(d: Any, report: str, mark: str) -> list[str]:
    """The tooltips (``<title>``) of a report's chart's data marks (``rect``: bars, ``circle``: points)."""
    from selenium.webdriver.common.by import By

    section = d.find_element(By.CSS_SELECTOR, f'section[data-report="{report}"]')
    titles: list[str] = d.execute_script(
        "return [...arguments[0].querySelectorAll('svg.chart ' + arguments[1])]"
        ".map((m) => m.querySelector('title').textContent)",
        section,
        mark,
    )
    return titles


# every report of the reports page, as the API answers it to another caller: the GraphQL field it reads, its
# table's columns, and each bar's (or point's) label and value with its unit ("pct": a share as a percentage)
_REPORTS_QUERY = """query($since: DateTime!) {
  tierDistribution { tiers { tier name customers customerShare revenue revenueShare } }
  reports {
    nps: surveyScores(metric: NPS, groupBy: [TIER]) { tier responses score responseRate }
    csat: surveyScores(metric: CSAT, groupBy: [TIER]) { tier responses score responseRate }
    ces: surveyScores(metric: CES, groupBy: [TIER]) { tier responses score responseRate }
    npsOverTime: surveyScores(metric: NPS, groupBy: [TIER, PERIOD], period: MONTH) { tier periodStart responses score }
    csatOverTime: surveyScores(metric: CSAT, groupBy: [TIER, PERIOD], period: MONTH) {
      tier periodStart responses score }
    cesOverTime: surveyScores(metric: CES, groupBy: [TIER, PERIOD], period: MONTH) { tier periodStart responses score }
    complaints { perThousandCustomers { tier categoryLabel complaints customers perThousand }
      topRootCauses { code label complaints sharePercent } }
    fairness { tiers { tier complaints slaBreachRate medianFirstResponseMinutes medianResolutionMinutes nps } }
    churnRisk { levels { tier level customers meanScore } }
  }
  tierMigrations(since: $since) { cells { fromTier toTier customers } }
}"""


def _month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7])


def _pct(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _reports(d: Any, base: str, token: str) -> None:
    """Each chart of the reports page drawn with data, and its table and marks equal to the API's numbers."""
    from selenium.webdriver.common.by import By

    since = d.find_element(By.CSS_SELECTOR, 'section[data-report="migrations"]').get_attribute("data-since")
    answer = _gql(base, token, _REPORTS_QUERY, {"since": since})
    assert "errors" not in answer, answer
    api = answer["data"]
    r = api["reports"]
    tiers = api["tierDistribution"]["tiers"]
    month = lambda x: (x["periodStart"] or "")[:7]  # noqa: E731
    bars: dict[str, tuple[list[dict[str, Any]], list[Any], Any, Any, str]] = {
        # id: (rows, columns, bar label, bar value, unit)
        "tier-distribution": (
            tiers,
            ["tier", "name", "customers", "customerShare", "revenue", "revenueShare"],
            lambda x: x["tier"],
            lambda x: x["customers"],
            "",
        ),
        "revenue-share": (
            tiers,
            ["tier", "revenue", "revenueShare"],
            lambda x: x["tier"],
            lambda x: _pct(x["revenueShare"]),
            "%",
        ),
        "migrations": (
            api["tierMigrations"]["cells"],
            [lambda x: x["fromTier"] or "none", "toTier", "customers"],
            lambda x: f"{x['fromTier'] or 'none'} → {x['toTier']}",
            lambda x: x["customers"],
            "",
        ),
        **{
            metric: (
                r[metric],
                ["tier", "responses", "score", "responseRate"],
                lambda x: x["tier"],
                lambda x: x["score"],
                "",
            )
            for metric in ("nps", "csat", "ces")
        },
        "complaints": (
            r["complaints"]["perThousandCustomers"],
            ["tier", "categoryLabel", "complaints", "customers", "perThousand"],
            lambda x: f"{x['tier']} · {x['categoryLabel']}",
            lambda x: x["perThousand"],
            "",
        ),
        "root-causes": (
            r["complaints"]["topRootCauses"],
            ["code", "label", "complaints", "sharePercent"],
            lambda x: x["label"],
            lambda x: x["sharePercent"],
            "%",
        ),
        "fairness": (
            r["fairness"]["tiers"],
            ["tier", "complaints", "slaBreachRate", "medianFirstResponseMinutes", "medianResolutionMinutes", "nps"],
            lambda x: x["tier"],
            lambda x: _pct(x["slaBreachRate"]),
            "%",
        ),
        "churn": (
            r["churnRisk"]["levels"],
            ["tier", "level", "customers", "meanScore"],
            lambda x: f"{x['tier'] or 'none'} · {x['level']}",
            lambda x: x["customers"],
            "",
        ),
    }
    lines = {
        "nps-over-time": r["npsOverTime"],
        "csat-over-time": r["csatOverTime"],
        "ces-over-time": r["cesOverTime"],
    }
    drawn = d.execute_script(
        "return [...document.querySelectorAll('#view section[data-report]')].map((s) => s.dataset.report)"
    )
    assert sorted(drawn) == sorted([*bars, *lines])  # no chart of the page left unchecked

    def cells(row: dict[str, Any], columns: list[Any]) -> list[str]:
        return [_fmt(c(row) if callable(c) else row[c]) for c in columns]

    for report, (rows, columns, label, value, unit) in bars.items():
        assert rows, f"{report}: the API has no data to draw"
        marked = [
            f"{label(x) if label(x) is not None else '—'}: {_fmt(value(x))}{unit}" for x in rows if value(x) is not None
        ]
        assert marked, f"{report}: no bar to draw"
        assert _marks(d, report, "rect") == marked, report
        assert _shown_table(d, report) == [cells(x, columns) for x in rows], report
    for report, rows in lines.items():
        scored = [x for x in rows if x["score"] is not None]
        assert scored, f"{report}: the API has no score to draw"
        points = sorted(f"{x['tier'] or 'none'} {month(x)}: {_fmt(x['score'])}" for x in scored)
        assert sorted(_marks(d, report, "circle")) == points, report
        section = d.find_element(By.CSS_SELECTOR, f'section[data-report="{report}"]')
        # a line joins a tier's scores of neighbouring months only: one per run of two or more such months
        runs = 0
        for tier in {x["tier"] for x in scored}:
            months = sorted({_month_index(month(x)) for x in scored if x["tier"] == tier})
            starts = [m for m in months if m - 1 not in months]
            runs += sum(1 for m in starts if m + 1 in months)
        assert len(section.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) == runs, report
        # the x axis runs month by month from the first month to the last, none skipped
        first, last = min(month(x) for x in rows), max(month(x) for x in rows)
        labels = [t.text for t in section.find_elements(By.CSS_SELECTOR, "svg.chart > text[text-anchor=middle]")]
        assert labels[0] == first
        assert labels[-1] == last
        expected = [[_fmt(x["tier"]), month(x), _fmt(x["responses"]), _fmt(x["score"])] for x in rows]
        assert _shown_table(d, report) == expected, report


def _sign_in(d: Any, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    d.get(f"{base}/console")
    field = wait_for(lambda: d.find_element(By.ID, "token"), what="the sign-in form")
    assert "tierwise token issue" in d.find_element(By.ID, "signin").text
    field.send_keys(token)
    d.find_element(By.CSS_SELECTOR, "#signin-token").click()
    wait_for(lambda: d.find_element(By.ID, "signout").is_displayed(), what="signing in")


def _page(d: Any, name: str) -> None:
    from selenium.webdriver.common.by import By

    d.find_element(By.CSS_SELECTOR, f'#nav a[href="#{name}"]').click()
    wait_for(
        lambda: (
            d.find_element(By.ID, "view").get_attribute("data-page") == name
            and d.find_element(By.ID, "view").get_attribute("aria-busy") is None
        ),
        what=f"the {name} page",
    )


def _view_as(d: Any, role: str, customer_id: str) -> None:
    """Open "View as role", choose ``role``, then the customer ``customer_id`` from the role's own list."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _page(d, "viewas")
    Select(d.find_element(By.ID, "viewas-role")).select_by_value(role)
    d.find_element(By.CSS_SELECTOR, "#viewas-form button[type=submit]").click()
    wait_for(lambda: d.find_element(By.ID, "viewas-banner"), what="the view as the role")
    wait_for(
        lambda: d.find_element(By.CSS_SELECTOR, f'#viewas-customers button[data-customer="{customer_id}"]'),
        what="the customer in the role's list",
    ).click()
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, f'#viewas-customer[data-role="{role}"]'), what="the customer page")
    assert role in d.find_element(By.ID, "viewas-banner").text


def _shown(d: Any, field: str) -> str:
    from selenium.webdriver.common.by import By

    return str(d.find_element(By.CSS_SELECTOR, f'#viewas-fields td[data-value="{field}"]').text)


def _only_local(d: Any, base: str) -> None:
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(url.endswith("/console/console.js") for url in loaded), loaded
    assert all(url.startswith(base) or url.startswith("data:") or url.startswith("blob:") for url in loaded), loaded


async def test_admin_sees_the_matrix_changes_a_cell_and_the_api_applies_it(server: str, browser: Any) -> None:
    await asyncio.to_thread(_admin, server, browser)


def _admin(base: str, d: Any) -> None:
    from selenium.webdriver.common.by import By

    alice = issue_staff_token(test_settings(), "alice")
    d.get(f"{base}/console")
    wait_for(lambda: d.find_element(By.ID, "token"), what="the sign-in form")
    _shot(d, "signin")
    _sign_in(d, base, alice)
    assert "user:alice" in d.find_element(By.ID, "who").text

    # the matrix: every role a column, the cells as the API decides them
    cell = '#matrix button[data-field="Customer.email"][data-role="support_agent"]'
    button = wait_for(lambda: d.find_element(By.CSS_SELECTOR, cell), what="the matrix")
    api = _gql(base, alice, "{ accessMatrix { roles rows { field decisions } } }")["data"]["accessMatrix"]
    row = next(r for r in api["rows"] if r["field"] == "Customer.email")
    assert button.text == row["decisions"][api["roles"].index("support_agent")] == "MASKED"
    headers = [th.text for th in d.find_elements(By.CSS_SELECTOR, "#matrix thead th")][1:]
    assert headers == api["roles"]
    _shot(d, "access-matrix")

    # view as a support agent: a customer page answered by the API for the role, e-mail masked, national id
    # refused; the admin's own (full) values never reach the page
    full = _gql(base, alice, "{ customers(first: 100) { edges { node { id name email } } } }")["data"]["customers"]
    person = next(e["node"] for e in full["edges"] if e["node"]["email"])
    _view_as(d, "support_agent", person["id"])
    assert _shown(d, "email").startswith("***@***.")
    assert _shown(d, "nationalId") == "refused by the API"
    assert d.find_element(By.CSS_SELECTOR, '#viewas-fields tr[data-field="email"] td').text == "MASKED"
    assert person["email"] not in d.page_source
    _shot(d, "view-as-support-agent")

    # a click: the reason from explainAccess, then the change and its confirmation
    _page(d, "access")
    button = wait_for(lambda: d.find_element(By.CSS_SELECTOR, cell), what="the matrix again")
    button.click()
    wait_for(lambda: "Why:" in d.find_element(By.ID, "cell-reason").text, what="the reason")
    d.find_element(By.CSS_SELECTOR, '#cell-dialog button[data-change="denied"]').click()
    change = d.find_element(By.ID, "cell-change").text
    assert change.splitlines() == [
        'grantAccess(role: "support_agent", object: "Customer.email", action: READ, effect: DENY)',
        'grantAccess(role: "support_agent", object: "Customer.email", action: READ_MASKED, effect: DENY)',
        'grantAccess(role: "support_agent", object: "Customer.email", action: READ_IF_CONSENTED, effect: DENY)',
    ]
    _shot(d, "access-confirm")
    d.find_element(By.ID, "cell-confirm").click()
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, cell).text == "DENIED", what="the cell to change")
    assert "MASKED → DENIED" in d.find_element(By.ID, "matrix-note").text

    # the API applied it: a support agent's e-mails are now refused (not masked), without a restart
    bob = issue_staff_token(test_settings(), "bob")
    answer = _gql(base, bob, "{ customers(first: 1) { edges { node { name email } } } }")
    assert answer["data"]["customers"]["edges"][0]["node"]["email"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["FORBIDDEN_FIELD"]
    explained = _gql(
        base, alice, '{ explainAccess(subject: "role:support_agent", field: "Customer.email") { decision } }'
    )
    assert explained["data"]["explainAccess"]["decision"] == "DENIED"

    # the same customer page as the role, without a restart: the e-mail is now refused
    _view_as(d, "support_agent", person["id"])
    assert _shown(d, "email") == "refused by the API"
    assert person["email"] not in d.page_source

    # CONSENTED from the matrix: the support agent reads phones of the customers who consented
    _page(d, "access")
    phone = '#matrix button[data-field="Customer.phone"][data-role="support_agent"]'
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, phone), what="the phone cell").click()
    wait_for(lambda: "Why:" in d.find_element(By.ID, "cell-reason").text, what="the reason")
    d.find_element(By.CSS_SELECTOR, '#cell-dialog button[data-change="consented"]').click()
    assert d.find_element(By.ID, "cell-change").text == (
        'grantAccess(role: "support_agent", object: "Customer.phone", action: READ_IF_CONSENTED, effect: ALLOW)'
    )
    d.find_element(By.ID, "cell-confirm").click()
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, phone).text == "CONSENTED", what="the CONSENTED cell")
    explained = _gql(
        base,
        alice,
        '{ explainAccess(subject: "role:support_agent", field: "Customer.phone", action: READ_IF_CONSENTED) '
        "{ allowed decision } }",
    )
    assert explained["data"]["explainAccess"] == {"allowed": True, "decision": "CONSENTED"}

    # the audit log shows the change, filtered by action
    _page(d, "audit")
    wait_for(lambda: d.find_element(By.ID, "audit-table"), what="the audit log")
    d.find_element(By.ID, "audit-action").send_keys("grant")
    d.find_element(By.CSS_SELECTOR, "#audit-form button[type=submit]").click()
    wait_for(
        lambda: '"action":"grant"' in (d.find_element(By.ID, "audit-result").get_attribute("data-filter") or ""),
        what="the filtered audit log",
    )
    assert "Customer.email" in d.find_element(By.ID, "audit-table").text
    rows = d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
    assert rows
    assert all("grant" in r.text for r in rows)
    _shot(d, "audit")
    # the end of the time range is the API's: nothing before yesterday but the seed's own entries
    until = d.find_element(By.ID, "audit-until")
    d.execute_script("arguments[0].value = arguments[1]", until, "2000-01-01T00:00")
    d.find_element(By.CSS_SELECTOR, "#audit-form button[type=submit]").click()
    wait_for(
        lambda: '"until":"' in (d.find_element(By.ID, "audit-result").get_attribute("data-filter") or ""),
        what="the audit log until a time",
    )
    assert not d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
    assert "Nothing to show" in d.find_element(By.ID, "audit-result").text

    # reports: every chart drawn with its data marks, its table (a click away) and its marks the API's numbers
    _page(d, "reports")
    _reports(d, base, alice)
    _shot(d, "reports", full=True)
    for section in d.find_elements(By.CSS_SELECTOR, "section[data-report]"):  # each chart with its table, close up
        assert section.screenshot(str(SCREENSHOTS / f"report-{section.get_attribute('data-report')}.png"))
    d.execute_script(
        "arguments[0].scrollIntoView()", d.find_element(By.CSS_SELECTOR, 'section[data-report="migrations"]')
    )
    _shot(d, "reports-migrations")

    # tiers: the policies, with the active one
    _page(d, "tiers")
    assert "ACTIVE" in d.find_element(By.ID, "tier-policies").text
    _shot(d, "tiers")

    # the work queue as an admin sees it (values in clear)
    _page(d, "queue")
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, "#queue-churn tbody tr"), what="the customers at churn risk")
    _shot(d, "queue-admin", full=True)

    _only_local(d, base)

    # sign-out forgets the token: nothing in cookies or storage, the pages gone
    d.find_element(By.ID, "signout").click()
    assert d.find_element(By.ID, "signin").is_displayed()
    assert not d.find_element(By.ID, "nav").is_displayed()
    assert not d.find_element(By.ID, "view").is_displayed()
    assert d.get_cookies() == []
    assert d.execute_script("return localStorage.length + sessionStorage.length") == 0
    assert alice not in d.page_source


async def test_support_agent_sees_masked_values_and_admin_pages_refused(server: str, browser: Any) -> None:
    await asyncio.to_thread(_agent, server, browser)


def _agent(base: str, d: Any) -> None:
    from selenium.webdriver.common.by import By

    alice = issue_staff_token(test_settings(), "alice")
    emails: list[str] = []
    after = None
    while True:
        page = _gql(
            base,
            alice,
            "query($after: String) { customers(first: 100, after: $after) { "
            "pageInfo { hasNextPage endCursor } edges { node { email } } } }",
            {"after": after},
        )["data"]["customers"]
        emails += [e["node"]["email"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    emails = [e for e in emails if e]  # (a few demo customers have no e-mail)
    assert len(emails) > 60
    assert all("@" in e and "***" not in e for e in emails)

    # without a proxy in front, "signed in through the proxy" is refused by the API: no token, no console
    d.get(f"{base}/console")
    wait_for(lambda: d.find_element(By.ID, "signin-proxy"), what="the sign-in form").click()
    wait_for(lambda: "Sign-in failed" in d.find_element(By.ID, "signin-error").text, what="the refusal")
    assert not d.find_element(By.ID, "nav").is_displayed()

    bob = issue_staff_token(test_settings(), "bob")
    _sign_in(d, base, bob)
    # the work queue first (an agent's landing page), with the customers' e-mails masked
    wait_for(lambda: d.find_element(By.ID, "view").get_attribute("data-page") == "queue", what="the work queue")
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, "#queue-churn tbody tr"), what="the customers at churn risk")
    for section in ("queue-breached", "queue-due", "queue-mine", "queue-churn"):  # each answered, none refused
        assert not d.find_elements(By.CSS_SELECTOR, f"#{section} [data-error]"), section
    churn = d.find_element(By.ID, "queue-churn").text
    assert "***@***." in churn
    _shot(d, "queue-support-agent")
    seen = d.page_source

    # admin pages: refused by the API, said so
    for page in ("access", "people", "tokens", "viewas", "audit", "reports", "tiers"):
        _page(d, page)
        if page != "tiers":  # a support agent may read tier policies
            refused = d.find_element(By.CSS_SELECTOR, "#view [data-error]")
            assert refused.get_attribute("data-error") == "FORBIDDEN", page
            assert "Refused by the API" in refused.text
        seen += d.page_source
        _shot(d, f"{page}-support-agent")
    assert not any(email in seen for email in emails)
    _only_local(d, base)

    # at phone width the console still lays out (no horizontal scroll of the page itself)
    d.set_window_size(390, 844)
    _page(d, "queue")
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, "#queue-churn tbody tr"), what="the queue at phone width")
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    _shot(d, "queue-phone")


async def test_console_files_are_served_with_a_policy_that_keeps_them_local(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        redirect = await client.get("/console")
        assert redirect.status_code == 308
        assert redirect.headers["location"] == "/console/"
        for path in ("/console/", "/console/console.js", "/console/console.css"):
            response = await client.get(path)
            assert response.status_code == 200, path
            csp = response.headers["content-security-policy"]
            assert "default-src 'self'" in csp
            assert "connect-src 'self'" in csp
            assert "http" not in response.text.replace("http://www.w3.org/2000/svg", ""), path
        assert (await client.get("/console/nothing.js")).status_code == 404


async def test_admin_assigns_roles_manages_partner_tokens_and_edits_a_tier_draft(server: str, browser: Any) -> None:
    await asyncio.to_thread(_admin_tools, server, browser)


def _confirm(d: Any, expected: str) -> None:
    from selenium.webdriver.common.by import By

    wait_for(lambda: d.find_element(By.ID, "confirm-dialog").is_displayed(), what="the confirmation")
    assert d.find_element(By.ID, "confirm-change").text == expected
    d.find_element(By.ID, "confirm-ok").click()


def _admin_tools(base: str, d: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    alice = issue_staff_token(test_settings(), "alice")
    carol = issue_staff_token(test_settings(), "carol")
    _sign_in(d, base, alice)

    # role assignments: the API's assignments listed; carol gets analyst, then loses it, each confirmed
    _page(d, "people")
    listed = {
        tr.get_attribute("data-user") + ":" + tr.get_attribute("data-role")
        for tr in d.find_elements(By.CSS_SELECTOR, "#assignments tbody tr")
    }
    assert {"alice:admin", "bob:support_agent"} <= listed
    assert _gql(base, carol, "{ viewer { roles } }")["data"]["viewer"]["roles"] == []
    d.find_element(By.ID, "assign-user").send_keys("carol")
    Select(d.find_element(By.ID, "assign-role")).select_by_value("analyst")
    d.find_element(By.CSS_SELECTOR, "#assign-form button[type=submit]").click()
    _confirm(d, 'assignRole(user: "carol", role: "analyst")')
    row = '#assignments tr[data-user="carol"][data-role="analyst"]'
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, row), what="carol's new role")
    assert "Assigned analyst to carol" in d.find_element(By.ID, "people-note").text
    assert _gql(base, carol, "{ viewer { roles } }")["data"]["viewer"]["roles"] == ["analyst"]
    _shot(d, "people")
    d.find_element(By.CSS_SELECTOR, 'button[data-unassign="carol|analyst"]').click()
    _confirm(d, 'unassignRole(user: "carol", role: "analyst")')
    wait_for(lambda: not d.find_elements(By.CSS_SELECTOR, row), what="carol's role gone")
    assert _gql(base, carol, "{ viewer { roles } }")["data"]["viewer"]["roles"] == []
    assigned = _gql(
        base, alice, '{ auditLog(filter: {actor: "user:alice", action: "role.assign"}) { edges { node { after } } } }'
    )["data"]["auditLog"]["edges"]
    assert [e["node"]["after"]["subject"] for e in assigned] == ["user:carol"]

    # partner tokens: created with scopes and an expiry, the secret shown once, its use seen, revoked
    _page(d, "tokens")
    d.find_element(By.ID, "token-partner").send_keys("Northwind Shop")
    d.find_element(By.ID, "token-name").send_keys("console sync")
    scopes = d.find_element(By.ID, "token-scopes")
    d.execute_script("arguments[0].value = arguments[1]", scopes, "read:Customer.*\nread:Query.customers")
    d.execute_script("arguments[0].value = arguments[1]", d.find_element(By.ID, "token-expires"), "2099-06-30T18:00")
    d.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    secret = wait_for(lambda: d.find_element(By.ID, "new-token").text, what="the new token")
    assert secret.startswith("tw_pat_")
    tokens = _gql(base, alice, "{ apiTokens { id name scopes expiresAt lastUsedAt } }")["data"]["apiTokens"]
    made = next(t for t in tokens if t["name"] == "console sync")
    assert made["scopes"] == ["read:Customer.*", "read:Query.customers"]
    assert made["expiresAt"].startswith("2099-06-30")
    row = f'#tokens tr[data-token="{made["id"]}"]'
    assert d.find_element(By.CSS_SELECTOR, f"{row} td[data-last-used]").text == "never"
    _shot(d, "tokens-created")
    used = _gql(base, secret, "{ customers(first: 1) { edges { node { id } } } }")
    assert used["data"]["customers"]["edges"]
    # the secret is gone once the page is left; the list shows the use
    _page(d, "access")
    _page(d, "tokens")
    assert secret not in d.page_source
    last_used = d.find_element(By.CSS_SELECTOR, f"{row} td[data-last-used]").get_attribute("data-last-used")
    listed = _gql(base, alice, "{ apiTokens { id lastUsedAt } }")["data"]["apiTokens"]
    assert last_used
    assert last_used == next(t["lastUsedAt"] for t in listed if t["id"] == made["id"])
    d.find_element(By.CSS_SELECTOR, f'button[data-revoke="{made["id"]}"]').click()
    _confirm(d, f'revokePartnerToken(id: "{made["id"]}")')
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, f"{row} td[data-status]").text == "revoked", what="revoked")
    refused = httpx.post(
        f"{base}/graphql",
        json={"query": "{ viewer { subject } }"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert refused.status_code == 401
    _shot(d, "tokens-revoked")

    # a draft from the active policy, edited: the API's validation messages shown, then saved, simulated
    # (matrix and chart), activated after a confirmation
    _page(d, "tiers")
    d.find_element(By.ID, "new-draft").click()
    editor = wait_for(lambda: d.find_element(By.ID, "draft-editor"), what="the draft editor")
    draft_id = editor.get_attribute("data-policy")
    tiers = d.find_element(By.ID, "draft-tiers")
    good = tiers.get_attribute("value")
    bad = good.replace('"spend_12m"', '"spend_13m"', 1)
    assert bad != good
    d.execute_script("arguments[0].value = arguments[1]", tiers, bad)
    d.find_element(By.CSS_SELECTOR, "#draft-editor button[type=submit]").click()
    errors = wait_for(lambda: d.find_element(By.ID, "draft-errors"), what="the validation messages")
    assert "unknown metric 'spend_13m'" in errors.text
    assert "tiers[" in errors.text  # each message with the field it names
    _shot(d, "tier-draft-errors")
    d.execute_script("arguments[0].value = arguments[1]", tiers, good)
    grace = d.find_element(By.ID, "draft-grace")
    grace.clear()
    grace.send_keys("45")
    d.find_element(By.CSS_SELECTOR, "#draft-editor button[type=submit]").click()
    wait_for(lambda: d.find_element(By.ID, "draft-saved"), what="the saved draft")
    saved = _gql(base, alice, "query($id: ID!) { tierPolicy(id: $id) { graceDays status } }", {"id": draft_id})
    assert saved["data"]["tierPolicy"] == {"graceDays": 45, "status": "DRAFT"}

    d.find_element(By.CSS_SELECTOR, f'button[data-simulate="{draft_id}"]').click()
    wait_for(lambda: d.find_element(By.ID, "simulation-matrix"), what="the simulation")
    sim = _gql(
        base,
        alice,
        "query($id: ID!) { simulateTierPolicy(draftId: $id) { moves { fromTier toTier customers } } }",
        {"id": draft_id},
    )["data"]["simulateTierPolicy"]
    cells = [int(td.text) for td in d.find_elements(By.CSS_SELECTOR, "#simulation-matrix tbody td")]
    assert sum(cells) == sum(m["customers"] for m in sim["moves"]) == 120
    # the matrix cell of each move, the chart's bar of each move and the chart's table: the API's numbers
    matrix = d.find_element(By.ID, "simulation-matrix")
    to = [th.text for th in matrix.find_elements(By.CSS_SELECTOR, "thead th")][1:]
    shown_cells = {
        (tr.find_element(By.TAG_NAME, "th").text, t): int(td.text)
        for tr in matrix.find_elements(By.CSS_SELECTOR, "tbody tr")
        for t, td in zip(to, tr.find_elements(By.TAG_NAME, "td"), strict=True)
    }
    moves = [(m["fromTier"] or "none", m["toTier"], m["customers"]) for m in sim["moves"]]
    assert {(f, t): n for f, t, n in moves} == {k: n for k, n in shown_cells.items() if n}
    assert _marks(d, "simulation-moves", "rect") == [f"{f} → {t}: {n}" for f, t, n in moves]
    assert _shown_table(d, "simulation-moves") == [[f, t, str(n)] for f, t, n in moves]
    _shot(d, "tier-simulation")
    d.find_element(By.CSS_SELECTOR, f'button[data-activate="{draft_id}"]').click()
    wait_for(lambda: d.find_element(By.ID, "confirm-dialog").is_displayed(), what="the activation confirmation")
    assert draft_id in d.find_element(By.ID, "confirm-change").text
    d.find_element(By.ID, "confirm-ok").click()
    wait_for(lambda: "Activated" in d.find_element(By.ID, "tiers-note").text, what="the activation")
    active = _gql(base, alice, "{ activeTierPolicy { id graceDays } }")["data"]["activeTierPolicy"]
    assert active == {"id": draft_id, "graceDays": 45}
    assert "ACTIVE" in d.find_element(By.CSS_SELECTOR, f'#tier-policies tr[data-policy="{draft_id}"]').text
    _shot(d, "tiers-activated")

    # the new pages at phone width: laid out without the page itself scrolling sideways
    d.set_window_size(390, 844)
    for page in ("people", "tokens", "viewas", "tiers"):
        _page(d, page)
        if page == "viewas":
            wait_for(lambda: d.find_element(By.ID, "viewas-customers"), what="the role's customers")
        assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), page
        _shot(d, f"{page}-phone")
