"""The name-search functions of migration 0017 (``tw_name_*``): with pg_trgm they wrap its operators (and the
planner inlines them, so the GIN trigram index serves the search); without it (the embedded development
server ships no contrib modules) they are plain SQL. The plain ones are compared here with pg_trgm's on the
same inputs: the trigrams and the similarity are the same, the word similarity an approximation that finds
the same typos."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

MIGRATION = Path(__file__).resolve().parents[2] / "infra/migrations/versions/0017_work_queues_import.py"
PAIRS = [
    ("Hana Berg", "Hanna Berg"),
    ("Lovlace", "Ada Quintessa Lovelace"),
    ("benita roamn", "Benita Roman"),
    ("Müller-Lüdenscheidt", "Mueller Luedenscheidt"),
    ("Jean-Luc O'Neill", "jean luc oneill"),
    ("X", "Rita Rhythm"),
    ("", "Anyone"),
    ("杜璐", "杜璐"),
]


def migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("m0017", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def conn(database_url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(database_url)
    await connection.execute("CREATE SCHEMA plain")
    await connection.execute("SET search_path = plain, public")
    for statement in migration().WITHOUT_PG_TRGM.split(";"):
        if statement.strip():
            await connection.execute(statement)
    yield connection
    await connection.close()


async def test_the_plain_sql_functions_agree_with_pg_trgm(conn: asyncpg.Connection) -> None:
    for a, b in PAIRS:
        plain = await conn.fetchval("SELECT plain.tw_name_similarity($1, $2)", a, b)
        trgm = await conn.fetchval("SELECT public.similarity($1, $2)", a, b)
        assert plain == pytest.approx(trgm, abs=1e-6), (a, b, plain, trgm)
        assert await conn.fetchval("SELECT plain.tw_names_close($1, $2)", a, b) == await conn.fetchval(
            "SELECT $1 OPERATOR(public.%) $2", a, b
        ), (a, b)
    # the word similarity is approximated (the share of the term's trigrams in the name): the same typos match
    await conn.execute("SET pg_trgm.word_similarity_threshold = 0.4")
    for term, name, matches in (
        ("Lovlace", "Ada Quintessa Lovelace", True),
        ("benita roamn", "Benita Roman", True),
        ("Rita Rhythm", "Rita Rhythm", True),
        ("Xzqwv", "Rita Rhythm", False),
        ("Paula Northwnd", "Paula Northwind", True),
    ):
        assert await conn.fetchval("SELECT plain.tw_name_matches($1, $2)", term, name) is matches, (term, name)
        assert await conn.fetchval("SELECT public.tw_name_matches($1, $2)", term, name) is matches, (term, name)
    assert await conn.fetchval("SELECT plain.tw_name_score('Rita Rhythm', 'Rita Rhythm')") == 1.0


async def test_with_pg_trgm_the_search_uses_the_trigram_index(conn: asyncpg.Connection) -> None:
    await conn.execute("SET search_path = public")
    await conn.execute("INSERT INTO customers (name) SELECT md5(g::text) FROM generate_series(1, 20000) g")
    await conn.execute("ANALYZE customers")
    # on a small table a scan may be cheaper: what is checked is that the index can serve the condition
    await conn.execute("SET enable_seqscan = off")
    await conn.execute("DROP INDEX ix_customers_name_id")  # (this test's own database) the other index on name
    plan = "\n".join(
        r[0] for r in await conn.fetch("EXPLAIN SELECT id FROM customers WHERE tw_name_matches('Custmer 17', name)")
    )
    # inlined into pg_trgm's operator, which the trigram index answers
    assert "Index Cond: (name %> 'Custmer 17'::text)" in plan, plan
    assert "ix_customers_name_trgm" in plan, plan
