"""GraphiQL works offline (issue 18): in a real headless Chromium whose name resolution answers nothing but
127.0.0.1, the page served by ``tierwise serve`` renders, shows how to set the token, and runs a query with
the token in its Headers pane; every file it loaded came from the server itself.

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/test installs them where apt is available);
skipped, saying so, only where no browser could be installed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from api.edge import cli
from api.edge.auth import issue_staff_token
from tests.browser import chromium, needs_chromium, served, wait_for
from tests.conftest import test_settings

pytestmark = needs_chromium


@pytest.fixture
def server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``tierwise serve`` on a fresh database (a real process, real HTTP), alice an admin there."""
    monkeypatch.setenv("TIERWISE_DATABASE_URL", database_url)
    assert cli.main(["roles", "assign", "alice", "admin", "--actor", "test"]) == 0
    with served(database_url) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium(1400, 900) as driver:
        yield driver


async def test_graphiql_renders_and_runs_a_query_offline(server: str, browser: Any) -> None:
    await asyncio.to_thread(_run_in_browser, server, browser)


def _run_in_browser(base: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    d: Any = driver
    d.get(f"{base}/graphql")
    wait_for(lambda: d.find_element(By.CSS_SELECTOR, ".graphiql-container"), what="GraphiQL to render")
    hint = d.find_element(By.ID, "hint").text
    assert "tierwise token issue" in hint
    assert "Authorization" in hint

    # the token goes where a person puts it, in the Headers pane (GraphiQL keeps it in localStorage)
    token = issue_staff_token(test_settings(), "alice")
    d.execute_script(
        "localStorage.setItem('graphiql:headers', arguments[0]);localStorage.setItem('graphiql:query', arguments[1]);",
        json.dumps({"Authorization": f"Bearer {token}"}),
        "query Who { viewer { subject roles } }",
    )
    d.refresh()
    run = wait_for(lambda: d.find_element(By.CSS_SELECTOR, ".graphiql-execute-button"), what="the run button")
    run.click()
    answer = wait_for(
        lambda: "user:alice" in (text := d.find_element(By.CSS_SELECTOR, ".graphiql-response").text) and text,
        what="the query's answer",
    )
    assert '"roles"' in str(answer)
    assert "admin" in str(answer)

    # everything the page loaded came from the server itself
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("graphiql.min.js" in url for url in loaded), loaded
    assert all(url.startswith(base) or url.startswith("data:") for url in loaded), loaded
    page = d.page_source
    assert "unpkg.com" not in page
    assert "cdn" not in page.lower()
