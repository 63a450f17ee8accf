"""Encryption at rest, end to end, on real PostgreSQL: a pg_dump of a seeded database holds no sensitive
plaintext while the API still serves it; key rotation is batched, resumable and loses nothing; a
token moved to another column, or to the same column of another row, does not decrypt (the API answers
that field null with DATA_INTEGRITY); version 1 tokens are upgraded online to row-bound version 2;
equality filters work through blind indexes; the migration encrypts existing plaintext rows and its
downgrade decrypts them back."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.edge import cli
from demo.seed import seed
from domain.errors import DataIntegrity
from domain.events import EventType, new_secret
from infra import crypto
from infra import tables as t
from infra.crypto import DecryptionError, Keyring
from infra.db import create_engine
from infra.keyrotation import key_status, rotate, v1_status
from infra.migrate import alembic_config, upgrade
from infra.repos import events as events_repo
from tests.api.helpers import (
    TRANSITION_COMPLAINT,
    create_customer,
    error_codes,
    ok,
    open_complaint,
    payload,
    raw_id,
)
from tests.conftest import Api, running_api, test_settings

FreshUrl = Callable[[], Awaitable[str]]
CUSTOMERS = 300
K1, K2, BIDX = (base64.b64encode(os.urandom(32)).decode() for _ in range(3))

CUSTOMER_FIELDS = "id name email phone nationalId birthDate address { line1 line2 postalCode city country }"
KNOWN = {
    "name": "Ada Lovelace",
    "email": "ada.lovelace.at.rest@analytical.example",
    "phone": "+49 151 2345 6789",
    "nationalId": "XQ-7741-ZZ",
    "birthDate": "1975-12-10",
    "address": {"line1": "12 Marylebone Crescent", "postalCode": "NW1 4AB", "city": "Londonderry", "country": "GB"},
}
KNOWN_DESCRIPTION = "The difference engine arrived with a cracked brass gear wheel #9081726354"
KNOWN_NOTE = "Agent note: Ada called from her landline, replacement gear wheel #5566778899 promised"


@pytest.fixture
def keyring_restored() -> Iterator[None]:
    """Tests here reconfigure the process-wide keyring; put the previous one back afterwards."""
    saved = crypto._current
    yield
    crypto._current = saved


def _pg_dump() -> str:
    found = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    assert os.path.exists(found), "pg_dump not found"
    return found


async def _dump(url: str) -> str:
    plain_url = url.replace("postgresql+asyncpg://", "postgresql://")
    result = await asyncio.to_thread(
        subprocess.run, [_pg_dump(), "--no-owner", "--data-only", plain_url], capture_output=True, text=True, check=True
    )
    assert "COPY public.customers" in result.stdout
    return result.stdout


async def _plaintexts(engine: AsyncEngine) -> dict[str, set[str]]:
    """Every sensitive value, decrypted through the column types (what the dump must not contain)."""
    kinds = ("email", "phone", "national_id", "birth_date", "line", "text", "note", "secret")
    out: dict[str, set[str]] = {k: set() for k in kinds}
    async with engine.connect() as conn:
        rows = (await conn.execute(select(t.customers))).all()
        for r in rows:
            for field in ("email", "phone", "national_id"):
                if getattr(r, field) is not None:
                    out[field].add(getattr(r, field))
            if r.birth_date is not None:
                out["birth_date"].add(r.birth_date.isoformat())
            for line in ("line1", "line2"):
                if r.address and r.address.get(line):
                    out["line"].add(r.address[line])
        out["text"] |= set((await conn.execute(select(t.complaints.c.description))).scalars())
        out["text"] |= {x for x in (await conn.execute(select(t.survey_answers.c.text))).scalars() if x is not None}
        out["note"] |= {x for x in (await conn.execute(select(t.complaint_events.c.note))).scalars() if x is not None}
        endpoints = (await conn.execute(select(t.webhook_endpoints.c.id, t.webhook_endpoints.c.secret))).all()
        out["secret"] |= {events_repo.secret_of(e.secret, e.id) for e in endpoints}
    return out


async def _raw(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


@contextlib.asynccontextmanager
async def _seeded(url: str, customers: int = CUSTOMERS, *, webhook: bool = True) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url, test_settings())
    try:
        await seed(engine, customers, seed=11, progress=False)
        if webhook:  # a webhook endpoint: its secret is encrypted too
            async with engine.begin() as conn:
                await events_repo.create_endpoint(
                    conn,
                    url="https://hooks.example.com/tierwise",
                    event_types=[EventType.CUSTOMER_ERASED.value],
                    secret=new_secret(),
                    partner_id=None,
                    description="seeded by the encryption tests",
                    actor="test",
                )
        yield engine
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- (a) the dump test


async def test_a_dump_of_a_seeded_database_holds_no_sensitive_plaintext_but_the_api_serves_it(
    fresh_database_url: FreshUrl,
) -> None:
    url = await fresh_database_url()
    async with _seeded(url) as engine, running_api(url) as api:
        admin = await api.user("root", "admin")
        known = await create_customer(api, admin, select=CUSTOMER_FIELDS, **KNOWN)
        complaint = await open_complaint(api, admin, known["id"], description=KNOWN_DESCRIPTION)
        move = {"id": complaint["id"], "expectedVersion": complaint["version"], "to": "OPEN", "assignee": "bob"}
        ok(
            await api.gql(admin, TRANSITION_COMPLAINT, {"input": {**move, "note": KNOWN_NOTE}}),
            "transitionComplaint",
        )
        values = await _plaintexts(engine)
        # The seed made what the dump must hide: contact data, birth dates, addresses, free text.
        assert len(values["email"]) > CUSTOMERS * 0.9
        assert len(values["phone"]) > CUSTOMERS * 0.8
        assert len(values["national_id"]) > CUSTOMERS * 0.5
        assert len(values["birth_date"]) > CUSTOMERS * 0.8
        assert len(values["line"]) > 50
        assert len(values["text"]) > 50
        assert len(values["note"]) > 20  # the seed's event notes (an agent's words on every transition)
        assert all(d < "2015" for d in values["birth_date"])  # cannot be confused with the dump's timestamps
        assert KNOWN["email"] in values["email"]
        assert KNOWN_DESCRIPTION in values["text"]
        assert KNOWN_NOTE in values["note"]
        assert len(values["secret"]) == 1

        dump = await _dump(url)
        # Random ciphertext (base64) and blind indexes (hex) can hold a short value such as
        # "Bajo" by chance; a leak is a value found outside them.
        readable = re.sub(r"tw[12]:[A-Za-z0-9]+:[A-Za-z0-9_=-]+|\b[0-9a-f]{64}\b", " ", dump)
        leaked = {kind: sorted(v for v in vs if v in readable) for kind, vs in values.items()}
        assert leaked == {kind: [] for kind in values}, leaked
        assert "+4915123456789" not in dump
        assert "12 Marylebone Crescent" not in dump
        assert "1975-12-10" not in dump
        # The ciphertext is there instead, row-bound (tw2), under the development key id, with the blind indexes.
        assert len(re.findall(r"tw2:dev1:[A-Za-z0-9_=-]{40,}", dump)) > 4 * CUSTOMERS
        assert "tw1:" not in dump  # every write path binds the row
        [row] = await _raw(
            engine,
            "SELECT email, birth_date, address, email_bidx FROM customers WHERE id = :id",
            id=raw_id(known["id"]),
        )
        assert row.email.startswith("tw2:dev1:")
        assert row.birth_date.startswith("tw2:dev1:")
        assert row.address.startswith("tw2:dev1:")
        assert re.fullmatch(r"[0-9a-f]{64}", row.email_bidx)
        notes = await _raw(
            engine, "SELECT note FROM complaint_events WHERE complaint_id = :id", id=raw_id(complaint["id"])
        )
        assert [n.note is None or n.note.startswith("tw2:dev1:") for n in notes] == [True, True]
        assert any(n.note for n in notes)

        # The API (as admin) serves every value decrypted, the known customer exactly as written.
        body = await api.gql(admin, f'{{ customer(id: "{known["id"]}") {{ {CUSTOMER_FIELDS} }} }}')
        served = body["data"]["customer"]
        assert served["email"] == KNOWN["email"]
        assert served["phone"] == "+4915123456789"
        assert served["nationalId"] == KNOWN["nationalId"]
        assert served["birthDate"] == KNOWN["birthDate"]
        assert served["address"] == {**KNOWN["address"], "line2": None}
        body = await api.gql(
            admin, f"{{ customers(first: 100, orderBy: NAME) {{ edges {{ node {{ {CUSTOMER_FIELDS} }} }} }} }}"
        )
        assert "errors" not in body, body
        nodes = [e["node"] for e in body["data"]["customers"]["edges"]]
        assert len(nodes) == 100
        assert {n["email"] for n in nodes if n["email"]} <= values["email"]
        assert {n["birthDate"] for n in nodes if n["birthDate"]} <= values["birth_date"]
        assert {n["address"]["line1"] for n in nodes} <= values["line"]
        body = await api.gql(admin, "{ complaints(first: 50) { edges { node { description } } } }")
        assert "errors" not in body, body
        descriptions = {e["node"]["description"] for e in body["data"]["complaints"]["edges"]}
        assert descriptions
        assert descriptions <= values["text"]
        body = await api.gql(admin, f'{{ complaint(id: "{complaint["id"]}") {{ events {{ note }} }} }}')
        assert "errors" not in body, body
        assert [e["note"] for e in body["data"]["complaint"]["events"]] == [None, KNOWN_NOTE]


# ---------------------------------------------------------------- (b) rotation


def _settings_env(monkeypatch: pytest.MonkeyPatch, url: str, keys: str, current: str | None = None) -> None:
    monkeypatch.setenv("TIERWISE_DATABASE_URL", url)
    monkeypatch.setenv("TIERWISE_ENCRYPTION_KEYS", keys)
    monkeypatch.setenv("TIERWISE_BLIND_INDEX_KEY", BIDX)
    if current:
        monkeypatch.setenv("TIERWISE_ENCRYPTION_KEY_ID", current)
    else:
        monkeypatch.delenv("TIERWISE_ENCRYPTION_KEY_ID", raising=False)


def _rotated(out: str) -> int:
    found = re.search(r"re-encrypted (\d+) values under key k2", out)
    assert found, out
    return int(found.group(1))


def _status_lines(out: str) -> dict[str, str]:
    return {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines() if line.split()[0].count(".") == 1}


async def test_rotation_is_batched_resumable_and_keeps_every_value(
    fresh_database_url: FreshUrl,
    keyring_restored: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = await fresh_database_url()
    crypto.configure(Keyring.parse(f"k1:{K1}", BIDX))
    async with _seeded(url, 120) as engine:
        before = await _plaintexts(engine)
        async with engine.connect() as conn:
            status = await key_status(conn)
        assert set(status) == {f"{a}.{b}" for a, b in crypto.ENCRYPTED_COLUMNS}
        assert all(set(counts) == {"k1"} for counts in status.values()), status
        n_values = sum(sum(counts.values()) for counts in status.values())

        # k2 becomes current (k1 stays configured to read the old values); one batch, then stop.
        both = Keyring.parse(f"k1:{K1},k2:{K2}", BIDX)
        crypto.configure(both)
        first = await rotate(engine, batch_size=25, max_batches=1)
        assert (first.batches, first.finished) == (1, False)
        assert 25 <= first.total <= 5 * 25  # one batch: 25 customers, up to five encrypted fields each
        async with engine.connect() as conn:
            mid = await key_status(conn)
        assert mid["customers.email"].get("k2", 0) == first.values_rotated["customers.email"] > 0
        assert mid["customers.email"]["k1"] > 0
        assert sum(sum(c.values()) for c in mid.values()) == n_values

        # The API (current key k2) reads the half-rotated data and writes under k2 meanwhile (online).
        async with running_api(
            url, test_settings(encryption_keys=SecretStr(f"k1:{K1},k2:{K2}"), blind_index_key=SecretStr(BIDX))
        ) as api:
            admin = await api.user("root", "admin")
            body = await api.gql(
                admin, "{ customers(first: 100) { edges { node { email birthDate address { city } } } } }"
            )
            assert "errors" not in body, body
            created = await create_customer(
                api, admin, select="id email", name="During Rotation", email="mid@rot.example"
            )
        [row] = await _raw(engine, "SELECT email FROM customers WHERE id = :id", id=raw_id(created["id"]))
        assert row.email.startswith("tw2:k2:")

        # The CLI resumes (a few batches at a time, then to the end); nothing is re-encrypted twice.
        _settings_env(monkeypatch, url, f"k1:{K1},k2:{K2}")
        assert await asyncio.to_thread(cli.main, ["keys", "rotate", "--batch-size", "40", "--max-batches", "2"]) == 0
        out = capsys.readouterr().out
        assert "in 2 batches" in out
        assert "stopped early (resume: run again)" in out
        second = _rotated(out)
        assert await asyncio.to_thread(cli.main, ["keys", "rotate", "--batch-size", "40"]) == 0
        out = capsys.readouterr().out
        assert "0 changed concurrently (left as written); done" in out
        # Every k1 value was re-encrypted exactly once over the three runs.
        assert first.total + second + _rotated(out) == n_values
        again = await rotate(engine, keyring=both, batch_size=40)
        assert (again.total, again.finished) == (0, True)  # nothing left: a re-run does nothing

        assert await asyncio.to_thread(cli.main, ["keys", "status"]) == 0
        lines = _status_lines(capsys.readouterr().out)
        for table, column in crypto.ENCRYPTED_COLUMNS:
            assert re.fullmatch(r"k2: \d+; version 1 tokens left: 0", lines[f"{table}.{column}"]), lines
        async with engine.connect() as conn:
            after_status = await key_status(conn)
        assert sum(sum(c.values()) for c in after_status.values()) == n_values + 1  # + the customer made meanwhile

        # Old key gone: everything still decrypts to the same plaintext.
        crypto.configure(Keyring.parse(f"k2:{K2}", BIDX))
        after = await _plaintexts(engine)
        after["email"].discard("mid@rot.example")
        assert after == before
        # Blind indexes do not depend on the encryption keys: nothing to rotate there.
        [hit] = await _raw(
            engine,
            "SELECT count(*) AS n FROM customers WHERE email_bidx = :b",
            b=crypto.current().blind_index("email", sorted(before["email"])[0]),
        )
        assert hit.n == 1


async def test_a_value_under_a_key_no_longer_configured_fails_with_a_clear_error(
    fresh_database_url: FreshUrl, keyring_restored: None
) -> None:
    url = await fresh_database_url()
    crypto.configure(Keyring.parse(f"k1:{K1}", BIDX))
    async with _seeded(url, 20) as engine:
        crypto.configure(Keyring.parse(f"k2:{K2}", BIDX))
        with pytest.raises(
            DecryptionError, match=r"key id 'k1', which is not in TIERWISE_ENCRYPTION_KEYS \(known: k2\)"
        ):
            await rotate(engine, batch_size=10)
        async with engine.connect() as conn:
            assert all(set(c) <= {"k1"} for c in (await key_status(conn)).values())  # nothing written


# ---------------------------------------------------------------- (c) tampering


async def test_a_token_copied_to_another_column_fails_to_decrypt(api: Api) -> None:
    admin = await api.user("root", "admin")
    a = await create_customer(
        api, admin, select="id", name="Alice", email="alice@tamper.example", phone="+4915111111111"
    )
    b = await create_customer(api, admin, select="id", name="Bob", email="bob@tamper.example", phone="+4915122222222")
    async with api.services.engine.begin() as conn:
        await conn.execute(
            text("UPDATE customers SET phone = (SELECT email FROM customers WHERE id = :a) WHERE id = :b"),
            {"a": raw_id(a["id"]), "b": raw_id(b["id"])},
        )
    async with api.services.engine.connect() as conn:
        [phone] = (await conn.execute(select(t.customers.c.phone).where(t.customers.c.id == raw_id(b["id"])))).one()
        assert isinstance(phone, DataIntegrity)  # read as an integrity failure, never as a value
        # A plaintext written behind the application's back is refused too, never served as is.
        await conn.execute(
            text("UPDATE customers SET email = 'eve@plain.example' WHERE id = :b"), {"b": raw_id(b["id"])}
        )
        [email] = (await conn.execute(select(t.customers.c.email).where(t.customers.c.id == raw_id(b["id"])))).one()
        assert isinstance(email, DataIntegrity)
        assert "eve@plain.example" not in str(email)
        await conn.rollback()
    # The API answers that field null with DATA_INTEGRITY at its path, the rest of the customer as usual.
    body = await api.gql(admin, f'{{ customer(id: "{b["id"]}") {{ name phone }} }}')
    assert body["data"] == {"customer": {"name": "Bob", "phone": None}}
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [("DATA_INTEGRITY", ["customer", "phone"])]
    body = await api.gql(admin, f'{{ customer(id: "{a["id"]}") {{ email phone }} }}')
    assert body["data"]["customer"] == {"email": "alice@tamper.example", "phone": "+4915111111111"}


SWAP_FIELDS = "name email phone description"


async def _read_pair(api: Api, token: str, ids: tuple[str, str], *, directive: str = "") -> dict[str, Any]:
    """Both customers (and their complaints' descriptions) through the API, one request."""
    fields = (
        f"name email{directive} phone birthDate address {{ city }}"
        " complaints(first: 5) { edges { node { description } } }"
    )
    query = f'{{ a: customer(id: "{ids[0]}") {{ {fields} }} b: customer(id: "{ids[1]}") {{ {fields} }} }}'
    return await api.gql(token, query)


async def test_a_ciphertext_swapped_between_two_rows_is_never_served(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone who can write to the database swaps two customers' e-mail tokens (and two complaints'
    descriptions) in SQL. Version 1 tokens (column-bound) would decrypt in each other's row; version 2
    tokens are bound to their row: each swapped field is null with DATA_INTEGRITY at its path, logged,
    and everything else of the request is served."""
    admin = await api.user("root", "admin")
    a = await create_customer(
        api,
        admin,
        select="id",
        name="Ann Swap",
        email="ann@swap.example",
        phone="+4915133333333",
        birthDate="1961-01-01",
        address={"line1": "1 Ann Street", "postalCode": "11111", "city": "Annaburg", "country": "DE"},
    )
    b = await create_customer(
        api,
        admin,
        select="id",
        name="Ben Swap",
        email="ben@swap.example",
        phone="+4915144444444",
        birthDate="1972-02-02",
        address={"line1": "2 Ben Road", "postalCode": "22222", "city": "Benhausen", "country": "DE"},
    )
    ka = await open_complaint(api, admin, a["id"], description="Ann's parcel #111 never came")
    kb = await open_complaint(api, admin, b["id"], description="Ben's invoice INV-222 is wrong")
    ids = (a["id"], b["id"])
    before = await _read_pair(api, admin, ids)
    assert "errors" not in before, before
    assert before["data"]["a"]["email"] == "ann@swap.example"

    async with api.services.engine.begin() as conn:
        swap = "UPDATE {t} x SET {c} = y.{c} FROM {t} y WHERE (x.id, y.id) IN ((:a, :b), (:b, :a))"
        for column in ("email", "birth_date", "address"):
            await conn.execute(text(swap.format(t="customers", c=column)), {"a": raw_id(a["id"]), "b": raw_id(b["id"])})
        await conn.execute(
            text(swap.format(t="complaints", c="description")), {"a": raw_id(ka["id"]), "b": raw_id(kb["id"])}
        )
        stored = (
            await conn.execute(
                text("SELECT id, email FROM customers WHERE id IN (:a, :b)"),
                {"a": raw_id(a["id"]), "b": raw_id(b["id"])},
            )
        ).all()
        assert all(r.email.startswith("tw2:") for r in stored)

    caplog.set_level("ERROR", logger="tierwise.crypto")
    # The compiled path (customer is a fast-path root) and strawberry's (a directive sends it there).
    for directive in ("", " @include(if: true)"):
        body = await _read_pair(api, admin, ids, directive=directive)
        data = body["data"]
        assert (data["a"]["name"], data["a"]["phone"]) == ("Ann Swap", "+4915133333333")
        assert (data["b"]["name"], data["b"]["phone"]) == ("Ben Swap", "+4915144444444")
        for who in ("a", "b"):
            assert (data[who]["email"], data[who]["birthDate"], data[who]["address"]) == (None, None, None)
        assert [e["node"]["description"] for e in data["a"]["complaints"]["edges"]] == [None]
        assert [e["node"]["description"] for e in data["b"]["complaints"]["edges"]] == [None]
        errors = sorted((tuple(e["path"]), e["extensions"]["code"]) for e in body["errors"])
        assert errors == sorted(
            [
                *((("a", f), "DATA_INTEGRITY") for f in ("email", "birthDate", "address")),
                *((("b", f), "DATA_INTEGRITY") for f in ("email", "birthDate", "address")),
                (("a", "complaints", "edges", 0, "node", "description"), "DATA_INTEGRITY"),
                (("b", "complaints", "edges", 0, "node", "description"), "DATA_INTEGRITY"),
            ]
        ), body["errors"]
        served = str(body)
        secrets = ("ann@swap.example", "ben@swap.example", "#111", "INV-222", "1961", "1972", "Annaburg", "Benhausen")
        for plaintext in secrets:
            assert plaintext not in served
    logged = [r.getMessage() for r in caplog.records if r.name == "tierwise.crypto"]
    assert any("DATA INTEGRITY: customers.email of row" in m and str(raw_id(a["id"])) in m for m in logged), logged
    assert not [m for m in logged if "swap.example" in m]  # the log names the row, never a value

    # A role that sees the e-mail masked gets the same error, not a mask of someone else's address.
    agent = await api.user("agent-swap", "support_agent")
    body = await api.gql(agent, f'{{ customer(id: "{a["id"]}") {{ name email birthDate address {{ city }} }} }}')
    assert body["data"]["customer"] == {"name": "Ann Swap", "email": None, "birthDate": None, "address": None}
    assert error_codes(body) == ["DATA_INTEGRITY"] * 3, body
    assert "ben" not in str(body["data"])
    # The export names the unreadable column instead of a value.
    exported = (await api.gql(admin, "query($id: ID!) { exportCustomerData(id: $id) }", {"id": a["id"]}))["data"][
        "exportCustomerData"
    ]
    assert exported["customer"]["email"] is None
    assert exported["dataIntegrityErrors"] == [
        "complaints.description",
        "customers.address",
        "customers.birth_date",
        "customers.email",
    ]
    assert "ben@swap.example" not in str(exported)

    # Swapped back, both read as before: nothing was lost, only refused.
    async with api.services.engine.begin() as conn:
        for column in ("email", "birth_date", "address"):
            await conn.execute(text(swap.format(t="customers", c=column)), {"a": raw_id(a["id"]), "b": raw_id(b["id"])})
        await conn.execute(
            text(swap.format(t="complaints", c="description")), {"a": raw_id(ka["id"]), "b": raw_id(kb["id"])}
        )
    assert await _read_pair(api, admin, ids) == before


MERGE = """mutation($s: ID!, $d: ID!) { mergeCustomers(survivorId: $s, duplicateId: $d) {
    merge { filledFields } survivor { phone } userErrors { field code message } } }"""


async def test_a_merge_never_moves_a_value_that_fails_its_check_and_re_encrypts_the_rest(api: Api) -> None:
    admin = await api.user("root", "admin")
    survivor = await create_customer(api, admin, select="id", name="Dee Dup", email="dee@dup.example")
    duplicate = await create_customer(
        api, admin, select="id", name="Dee Dup", email="dee@dup.example", phone="+4915155555555"
    )
    other = await create_customer(api, admin, select="id", name="Otto Other", phone="+4915166666666")
    swap = "UPDATE customers x SET phone = y.phone FROM customers y WHERE (x.id, y.id) IN ((:a, :b), (:b, :a))"
    params = {"a": raw_id(duplicate["id"]), "b": raw_id(other["id"])}
    async with api.services.engine.begin() as conn:
        await conn.execute(text(swap), params)
    result = payload(await api.gql(admin, MERGE, {"s": survivor["id"], "d": duplicate["id"]}), "mergeCustomers")
    assert [e["code"] for e in result["userErrors"]] == ["DATA_INTEGRITY"]
    assert "+4915166666666" not in str(result)
    [row] = await _raw(
        api.services.engine, "SELECT phone, merged_into_id FROM customers WHERE id = :id", id=raw_id(duplicate["id"])
    )
    assert row.merged_into_id is None  # nothing was merged
    [row] = await _raw(api.services.engine, "SELECT phone FROM customers WHERE id = :id", id=raw_id(survivor["id"]))
    assert row.phone is None  # nor filled

    async with api.services.engine.begin() as conn:
        await conn.execute(text(swap), params)  # put back: the merge goes through, the phone re-encrypted
    result = ok(await api.gql(admin, MERGE, {"s": survivor["id"], "d": duplicate["id"]}), "mergeCustomers")
    assert result["merge"]["filledFields"] == ["phone"]
    assert result["survivor"]["phone"] == "+4915155555555"
    [filled] = await _raw(api.services.engine, "SELECT phone FROM customers WHERE id = :id", id=raw_id(survivor["id"]))
    [moved_from] = await _raw(
        api.services.engine, "SELECT phone FROM customers WHERE id = :id", id=raw_id(duplicate["id"])
    )
    assert filled.phone != moved_from.phone  # a new token, bound to the survivor's row
    assert crypto.current().decrypt(filled.phone, "customers.phone", raw_id(survivor["id"])) == "+4915155555555"


# ---------------------------------------------------------------- (c2) upgrading version 1 tokens


async def _downgrade_to_v1(engine: AsyncEngine, ring: Keyring) -> int:
    """Rewrite every token as a version 1 token of the same plaintext (what a database encrypted before
    row binding holds), through raw SQL; returns how many."""
    n = 0
    async with engine.begin() as conn:
        for table, column in crypto.ENCRYPTED_COLUMNS:
            rows = (await conn.execute(text(f"SELECT id, {column} AS v FROM {table} WHERE {column} IS NOT NULL"))).all()
            name = f"{table}.{column}"
            for r in rows:
                legacy = ring.encrypt(ring.decrypt(r.v, name, r.id), name)  # no row id: tw1
                await conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE id = :id"), {"v": legacy, "id": r.id})
            n += len(rows)
    return n


class _RacingKeyring(Keyring):
    """A keyring that, while the rotation holds the batch it read, lets another writer change one value."""

    def __init__(self, ring: Keyring, url: str, victim: Any, new_token: str) -> None:
        self.__dict__.update(ring.__dict__)
        self.url, self.victim, self.new_token, self.raced = url, victim, new_token, False

    def reencrypt(self, token: str, column: str, row_id: Any) -> str:
        if not self.raced and column == "customers.email" and row_id == self.victim:
            import psycopg

            with psycopg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://"), autocommit=True) as c:
                c.execute("UPDATE customers SET email = %s WHERE id = %s", (self.new_token, self.victim))
            self.raced = True
        return super().reencrypt(token, column, row_id)


async def test_v1_tokens_are_upgraded_online_to_row_bound_v2(
    fresh_database_url: FreshUrl,
    keyring_restored: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = await fresh_database_url()
    ring = Keyring.parse(f"k1:{K1}", BIDX)
    crypto.configure(ring)
    async with _seeded(url, 80) as engine:
        before = await _plaintexts(engine)
        n_values = await _downgrade_to_v1(engine, ring)
        async with engine.connect() as conn:
            legacy = await v1_status(conn)
        assert sum(legacy.values()) == n_values
        assert all(legacy[f"{a}.{b}"] > 0 for a, b in crypto.ENCRYPTED_COLUMNS), legacy
        assert await _plaintexts(engine) == before  # v1 tokens read as before

        _settings_env(monkeypatch, url, f"k1:{K1}")
        assert await asyncio.to_thread(cli.main, ["keys", "status"]) == 0
        lines = _status_lines(capsys.readouterr().out)
        assert lines["customers.email"] == f"k1: {legacy['customers.email']}; version 1 tokens left: " + str(
            legacy["customers.email"]
        )

        # A concurrent write during the upgrade wins: the rotation leaves the value it did not read.
        [victim] = await _raw(engine, "SELECT id FROM customers WHERE email IS NOT NULL ORDER BY id LIMIT 1")
        written = ring.encrypt("written.meanwhile@race.example", "customers.email", victim.id)
        racing = _RacingKeyring(ring, url, victim.id, written)
        report = await rotate(engine, keyring=racing, batch_size=30)
        assert racing.raced
        assert report.finished
        assert report.skipped_concurrent == 1
        assert report.upgraded_v1 == report.total == n_values - 1
        [row] = await _raw(engine, "SELECT email FROM customers WHERE id = :id", id=victim.id)
        assert row.email == written

        async with engine.connect() as conn:
            assert sum((await v1_status(conn)).values()) == 0
            status = await key_status(conn)
        assert all(set(counts) == {"k1"} for counts in status.values()), status
        after = await _plaintexts(engine)
        assert "written.meanwhile@race.example" in after["email"]
        after["email"].discard("written.meanwhile@race.example")
        assert after == {**before, "email": after["email"]}
        assert after["email"] <= before["email"]
        assert len(before["email"] - after["email"]) <= 1  # only the victim's old address is gone

        # Every token is now bound to its row: one moved to another row no longer decrypts there.
        rows = await _raw(engine, "SELECT id, email FROM customers WHERE email IS NOT NULL ORDER BY id LIMIT 2")
        assert all(r.email.startswith("tw2:k1:") for r in rows)
        with pytest.raises(crypto.TokenMismatch):
            ring.decrypt(rows[0].email, "customers.email", rows[1].id)

        # A second run changes nothing (through the CLI, with its report).
        assert await asyncio.to_thread(cli.main, ["keys", "rotate", "--batch-size", "30"]) == 0
        out = capsys.readouterr().out
        assert "re-encrypted 0 values under key k1 (0 version 1 tokens upgraded to version 2)" in out
        assert "; done" in out
        assert await asyncio.to_thread(cli.main, ["keys", "status"]) == 0
        lines = _status_lines(capsys.readouterr().out)
        for table, column in crypto.ENCRYPTED_COLUMNS:
            assert lines[f"{table}.{column}"].endswith("; version 1 tokens left: 0"), lines


# ---------------------------------------------------------------- (d) blind indexes


FILTER = "query($f: CustomerFilter) { customers(first: 10, filter: $f) { totalCount edges { node { id name } } } }"


async def _found(api: Api, token: str, **f: str) -> list[str]:
    body = await api.gql(token, FILTER, {"f": f})
    assert "errors" not in body, body
    return [e["node"]["name"] for e in body["data"]["customers"]["edges"]]


async def test_equality_filters_go_through_blind_indexes(api: Api) -> None:
    admin = await api.user("root", "admin")
    ada = await create_customer(
        api,
        admin,
        select="id version",
        name="Ada  Lovelace",
        email="Ada.Lovelace@Example.ORG",
        phone="+49 151 2345 6789",
        nationalId="ab-123456",
        birthDate="1975-12-10",
    )
    await create_customer(api, admin, select="id", name="Charles Babbage", email="charles@example.org")

    assert await _found(api, admin, email="  ada.lovelace@EXAMPLE.org ") == ["Ada Lovelace"]
    assert await _found(api, admin, email="ada.lovelace@example.org") == ["Ada Lovelace"]
    assert await _found(api, admin, phone="0151 23456789") == ["Ada Lovelace"]  # national format, region DE
    assert await _found(api, admin, phone="+4915123456789") == ["Ada Lovelace"]
    assert await _found(api, admin, email="nobody@example.org") == []
    assert await _found(api, admin, email="charles@example.org") == ["Charles Babbage"]

    ring = crypto.current()
    [row] = await _raw(
        api.services.engine,
        "SELECT email_bidx, phone_bidx, national_id_bidx, name_dob_bidx FROM customers WHERE id = :id",
        id=raw_id(ada["id"]),
    )
    assert row.email_bidx == ring.blind_index("email", "ada.lovelace@example.org")
    assert row.phone_bidx == ring.blind_index("phone", "+4915123456789")
    assert row.national_id_bidx == ring.blind_index("national_id", "AB-123456")
    assert row.name_dob_bidx == ring.blind_index("name_dob", "ada lovelace|1975-12-10")
    # The planner finds the customer by the btree index on the blind index column.
    async with api.services.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            (
                await conn.execute(
                    text("EXPLAIN SELECT id FROM customers WHERE email_bidx = :b"), {"b": row.email_bidx}
                )
            ).scalars()
        )
    assert "ix_customers_email_bidx" in plan

    # Updates keep the indexes right: a new e-mail, then a new name (birth date taken from the row).
    update = """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
        customer { version } userErrors { field message } } }"""
    body = await api.gql(
        admin, update, {"input": {"id": ada["id"], "expectedVersion": ada["version"], "email": "countess@example.org"}}
    )
    version = ok(body, "updateCustomer")["customer"]["version"]
    assert await _found(api, admin, email="ada.lovelace@example.org") == []
    assert await _found(api, admin, email="COUNTESS@example.org") == ["Ada Lovelace"]
    body = await api.gql(
        admin, update, {"input": {"id": ada["id"], "expectedVersion": version, "name": "Augusta Ada King"}}
    )
    ok(body, "updateCustomer")
    [row] = await _raw(api.services.engine, "SELECT name_dob_bidx FROM customers WHERE id = :id", id=raw_id(ada["id"]))
    assert row.name_dob_bidx == ring.blind_index("name_dob", "augusta ada king|1975-12-10")
    # Removing a value removes its index.
    body = await api.gql(admin, update, {"input": {"id": ada["id"], "expectedVersion": version + 1, "phone": None}})
    ok(body, "updateCustomer")
    [row] = await _raw(
        api.services.engine, "SELECT phone, phone_bidx FROM customers WHERE id = :id", id=raw_id(ada["id"])
    )
    assert (row.phone, row.phone_bidx) == (None, None)


# ---------------------------------------------------------------- the migration on existing data


async def test_migration_encrypts_existing_plaintext_and_the_downgrade_restores_it(
    fresh_database_url: FreshUrl, keyring_restored: None
) -> None:
    url = await fresh_database_url()
    crypto.configure(Keyring.parse(f"k1:{K1}", BIDX))
    async with _seeded(url, 60, webhook=False) as engine:  # the downgrade drops webhook endpoints
        before = await _plaintexts(engine)
        all_bidx = "SELECT id, email_bidx, phone_bidx, national_id_bidx, name_dob_bidx FROM customers ORDER BY id"
        bidx_before = [tuple(r) for r in await _raw(engine, all_bidx)]
        assert all(any(r[i] is not None for r in bidx_before) for i in range(1, 5))  # every kind present
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0006")
        [row] = await _raw(
            engine, "SELECT count(*) AS n FROM customers WHERE email LIKE 'tw1:%' OR address::text LIKE 'tw1:%'"
        )
        assert row.n == 0
        [row] = await _raw(engine, "SELECT count(*) AS n FROM complaint_events WHERE note LIKE 'tw1:%'")
        assert row.n == 0
        plain_dump = await _dump(url)
        assert all(e in plain_dump for e in before["email"])  # a real deployment before 0007: plaintext
        [types] = await _raw(
            engine,
            "SELECT (SELECT data_type FROM information_schema.columns WHERE table_name = 'customers'"
            " AND column_name = 'birth_date') AS birth, (SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'customers' AND column_name = 'address') AS address",
        )
        assert (types.birth, types.address) == ("date", "jsonb")

        await asyncio.to_thread(upgrade, url)
        assert await _plaintexts(engine) == before
        dump = await _dump(url)
        assert not [e for e in before["email"] | before["text"] | before["note"] if e in dump]
        # The migration computes the same blind indexes as the seed, every kind on every row.
        assert [tuple(r) for r in await _raw(engine, all_bidx)] == bidx_before
        async with engine.connect() as conn:
            assert all(set(c) <= {"k1"} for c in (await key_status(conn)).values())


def test_production_refuses_to_start_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERWISE_ENVIRONMENT", "production")
    monkeypatch.setenv("TIERWISE_JWT_SECRET", "a-real-secret-" * 4)
    monkeypatch.delenv("TIERWISE_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("TIERWISE_BLIND_INDEX_KEY", raising=False)
    assert cli.main(["keys", "status"]) == 2
    assert "TIERWISE_ENCRYPTION_KEYS and TIERWISE_BLIND_INDEX_KEY must be set in production" in capsys.readouterr().err
