"""README.md's tour can't drift (issue 18): on a fresh database seeded as scripts/dev seeds it, with
``tierwise serve`` running as a real process, ``scripts/tour --check`` runs the README's own commands (its
bash blocks, through curl and the real CLI) and compares every answer with the README's output blocks."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from demo.seed import seed
from infra.db import create_engine
from tests.conftest import test_settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="the README's tour calls curl and jq"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_readme_tour_answers_as_the_readme_shows(database_url: str) -> None:
    engine = create_engine(database_url, test_settings())
    try:
        await seed(engine, 2000, progress=False)  # what scripts/dev loads (tierwise seed --customers 2000)
    finally:
        await engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    env |= {"TIERWISE_DATABASE_URL": database_url, "TIERWISE_RUN_WORKER": "false"}
    env |= {"TIERWISE_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "HOOK_PORT": str(_free_port())}  # as scripts/dev
    port = _free_port()
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(  # noqa: ASYNC220 (started once; the test then waits on HTTP)
            [sys.executable, "-m", "api.edge.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            async with httpx.AsyncClient() as client:
                while True:
                    assert server.poll() is None, "tierwise serve ended"
                    try:
                        if (await client.get(f"{base}/readyz", timeout=2)).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "tierwise serve did not become ready"
                    await asyncio.sleep(0.2)
            # the CLI commands of the tour need .venv/bin/tierwise: this interpreter's
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            tour = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, str(ROOT / "scripts" / "tour"), "--check"],
                env={**env, "TW": base},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert tour.returncode == 0, f"{tour.stderr}\n{tour.stdout}"
    counts = re.findall(r"(\d+) of (\d+) outputs answer as README.md shows", tour.stderr)
    assert counts, tour.stderr
    assert counts[0][0] == counts[0][1]
    assert int(counts[0][1]) >= 10  # every output block of the tour was compared


def test_the_readme_pictures_are_in_the_repository() -> None:
    """Each picture README.md shows (the console's among them) is a PNG committed next to it, not a link out."""
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert any("console" in p for p in pictures), pictures
    for picture in pictures:
        path = ROOT / picture
        assert path.is_file(), picture
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
