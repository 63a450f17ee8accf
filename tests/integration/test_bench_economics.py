"""bench/economics.py at a small scale: it times the economics report over generated data, gives the plan of
its statement, ingests uses and refunds through the API, and leaves the data set as it found it. Times are
reported, never asserted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from bench import economics
from bench import generate as gen
from infra.db import create_engine
from tests.conftest import test_settings

STATE = """SELECT (SELECT count(*) FROM refunds) AS refunds, (SELECT count(*) FROM benefit_redemptions) AS uses,
                  (SELECT sum(lifetime_spend) FROM customer_metrics) AS spend,
                  (SELECT count(*) FROM tier_changes) AS changes"""


async def test_the_economics_bench_runs_and_cleans_up(
    fresh_database_url: Callable[[], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await fresh_database_url()
    monkeypatch.setattr(gen, "CHUNK", 1000)
    # the bench's app runs with the production settings; gc.freeze() after its startup would outlive the test
    monkeypatch.setenv("TIERWISE_GC_FREEZE", "false")
    await gen.generate(url, 1000, progress=False, workers=0)
    engine = create_engine(url, test_settings())
    try:
        async with engine.connect() as conn:
            before = (await conn.execute(text(STATE))).one()
        got = await economics.run(1000, 2, 90, 1, url=url, workers=0)
        async with engine.connect() as conn:
            after = (await conn.execute(text(STATE))).one()
    finally:
        await engine.dispose()
    assert len(got["report_samples"]) == 2
    assert got["report_median_s"] > 0
    assert "customers" in got["plan"]
    assert "purchases" in got["plan"]
    assert 0 < got["uses"] <= economics.BATCH  # the customers of a tier with free shipping, up to one batch
    assert got["refunds"] == economics.BATCH
    assert got["uses_per_s"] > 0
    assert got["refunds_per_s"] > 0
    # what the ingest wrote is gone, the metrics are as they were (a refund of a cent moves no tier here)
    assert (after.refunds, after.uses, after.spend) == (before.refunds, before.uses, before.spend)
    md = economics.markdown(got)
    assert "tierEconomics, last 90 days" in md
    assert "recordRefunds" in md
