"""GraphiQL works offline (issue 18): in a real headless Chromium whose name resolution answers nothing but
127.0.0.1, the page served by ``tierwise serve`` renders, shows how to set the token, and runs a query with
the token in its Headers pane; every file it loaded came from the server itself.

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/test installs them where apt is available);
skipped, saying so, only where no browser could be installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.edge import cli
from api.edge.auth import issue_staff_token
from tests.conftest import test_settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no Chromium here: scripts/test installs Debian's chromium and chromium-driver where apt is available",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``tierwise serve`` on a fresh database (a real process, real HTTP), alice an admin there."""
    monkeypatch.setenv("TIERWISE_DATABASE_URL", database_url)
    assert cli.main(["roles", "assign", "alice", "admin", "--actor", "test"]) == 0
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    env |= {"TIERWISE_DATABASE_URL": database_url, "TIERWISE_RUN_WORKER": "false"}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.edge.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "tierwise serve ended"
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "tierwise serve did not become ready"
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        # no network beyond this machine: every name but 127.0.0.1 fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


async def test_graphiql_renders_and_runs_a_query_offline(server: str, browser: Any) -> None:
    await asyncio.to_thread(_run_in_browser, server, browser)


def _run_in_browser(base: str, driver: Any) -> None:
    from selenium.webdriver.common.by import By

    d: Any = driver
    d.get(f"{base}/graphql")
    _wait(lambda: d.find_element(By.CSS_SELECTOR, ".graphiql-container"), what="GraphiQL to render")
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
    run = _wait(lambda: d.find_element(By.CSS_SELECTOR, ".graphiql-execute-button"), what="the run button")
    run.click()
    answer = _wait(
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
