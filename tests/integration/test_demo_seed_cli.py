"""The demo seed is development-only (``demo/``, Faker as the ``demo`` extra): ``tierwise seed`` works in a
dev install, and where the package or Faker is missing (the production image) it says what to install."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tomllib
from pathlib import Path

import asyncpg
import pytest

from api.edge import cli

ROOT = Path(__file__).resolve().parents[2]


async def test_tierwise_seed_loads_the_demo_data_in_a_dev_install(database_url: str) -> None:
    env = {**os.environ, "TIERWISE_DATABASE_URL": database_url}
    outputs = []
    for flags, expected in (
        (["--customers", "25"], "  3 partners, 25 customers, "),
        (["--if-empty"], "not seeding"),
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.edge.cli",
            "seed",
            *flags,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert expected in out.decode()
        outputs.append((out.decode(), err.decode()))
    # a readable summary, not a repr; progress as plain lines outside a terminal (stderr is a pipe here)
    summary, progress = outputs[0]
    assert summary.startswith("seeded in "), summary
    assert "SeedReport" not in summary
    assert re.search(r"^  [0-9 ]+ complaints with [0-9 ]+ events, [0-9 ]+ teams of [0-9 ]+ staff$", summary, re.M), (
        summary
    )
    for step in ("customers", "purchases", "complaints", "surveys", "metrics & tiers"):
        assert f"{step}: started" in progress, progress
        assert re.search(rf"^{re.escape(step)}: [0-9 ]+/[0-9 ]+ done \([0-9.]+ s\)$", progress, re.M), progress
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM customers") == 25
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        ("faker", "needs Faker, which is an extra: pip install -e '.[demo]'"),
        ("demo", "the demo data set is development-only and not installed here"),
    ],
)
def test_tierwise_seed_without_the_demo_extra_says_what_to_install(
    missing: str, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in the production image: the module can't be imported (None in sys.modules makes import fail).
    monkeypatch.delitem(sys.modules, "demo.seed", raising=False)
    monkeypatch.setitem(sys.modules, missing, None)
    # No database is needed to say so: an unreachable URL proves nothing was connected to.
    monkeypatch.setenv("TIERWISE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert cli.main(["seed", "--customers", "5"]) == 1
    captured = capsys.readouterr()
    assert says in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_the_runtime_distribution_and_image_leave_the_demo_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = [d.split(">")[0].split("[")[0].strip().lower() for d in project["project"]["dependencies"]]
    assert "faker" not in runtime
    assert any(d.lower().startswith("faker") for d in project["project"]["optional-dependencies"]["demo"])
    assert "tierwise[demo]" in project["project"]["optional-dependencies"]["dev"]
    assert "demo" not in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY")]
    assert not [c for c in copied if c.startswith("demo") or c == "."]
    installs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "pip install" in line]
    assert installs
    assert not [line for line in installs if "[" in line]  # no extras in the image
