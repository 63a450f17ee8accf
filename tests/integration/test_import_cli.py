"""``tierwise import customers FILE.csv`` as an operator runs it (a subprocess against a real database): header
mapping, a dry run that writes nothing, all or nothing, ``--partial``, the idempotent re-run, a partner's
import, the report file, the exit status; and the rules of a row (domain/imports.py) without a database."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from domain import imports as rules
from domain.errors import Invalid

FILE = """Kundennr,Name,E-Mail,Phone,DOB,Street,ZIP,City,Country,Notes
K-1,Jonas Weber,Jonas.Weber@Example.de,030 1234567,1984-07-01,Torstr. 5,10119,Berlin,de,VIP
K-2,Marta Olsen,marta@example.org,,1979-03-14,,,,,
K-3,,lea@example,,01.02.1990,,,Munich,,
"""
MAP = ["--map", "Kundennr=external_ref", "--map", "Notes=-"]


async def tierwise(url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "TIERWISE_DATABASE_URL": url, "TIERWISE_RUN_WORKER": "false"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.edge.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def rows(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def test_the_import_command_end_to_end(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(FILE, encoding="utf-8")
    # an unknown column: the file is refused as a whole (exit 2), nothing read further
    code, _, err = await tierwise(database_url, "import", "customers", str(path), "--dry-run")
    assert code == 2
    assert "unknown column 'Kundennr'" in err
    assert "the file needs the column(s) external_ref" in err
    # a dry run: every problem by row, nothing written
    code, out, _ = await tierwise(database_url, "import", "customers", str(path), *MAP, "--dry-run")
    assert code == 1
    assert out.splitlines()[0].startswith("3 rows: 2 valid, 1 invalid; 0 created")
    assert "dry run" in out
    assert "row 3: name: a name is required" in out
    assert "row 3: birth_date: a birth date is written YYYY-MM-DD" in out
    # all or nothing: the bad row stops the whole file
    code, out, _ = await tierwise(
        database_url, "import", "customers", str(path), *MAP, "--report", str(tmp_path / "r.csv")
    )
    assert code == 1
    assert "nothing written" in out
    assert await rows(database_url, "SELECT 1 FROM customers") == []
    report = list(csv.DictReader((tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()))
    assert {(r["row"], r["kind"], r["field"]) for r in report} >= {("3", "error", "name"), ("3", "error", "email")}
    # --partial: the valid rows, normalised and encrypted like createCustomer, tiered in the same transaction
    code, out, err = await tierwise(database_url, "import", "customers", str(path), *MAP, "--partial")
    assert code == 1, err
    assert "2 created" in out, err
    assert "; written" in out
    stored = await rows(
        database_url,
        "SELECT external_ref, name, partner_id, email LIKE 'tw2:%' AS sealed, email_bidx IS NOT NULL AS indexed,"
        " tier_code IS NOT NULL AS tiered FROM customers ORDER BY external_ref",
    )
    assert [
        (r["external_ref"], r["name"], r["partner_id"], r["sealed"], r["indexed"], r["tiered"]) for r in stored
    ] == [
        ("K-1", "Jonas Weber", None, True, True, True),
        ("K-2", "Marta Olsen", None, True, True, True),
    ]
    # the same file again changes nothing
    before = await rows(database_url, "SELECT id, version, updated_at FROM customers ORDER BY id")
    code, out, _ = await tierwise(database_url, "import", "customers", str(path), *MAP, "--partial")
    assert "0 created, 2 existing" in out
    assert await rows(database_url, "SELECT id, version, updated_at FROM customers ORDER BY id") == before
    # a partner's import: its own customers (the same references are other customers there); an unknown partner
    code, _, err = await tierwise(database_url, "import", "customers", str(path), *MAP, "--partner", "Nobody Ltd")
    assert code == 2
    assert "no partner named 'Nobody Ltd'" in err
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO partners (name) VALUES ('Northwind Shop')")
    finally:
        await conn.close()
    code, out, _ = await tierwise(
        database_url, "import", "customers", str(path), *MAP, "--partial", "--partner", "Northwind Shop"
    )
    assert "2 created" in out
    assert "likely duplicates" in out
    owned = await rows(
        database_url,
        "SELECT count(*) AS n FROM customers c JOIN partners p ON p.id = c.partner_id WHERE p.name = 'Northwind Shop'",
    )
    assert owned[0]["n"] == 2


def test_a_header_maps_by_name_alias_and_mapping() -> None:
    assert rules.map_header(["External Ref", "Full Name", "e-mail", "ZIP", "dob"]) == {
        0: "external_ref",
        1: "name",
        2: "email",
        3: "address_postal_code",
        4: "birth_date",
    }
    assert rules.map_header(["id", "n", "x"], {"id": "externalRef", "n": "name", "x": "-"}) == {
        0: "external_ref",
        1: "name",
    }
    with pytest.raises(Invalid) as refused:
        rules.map_header(["name", "email", "E-Mail"], {"missing": "name"})
    messages = [e.message for e in refused.value.errors]
    assert any("lacks" in m for m in messages)
    assert any("two columns of the file map to email" in m for m in messages)
    assert any("needs the column(s) external_ref" in m for m in messages)


def test_a_row_is_checked_with_the_rules_of_create_customer() -> None:
    today = dt.date(2026, 12, 6)
    values, problems = rules.check_row(
        7,
        {
            "external_ref": " K-7 ",
            "name": "  Ana   Lima ",
            "phone": "030 1234567",
            "address_city": "Berlin",
            "address_country": "de",
        },
        default_region="DE",
        today=today,
    )
    assert problems == []
    assert values == {
        "external_ref": "K-7",
        "name": "Ana Lima",
        "phone": "+49301234567",
        "address": {"city": "Berlin", "country": "DE"},
    }
    values, problems = rules.check_row(8, {"name": "X1", "birth_date": "2999-01-01"}, default_region="DE", today=today)
    assert values is None
    assert {(p.row, p.field) for p in problems} == {(8, "external_ref"), (8, "birth_date")}
    assert rules.repeated_refs([(1, "a"), (2, "b"), (3, "a")]) == [
        rules.RowProblem(3, "external_ref", "the external reference of row 1 again")
    ]
