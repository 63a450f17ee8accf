"""Observability (issue 6, parts 10-12): JSON log lines carrying the request id the caller got back,
with no customer data in any line (also when an unexpected error quotes it); Prometheus metrics for
operations, latency, error codes, authorization denials by field, the connection pool and job runs;
OpenTelemetry spans exported when the standard OTEL_* variables say so, and nothing imported when
they don't (or when OpenTelemetry isn't installed)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api.edge.observability import configure_logging, redact
from infra.jobs import QUEUE
from tests.api.helpers import module_api
from tests.api.security_helpers import own_database
from tests.conftest import Api, running_api, test_settings

ROOT = Path(__file__).resolve().parents[2]

EMAIL = "zelda.quist@example.org"
PHONE = "+4915112345678"
NATIONAL_ID = "ZQ4711-0815-42"
NEW_EMAIL = "zelda.q@example.net"
SENSITIVE = [EMAIL, PHONE, "15112345678", NATIONAL_ID, "4711-0815", NEW_EMAIL, "Quistweg 12"]


@contextlib.contextmanager
def captured_logs(level: str = "DEBUG", log_format: str = "json") -> Iterator[io.StringIO]:
    """Every log record of the process, formatted as in production (JSON) or development (text), into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    names = ("sqlalchemy.engine", "sqlalchemy.pool", "casbin", "uvicorn.access", "strawberry.execution")
    saved_levels = {n: logging.getLogger(n).level for n in names}
    buffer = io.StringIO()
    configure_logging(test_settings(log_format=log_format, log_level=level), stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        for name, lvl in saved_levels.items():
            logging.getLogger(name).setLevel(lvl)


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id version email phone nationalId } userErrors { field code } } }"""
READ = "query ReadOne($id: ID!) { customer(id: $id) { name email phone nationalId address { line1 city } } }"


# a read the read compiler does not cover (tierExplanation): the use-case patched below runs
UNCOMPILED = "{ customers { totalCount edges { node { tierExplanation { __typename } } } } }"


async def test_logs_are_json_with_the_request_id_and_never_customer_data(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await api.user("alice", "admin")
    agent = await api.user("bob", "support_agent")
    partner, _ = await api.partner_token()
    with captured_logs() as buffer:
        made = await api.gql(
            admin,
            CREATE,
            {
                "input": {
                    "name": "Zelda Quist",
                    "email": EMAIL,
                    "phone": PHONE,
                    "nationalId": NATIONAL_ID,
                    "address": {"line1": "Quistweg 12", "city": "Berlin", "postalCode": "10115", "country": "DE"},
                }
            },
            **{"X-Request-ID": "log-create-1"},
        )
        customer = made["data"]["createCustomer"]["customer"]
        assert customer["email"] == EMAIL, made
        assert (await api.gql(admin, READ, {"id": customer["id"]}))["data"]["customer"]["nationalId"] == NATIONAL_ID
        masked = await api.gql(agent, READ, {"id": customer["id"]})
        assert masked["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"
        update = """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
            customer { email } userErrors { code } } }"""
        await api.gql(admin, update, {"input": {"id": customer["id"], "expectedVersion": 1, "email": NEW_EMAIL}})
        await api.gql(
            admin, update, {"input": {"id": customer["id"], "expectedVersion": 1, "email": EMAIL}}
        )  # CONFLICT
        await api.gql(admin, CREATE, {"input": {"name": "Bad Mail", "email": f"not-an-email {EMAIL} x"}})
        await api.gql(admin, f'{{ customers(filter: {{email: "{EMAIL}"}}) {{ totalCount }} }}')
        await api.gql(partner, f'{{ customers(filter: {{phone: "{PHONE}"}}) {{ totalCount }} }}')
        # GET with customer data in the query string: the access line has the path only
        by_get = f'{{ customers(filter: {{email: "{EMAIL}"}}) {{ totalCount }} }}'
        await api.client.get("/graphql", params={"query": by_get}, headers={"Authorization": f"Bearer {admin}"})

        # unexpected errors quoting customer data: in Python, and from PostgreSQL
        from api.usecases import customers as usecases

        async def leaky(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError(f"cannot page past {EMAIL} / {PHONE} / {NATIONAL_ID}")

        monkeypatch.setattr(usecases, "customer_page", leaky)
        failed = await api.gql(admin, UNCOMPILED, **{"X-Request-ID": "log-boom-1"})
        assert failed["errors"][0]["extensions"]["code"] == "INTERNAL"

        async def db_leaky(db: Any, *_args: object, **_kwargs: object) -> None:
            await db.execute(text("SELECT CAST(:v AS integer)"), {"v": f"{NATIONAL_ID} {EMAIL}"})

        monkeypatch.setattr(usecases, "customer_page", db_leaky)
        failed = await api.gql(admin, UNCOMPILED, **{"X-Request-ID": "log-boom-2"})
        assert failed["errors"][0]["extensions"]["code"] == "INTERNAL"

    output = buffer.getvalue()
    for value in SENSITIVE:
        assert value not in output, f"{value!r} logged:\n" + "\n".join(
            line for line in output.splitlines() if value in line
        )
    lines = [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    access = {line["request_id"]: line for line in lines if line["logger"] == "tierwise.access"}
    assert access["log-create-1"]["status"] == 200
    assert access["log-create-1"]["operation_type"] == "mutation"
    assert all("?" not in line["path"] for line in access.values())
    errors = [line for line in lines if line["logger"] == "tierwise.api"]
    assert {e["request_id"] for e in errors} >= {"log-boom-1", "log-boom-2"}
    boom = next(e for e in errors if e["request_id"] == "log-boom-1")
    assert boom["level"] == "error"
    assert boom["exc_type"] == "RuntimeError"
    assert "<email>" in boom["exc"]


def test_redaction_masks_contact_data_and_keeps_ids() -> None:
    assert redact(f"mail {EMAIL} phone {PHONE} id 636-40-6063") == "mail <email> phone <number> id <number>"
    assert redact("call (030) 1234-5678 or 0151-2345678") == "call <number> or <number>"
    assert redact("born 1984-02-29") == "born <number>"  # dates in messages could be birth dates
    kept = (
        "request f1e769f941054d1b813c6d84f40c3fcf customer 279b03a0-edee-4391-9f31-641c74f2060f"
        " POST /graphql 200 12.5 ms on http://127.0.0.1:8000"
    )
    assert redact(kept) == kept
    assert redact("Key (email)=(a@b.c) already exists") == "Key (email)=(<value>) already exists"


def _metrics(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_prometheus_metrics(api: Api) -> None:
    before = _metrics((await api.client.get("/metrics")).text)
    admin = await api.user("alice", "admin")
    agent = await api.user("bob", "support_agent")
    for _ in range(2):
        await api.gql(admin, "query ViewerQ { viewer { subject } }")
    made = await api.gql(admin, 'mutation { createCustomer(input: {name: "Mo Metric"}) { customer { id } } }')
    customer_id = made["data"]["createCustomer"]["customer"]["id"]
    await api.gql(agent, "query Peek($id: ID!) { customer(id: $id) { name nationalId } }", {"id": customer_id})
    await api.gql(agent, "{ roles { name } }")
    await api.gql(admin, "{ viewer { nope } }")
    newcomer = await api.user(f"metrics-{uuid.uuid4().hex[:8]}", "analyst")  # no slice of its budget yet
    await api.gql(newcomer, "{ viewer { subject } }")

    await api.services.jobs.configure_task("tierwise.retier_all").defer_async(timestamp=0)
    await asyncio.wait_for(
        api.services.jobs.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False), timeout=30
    )

    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = _metrics(response.text)
    m = {k: v - before.get(k, 0.0) for k, v in after.items()}  # what this test added
    assert _value(m, "tierwise_graphql_requests_total", operation="ViewerQ", type="query") == 2
    assert _value(m, "tierwise_graphql_request_duration_seconds_count", operation="ViewerQ", type="query") == 2
    assert _value(m, "tierwise_graphql_requests_total", operation="anonymous", type="mutation") >= 1
    assert _value(m, "tierwise_graphql_errors_total", code="FORBIDDEN_FIELD") >= 1
    assert _value(m, "tierwise_graphql_errors_total", code="BAD_USER_INPUT") >= 1
    assert _value(m, "tierwise_authz_denials_total", field="Customer.nationalId", code="FORBIDDEN_FIELD") == 1
    assert _value(m, "tierwise_authz_denials_total", field="Query.roles", code="FORBIDDEN") == 1
    assert _value(after, "tierwise_db_pool_size") == api.settings.db_pool_size
    assert ("tierwise_db_pool_checked_out", ()) in after
    assert _value(m, "tierwise_job_runs_total", task="tierwise.retier_all", status="succeeded") == 1
    # a lease statement per slice of a caller's budget, not per request: at least the newcomer's first
    assert _value(m, "tierwise_rate_limit_check_seconds_count") >= 1
    assert _value(m, "tierwise_http_responses_total", route="/graphql", status="200") >= 5


async def test_operation_names_cannot_blow_up_the_label_set(api: Api) -> None:
    admin = await api.user("alice", "admin")
    sem = asyncio.Semaphore(8)  # below the pool size (see the report: authz's listener leaks on overflow)

    async def named(i: int) -> None:
        async with sem:
            await api.gql(admin, f"query Op{i} {{ viewer {{ subject }} }}")

    await asyncio.gather(*(named(i) for i in range(230)))
    m = _metrics((await api.client.get("/metrics")).text)
    labels = {dict(k[1]).get("operation") for k in m if k[0] == "tierwise_graphql_requests_total"}
    assert len(labels) <= 205
    assert "other" in labels


async def test_metrics_can_require_a_token(template_db: str) -> None:
    async with own_database(template_db) as url, running_api(url, test_settings(metrics_token="scrape-me")) as api:
        assert (await api.client.get("/metrics")).status_code == 401
        ok = await api.client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert ok.status_code == 200
        assert "tierwise_db_pool_size" in ok.text


# ---------------------------------------------------------------- tracing


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


async def test_traces_are_exported_when_otel_variables_say_so(
    template_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tierwise-test")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        async with own_database(template_db) as url:
            async with running_api(url) as api:
                admin = await api.user("alice", "admin")
                response = await api.client.post(
                    "/graphql",
                    json={"query": "query Traced { viewer { subject } }"},
                    headers={"Authorization": f"Bearer {admin}", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
                )
                assert response.status_code == 200
            # leaving the app flushed the exporter
    finally:
        server.shutdown()
        server.server_close()
    spans = []
    for body in _Collector.bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            for scope_spans in resource_spans.scope_spans:
                spans += [(service, s) for s in scope_spans.spans]
    traced = [s for _, s in spans if s.name == "query Traced"]
    assert traced, [s.name for _, s in spans]
    span = traced[0]
    assert span.trace_id.hex() == trace_id  # continued from the caller's traceparent
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["graphql.operation.name"].string_value == "Traced"
    assert {service for service, _ in spans} == {"tierwise-test"}


PROBE = """
import asyncio, json, sys
{block}
import httpx
from api.edge.app import create_app
from tests.conftest import test_settings

async def main():
    app = create_app(test_settings(), database_url=sys.argv[1])
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            status = (await client.get("/readyz")).status_code
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    print(json.dumps({{"status": status, "otel_modules": loaded}}))

asyncio.run(main())
"""


def _probe(url: str, block: str, **env: str) -> tuple[dict[str, Any], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TIERWISE_"))}
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(block=block), url],
        cwd=ROOT,
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


async def test_without_otel_variables_nothing_is_imported_and_without_the_package_nothing_breaks(
    template_db: str,
) -> None:
    async with own_database(template_db) as url:
        off, _ = await asyncio.to_thread(_probe, url, "")
        assert off == {"status": 200, "otel_modules": []}
        block = "sys.modules['opentelemetry'] = None  # as if the otel extra were not installed"
        missing, stderr = await asyncio.to_thread(_probe, url, block, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
        assert missing["status"] == 200
        assert "OpenTelemetry is not installed" in stderr


def test_text_log_lines_keep_their_date_and_redact_the_message() -> None:
    """The development (text) format redacts the message and the request id, not the record's own time:
    ``2026-12-06 09:59:30,495`` stays a date (it was turned into ``<number> 09:59:30,495``)."""
    with captured_logs("INFO", "text") as buffer:
        logging.getLogger("tierwise.test").info("called %s about %s", PHONE, EMAIL, extra={"request_id": "r-1"})
        try:
            raise ValueError(f"bad {NATIONAL_ID}")
        except ValueError:
            logging.getLogger("tierwise.test").exception("failed for 0151-2345678")
    output = buffer.getvalue()
    first, *rest = output.splitlines()
    date, clock, level, logger, request_id, *message = first.split(" ")
    assert dt.date.fromisoformat(date), first  # the date is kept, in full
    assert clock.count(":") == 2, first
    assert (level, logger, request_id) == ("INFO", "tierwise.test", "[r-1]")
    assert " ".join(message) == "called <number> about <email>"
    assert any(line.endswith("ERROR tierwise.test [None] failed for <number>") for line in rest), output
    assert "ValueError" in output
    for value in SENSITIVE:
        assert value not in output


async def test_the_text_access_line_names_operation_cost_and_caller(
    fresh_database_url: Callable[[], Awaitable[str]],
) -> None:
    """As docs/operations/observability.md says: the development access line carries the operation, its
    cost, the caller and the error codes, not only method, path, status and time. (An app of its own: the
    module's has its operation labels used up by another test, and customers.)"""
    async with running_api(await fresh_database_url()) as api:
        await _access_lines(api)


async def _access_lines(api: Api) -> None:
    agent = await api.user("bob", "support_agent")
    with captured_logs("INFO", "text") as buffer:
        answer = await api.gql(
            agent, "query TwoNames { customers(first: 2) { edges { node { nationalId } } } }", **{"X-Request-ID": "t-1"}
        )
        assert answer["data"]["customers"] is not None, answer
        refused = '{ customers(filter: {email: "a@b.example"}) { totalCount } }'
        assert (await api.gql(agent, refused, **{"X-Request-ID": "t-2"}))["errors"]
    lines = buffer.getvalue().splitlines()
    line = next(line for line in lines if " tierwise.access [t-1] " in line)
    message = line.split(" [t-1] ", 1)[1]
    assert re.fullmatch(r"POST /graphql 200 [0-9.]+ ms query TwoNames cost [0-9]+ by user:bob", message), line
    line = next(line for line in lines if " tierwise.access [t-2] " in line)
    message = line.split(" [t-2] ", 1)[1]
    assert re.fullmatch(
        r"POST /graphql 200 [0-9.]+ ms query anonymous cost [0-9]+ by user:bob FORBIDDEN_ARGUMENT", message
    ), line
