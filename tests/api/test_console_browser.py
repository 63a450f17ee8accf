"""The web console (issue 14) in a real headless Chromium against ``tierwise serve`` on a seeded database, with
name resolution answering nothing but 127.0.0.1: an admin signs in with a token, sees the role x field matrix
and changes a cell, and the API (another caller, over HTTP) sees the change; a support agent sees masked
values masked, never an e-mail in clear, and the admin pages refused by the API; the reports draw their
charts with the API's numbers; sign-out forgets the token; nothing is loaded from anywhere but the server.

Screenshots of each screen go to ``.tierwise/console-screenshots/`` (look at them).

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/test installs them where apt is available);
skipped, saying so, only where no browser could be installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
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


def _shot(d: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert d.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


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


def _only_local(d: Any, base: str) -> None:
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(url.endswith("/console/console.js") for url in loaded), loaded
    assert all(url.startswith(base) or url.startswith("data:") or url.startswith("blob:") for url in loaded), loaded


async def test_admin_sees_the_matrix_changes_a_cell_and_the_api_applies_it(server: str, browser: Any) -> None:
    await asyncio.to_thread(_admin, server, browser)


def _admin(base: str, d: Any) -> None:
    from selenium.webdriver.common.by import By

    alice = issue_staff_token(test_settings(), "alice")
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

    # a click: the reason from explainAccess, then the change and its confirmation
    button.click()
    wait_for(lambda: "Why:" in d.find_element(By.ID, "cell-reason").text, what="the reason")
    d.find_element(By.CSS_SELECTOR, '#cell-dialog button[data-change="denied"]').click()
    change = d.find_element(By.ID, "cell-change").text
    assert change.splitlines() == [
        'grantAccess(role: "support_agent", object: "Customer.email", action: READ, effect: DENY)',
        'grantAccess(role: "support_agent", object: "Customer.email", action: READ_MASKED, effect: DENY)',
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

    # reports: a chart with bars for each, the table a click away with the API's numbers
    _page(d, "reports")
    for report in (
        "tier-distribution",
        "revenue-share",
        "nps",
        "csat",
        "complaints",
        "root-causes",
        "fairness",
        "churn",
    ):
        section = d.find_element(By.CSS_SELECTOR, f'section[data-report="{report}"]')
        assert section.find_elements(By.CSS_SELECTOR, "svg.chart rect"), f"{report}: an empty chart"
    dist = _gql(base, alice, "{ tierDistribution { tiers { tier customers } } }")["data"]["tierDistribution"]["tiers"]
    section = d.find_element(By.CSS_SELECTOR, 'section[data-report="tier-distribution"]')
    section.find_element(By.CSS_SELECTOR, "button[aria-expanded]").click()
    shown = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")[:3:2]]
        for tr in section.find_elements(By.CSS_SELECTOR, "[data-table] tbody tr")
    ]
    assert shown == [[t["tier"], str(t["customers"])] for t in dist]
    assert len(section.find_elements(By.CSS_SELECTOR, "svg.chart rect")) == len(dist)
    _shot(d, "reports")

    # tiers: the policies, with the active one
    _page(d, "tiers")
    assert "ACTIVE" in d.find_element(By.ID, "tier-policies").text
    _shot(d, "tiers")

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
    for page in ("access", "audit", "reports", "tiers"):
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
