"""Faults with real PostgreSQL (issue 6, parts 5-9): a slow statement is cancelled cleanly and its
connection goes back to the pool; an exhausted pool answers at once with a coded error and readyz
says so; the app's backends killed under write load (as in a PostgreSQL restart) fail only requests
in flight, cleanly, the service recovers by itself and no acknowledged write is lost; SIGTERM on a
real uvicorn lets requests and jobs in flight finish and refuses new connections; concurrent writers
at one expectedVersion or one external id have exactly one effect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import procrastinate
import pytest
from sqlalchemy import text

from api.edge.auth import issue_staff_token
from authz import admin as authz_admin
from infra.db import create_engine, pool_status
from infra.jobs import QUEUE, conninfo
from tests.conftest import Api, running_api, test_settings

ROOT = Path(__file__).resolve().parents[2]
COUNT = "{ customers { totalCount } }"
PURCHASE = """mutation($input: RecordPurchasesInput!) {
  recordPurchases(input: $input) { insertedCount purchases { id externalId } userErrors { code message } } }"""


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def _pg(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def _slow_customer_page(seconds: float) -> Callable[..., Awaitable[Any]]:
    """A stand-in for the customers use-case (customer_page) that sleeps in PostgreSQL first."""
    from api.usecases import customers as usecases

    original = usecases.customer_page

    async def slow(db: Any, *args: Any, **kwargs: Any) -> Any:
        await db.execute(text(f"SELECT pg_sleep({seconds})"))
        return await original(db, *args, **kwargs)

    return slow


# ---------------------------------------------------------------- 5. statement timeout


async def test_a_slow_statement_is_cancelled_and_its_connection_returns_to_the_pool(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.usecases import customers as usecases

    monkeypatch.setattr(usecases, "customer_page", _slow_customer_page(5))
    # the slow use-case is strawberry's path (the read compiler's own statement: tests/api/test_read_compiler.py)
    settings = test_settings(statement_timeout_ms=300, compiled_queries=False)
    async with running_api(database_url, settings) as api:
        token = await api.user("alice", "admin")
        started = time.perf_counter()
        body = await api.gql(token, COUNT, None, **{"X-Request-ID": "slow-1"})
        elapsed = time.perf_counter() - started
        assert codes(body) == ["TIMEOUT"], body
        assert body["errors"][0]["message"] == "the operation took too long and was cancelled (request id slow-1)"
        assert body["data"] == {"customers": None}
        assert elapsed < 2.0
        status = pool_status(api.services.engine)
        assert status.checked_out == 0  # the request's connection is back (the policy listener has its own)
        running = await _pg(database_url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
        assert running[0][0] == 0
        monkeypatch.undo()
        again = await api.gql(token, COUNT)  # the connection is usable: no aborted transaction left
        assert not again.get("errors"), again


# ---------------------------------------------------------------- 7. pool exhausted


async def test_an_exhausted_pool_answers_at_once_and_readyz_says_so(database_url: str) -> None:
    # a pool of one connection, which we hold here (the policy listener has its own, outside the pool)
    settings = test_settings(db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=0.5)
    async with running_api(database_url, settings) as api:
        staff = await api.user("alice", "admin")
        partner, _ = await api.partner_token()
        async with api.services.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            assert pool_status(api.services.engine).exhausted

            started = time.perf_counter()
            ready = await api.client.get("/readyz")
            assert time.perf_counter() - started < 0.3
            assert ready.status_code == 503
            assert ready.json()["database"] == "pool exhausted"

            for token in (staff, partner):  # staff: at the rate-limit charge; partner: at token lookup
                started = time.perf_counter()
                response = await api.client.post(
                    "/graphql", json={"query": COUNT}, headers={"Authorization": f"Bearer {token}"}
                )
                assert time.perf_counter() - started < 2.0
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                assert codes(response.json()) == ["SERVICE_UNAVAILABLE"]
                assert "retry" in response.json()["errors"][0]["message"]
        assert (await api.client.get("/readyz")).status_code == 200
        assert not (await api.gql(staff, COUNT)).get("errors")


# ---------------------------------------------------------------- 6. backends killed under load


async def test_backends_killed_under_load_lose_no_acknowledged_write(database_url: str) -> None:
    settings = test_settings(db_pool_size=4, db_max_overflow=4, rate_limit_partner_per_minute=1_000_000)
    async with running_api(database_url, settings) as api:
        partner, _ = await api.partner_token()
        made = await api.gql(
            partner, 'mutation { createCustomer(input: {name: "Load Lu", externalRef: "load-1"}) { customer { id } } }'
        )
        assert made["data"]["createCustomer"]["customer"], made
        acknowledged: set[str] = set()
        failures: list[tuple[int, list[str]]] = []
        sent = 0
        stop = asyncio.Event()

        async def writer(k: int) -> None:
            nonlocal sent
            i = 0
            while not stop.is_set():
                external_id = f"w{k}-{i}"
                i += 1
                sent += 1
                item = {"customerExternalRef": "load-1", "externalId": external_id, "amount": "1.00"}
                response = await api.client.post(
                    "/graphql",
                    json={"query": PURCHASE, "variables": {"input": {"purchases": [item]}}},
                    headers={"Authorization": f"Bearer {partner}"},
                )
                body = response.json()
                result = (body.get("data") or {}).get("recordPurchases")
                if response.status_code == 200 and not body.get("errors") and result and result["insertedCount"] == 1:
                    acknowledged.add(external_id)
                else:
                    failures.append((response.status_code, codes(body)))

        killed = 0

        async def acknowledged_grows_by(n: int) -> None:
            # paced by the writes themselves, not by the clock: a busy machine only makes it slower
            target = len(acknowledged) + n
            deadline = time.perf_counter() + 60
            while len(acknowledged) < target:
                assert time.perf_counter() < deadline, f"writes stalled at {len(acknowledged)}: {failures[-5:]}"
                await asyncio.sleep(0.02)

        async def killer() -> None:
            nonlocal killed
            try:
                for _ in range(2):
                    await acknowledged_grows_by(10)
                    rows = await _pg(
                        database_url,
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    )
                    killed += sum(1 for r in rows if r[0])
                await acknowledged_grows_by(10)  # writes resume after the second kill
            finally:
                stop.set()

        await asyncio.gather(killer(), *(writer(k) for k in range(6)))
        assert killed >= 2, "the app's backends were not there to kill"

        # recovery: on its own, within seconds
        started = time.perf_counter()
        while True:
            body = await api.gql(partner, COUNT)
            if not body.get("errors"):
                break
            assert time.perf_counter() - started < 5.0, body
            await asyncio.sleep(0.1)

        stored = {r[0] for r in await _pg(database_url, "SELECT external_id FROM purchases")}
        assert acknowledged <= stored, sorted(acknowledged - stored)[:5]  # no acknowledged write lost
        assert len(acknowledged) >= 30  # ten before each kill, ten after the last
        # in-flight requests failed cleanly: a retryable code, never a crash or an internal error
        for status, error_codes in failures:
            assert status in (200, 503), failures
            assert error_codes, failures
            assert set(error_codes) <= {"SERVICE_UNAVAILABLE"}, failures
        print(f"sent {sent}, acknowledged {len(acknowledged)}, stored {len(stored)}, failed cleanly {len(failures)}")


async def test_a_connection_killed_while_idle_is_replaced_at_checkout_and_a_busy_one_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database_url, test_settings(db_pool_size=1, db_max_overflow=0, db_ping_idle_s=0.3))
    dialect = engine.sync_engine.dialect
    pings: list[bool] = []
    real_ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        try:
            alive = real_ping(dbapi_connection)
        except Exception:
            pings.append(False)
            raise
        pings.append(alive)
        return alive

    monkeypatch.setattr(dialect, "do_ping", counted)
    pid_sql = text("SELECT pg_backend_pid()")
    try:
        async with engine.connect() as conn:  # a fresh connection: never pinged
            first = (await conn.execute(pid_sql)).scalar_one()
        for _ in range(3):  # straight back from another use: not pinged, the same backend
            async with engine.connect() as conn:
                assert (await conn.execute(pid_sql)).scalar_one() == first
        assert pings == []
        await asyncio.sleep(0.4)
        async with engine.connect() as conn:  # idle long enough: pinged, alive, kept
            assert (await conn.execute(pid_sql)).scalar_one() == first
        assert pings == [True]
        await _pg(database_url, f"SELECT pg_terminate_backend({first})")
        await asyncio.sleep(0.4)
        async with engine.connect() as conn:  # killed while idle: the ping fails, a new backend serves
            second = (await conn.execute(pid_sql)).scalar_one()
        assert second != first
        assert pings == [True, False]
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- 9. concurrent writers


async def test_concurrent_updates_at_one_version_have_one_winner(api: Api) -> None:
    admin = await api.user("alice", "admin")
    made = await api.gql(
        admin, 'mutation { createCustomer(input: {name: "Vera Version"}) { customer { id version } } }'
    )
    customer = made["data"]["createCustomer"]["customer"]
    update = """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
        customer { version name } userErrors { field code } } }"""
    results = await asyncio.gather(
        *(
            api.gql(admin, update, {"input": {"id": customer["id"], "expectedVersion": 1, "name": f"Writer {i}"}})
            for i in range(6)
        )
    )
    payloads = [r["data"]["updateCustomer"] for r in results]
    winners = [p for p in payloads if p["customer"]]
    assert len(winners) == 1, payloads
    assert winners[0]["customer"]["version"] == 2
    losers = [p["userErrors"] for p in payloads if not p["customer"]]
    assert losers == [[{"field": "expectedVersion", "code": "CONFLICT"}]] * 5


async def test_concurrent_partner_writes_with_one_external_id_have_one_effect(api: Api) -> None:
    partner, _ = await api.partner_token()
    await api.gql(
        partner, 'mutation { createCustomer(input: {name: "Ida Idem", externalRef: "idem-1"}) { customer { id } } }'
    )
    item = {"customerExternalRef": "idem-1", "externalId": "order-77", "amount": "42.00"}
    results = await asyncio.gather(*(api.gql(partner, PURCHASE, {"input": {"purchases": [item]}}) for _ in range(8)))
    payloads = [r["data"]["recordPurchases"] for r in results]
    assert all(not r.get("errors") for r in results), results
    assert sum(p["insertedCount"] for p in payloads) == 1
    assert len({p["purchases"][0]["id"] for p in payloads}) == 1  # every answer names the same purchase
    async with api.services.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT count(*) FROM purchases WHERE external_id = 'order-77'"))).scalar()
    assert stored == 1


# ---------------------------------------------------------------- 8. graceful shutdown

SERVER = """
import asyncio, sys
from sqlalchemy import text
import api.edge.app
from api.usecases import customers as usecases

original_page = usecases.customer_page

async def slow_page(db, *args, **kwargs):
    await db.execute(text("SELECT pg_sleep(1.5)"))
    return await original_page(db, *args, **kwargs)

usecases.customer_page = slow_page
original_registrars = api.edge.app.registrars

def registrars():
    def register(app, deps):
        @app.task(name="tests.slow_job", queue="tierwise")
        async def slow_job() -> str:
            await asyncio.sleep(3)
            return "done"
    return [*original_registrars(), register]

api.edge.app.registrars = registrars
from api.edge.cli import main
sys.exit(main(["serve", "--host", "127.0.0.1", "--port", sys.argv[1]]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigterm_lets_requests_and_jobs_in_flight_finish_and_refuses_new_ones(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(database_url, test_settings())
    async with engine.connect() as conn:
        await authz_admin.assign_role(conn, "alice", "admin", actor="test")
        await conn.commit()
    await engine.dispose()
    token = issue_staff_token(test_settings(), "alice")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIERWISE_", "OTEL_"))}
    env.update(
        TIERWISE_DATABASE_URL=database_url,
        TIERWISE_RUN_WORKER="true",
        TIERWISE_LOG_FORMAT="json",
        TIERWISE_SHUTDOWN_GRACE_S="10",
        PYTHONPATH=str(ROOT),
    )
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-c", SERVER, str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(100):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the server did not start")

            jobs = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(database_url)))
            async with jobs.open_async():
                job_id = await jobs.configure_task("tests.slow_job", queue=QUEUE).defer_async()
            for _ in range(100):
                status = await _pg(database_url, f"SELECT status FROM procrastinate_jobs WHERE id = {job_id}")
                if status[0][0] == "doing":
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the job did not start")

            in_flight = asyncio.create_task(
                client.post("/graphql", json={"query": COUNT}, headers={"Authorization": f"Bearer {token}"})
            )
            await asyncio.sleep(0.4)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            refused = False
            for _ in range(20):
                try:
                    async with httpx.AsyncClient(base_url=base, timeout=2) as fresh:
                        await fresh.get("/healthz")
                except httpx.ConnectError:
                    refused = True
                    break
                await asyncio.sleep(0.05)
            assert refused, "new connections were still accepted after SIGTERM"

            response = await in_flight
            assert response.status_code == 200, response.text
            assert response.json() == {"data": {"customers": {"totalCount": 0}}}
        code = await asyncio.to_thread(proc.wait, 15)
        # after its graceful shutdown uvicorn re-raises the signal, so supervisors see "ended by SIGTERM"
        assert code in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = log_path.read_text()
    status = await _pg(database_url, f"SELECT status FROM procrastinate_jobs WHERE id = {job_id}")
    assert status[0][0] == "succeeded", stderr[-3000:]
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert "shut down cleanly" in messages, stderr[-3000:]
    # the job in flight finished before the app called its shutdown done
    job_done = next(i for i, m in enumerate(messages) if "tests.slow_job" in m and "Success" in m)
    assert job_done < messages.index("shut down cleanly"), messages
    access = [line for line in lines if line["logger"] == "tierwise.access" and line.get("path") == "/graphql"]
    assert access
    assert access[0]["status"] == 200
    assert access[0]["request_id"]
