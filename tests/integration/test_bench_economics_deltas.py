"""bench/economics_deltas.py at a small scale: it times the economics report with deltas pending and compacted
(the same totals: the bench checks it) and two writers of one summary key, moves every delta it made, and
leaves the data set as it found it. Times are reported, never asserted (but what the writers wait for)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from bench import economics_deltas
from bench import generate as gen
from infra.db import create_engine
from tests.conftest import test_settings

STATE = """SELECT (SELECT count(*) FROM purchases) AS purchases, (SELECT sum(revenue) FROM economics_days) AS revenue,
                  (SELECT count(*) FROM economics_day_deltas) AS pending"""


async def test_the_deltas_bench_runs_and_cleans_up(
    fresh_database_url: Callable[[], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await fresh_database_url()
    monkeypatch.setattr(gen, "CHUNK", 1000)
    await gen.generate(url, 1000, progress=False, workers=0)
    engine = create_engine(url, test_settings())
    try:
        async with engine.connect() as conn:
            before = (await conn.execute(text(STATE))).one()
        got = await economics_deltas.run(1000, 300, 2, 90, writer_batches=1, url=url, workers=0)
        async with engine.connect() as conn:
            after = (await conn.execute(text(STATE))).one()
    finally:
        await engine.dispose()
    assert before.pending == 0  # generate's rebuild leaves none
    assert got["pending"] == got["moved"] == 300  # one delta row per INSERT, all of them compacted
    assert got["with_deltas"]["median_s"] > 0
    assert got["compacted"]["median_s"] > 0
    assert any("economics_day_deltas" in line for line in got["with_deltas"]["plan"])
    assert got["writers"]["size"] > 0
    assert got["writers"]["serial_s"] > 2 * economics_deltas.HOLD_S  # each transaction holds on that long
    assert got["writers"]["concurrent_s"] > economics_deltas.HOLD_S
    assert (after.purchases, after.revenue, after.pending) == (before.purchases, before.revenue, 0)
    md = economics_deltas.markdown(got)
    assert "300 deltas pending" in md
    assert "compacted" in md
