"""The differential harness of issue 12: two apps on one database, one answering reads on the compiled path
(``Settings.compiled_queries`` on: whatever the switch selects), one on strawberry's resolvers alone, asked
the same query by the same caller; their answers must be the same:

- ``data``: the same bytes, as sent (sliced out of the raw response, not re-serialised: a number written
  ``2500.00`` by one path and ``2500.0`` by the other is a difference);
- ``errors``: the same (message, path, extensions.code) triples, as a multiset (the spec gives errors no
  order);
- the HTTP status;
- the audit rows the request wrote (``audit_log`` by request id, every column but id, at and request_id).

The world (``build_differential_world``) is built through the API as users would: the security suite's
world (an admin's customer with every sensitive field set and e-mail consent, one customer per partner,
complaints, purchases, a survey and a response) plus callers of every kind, a few pages of customers with
complaints of several shapes, a merged pair and an erased customer.

``Probe`` tells which path answered a request (the compiler, or the fallback to strawberry); ``StatementTap``
sees every statement the app's engine sends, through SQLAlchemy and straight through asyncpg.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import event

from tests.api.security_helpers import (
    OPEN,
    PARTNER_A,
    World,
    build_world,
    complaint_input,
    gid,
    ok,
    own_database,
    raw_id,
    sql,
)
from tests.conftest import Api, running_api, test_settings

# Every kind of caller the issue names: staff of every default role, marketing (whose e-mail access depends
# on the customer's consent: Ada consented, Paula did not), a staff user with no role, partner tokens with
# read:* and with narrower scopes, and a partner token holding a staff role (confined all the same).
CALLERS = (
    "admin",
    "support_agent",
    "analyst",
    "marketing",
    "data_steward",
    "norole",
    "partner",
    "partner_b",
    "partner_narrow",
    "partner_agent",
)
NARROW_SCOPES = (
    "read:Query.customers",
    "read:Query.customer",
    "read:Query.complaints",
    "read:Customer.name",
    "read:Customer.complaints",
    "read:Complaint.subject",
    "read:Complaint.status",
)


@dataclass
class DiffWorld:
    """The security suite's world plus what the differential shapes need (global ids)."""

    base: World
    page_customers: list[str] = field(default_factory=list)  # created by the admin, in order
    busy: str = ""  # a customer with more complaints than a nested page of 3
    busy_complaints: list[str] = field(default_factory=list)
    follow_up: str = ""  # a complaint that follows up another (followUpOf set), with events
    survivor: str = ""  # a merge: the survivor and the duplicate's tombstone
    duplicate: str = ""
    erased: str = ""
    quiet: str = ""  # no purchases, no complaints, no partner: null and empty nested values

    @property
    def api(self) -> Api:
        return self.base.api

    @property
    def url(self) -> str:
        return self.base.url

    @property
    def tokens(self) -> dict[str, str]:
        return self.base.tokens


MERGE = """mutation($s: ID!, $d: ID!) { mergeCustomers(survivorId: $s, duplicateId: $d) {
  merge { survivorId } userErrors { field code message } } }"""
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { erasedId userErrors { field code message } } }"
CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id } userErrors { field code message } } }"""
RECORD = """mutation($input: RecordPurchasesInput!) { recordPurchases(input: $input) {
  insertedCount userErrors { field code message } } }"""
TRANSITION = """mutation($input: TransitionComplaintInput!) { transitionComplaint(input: $input) {
  complaint { id version } userErrors { field code message } } }"""
CREATE_TEAM = (
    """mutation($name: String!) { createTeam(name: $name) { team { id } userErrors { field code message } } }"""
)
ARCHIVE_TEAM = """mutation($team: ID!) { archiveTeam(team: $team) { team { id } userErrors { field code message } } }"""
ASSIGN = """mutation($input: AssignComplaintInput!) { assignComplaint(input: $input) {
  complaint { id version } userErrors { field code message } } }"""


async def _create(w: World, who: str, **fields: Any) -> str:
    body = await w.gql(who, CREATE, {"input": fields})
    return str(ok(body, "createCustomer")["customer"]["id"])


async def _complaint(w: World, who: str, customer: str, text: str, **extra: Any) -> str:
    return str(
        ok(await w.gql(who, OPEN, {"input": complaint_input(customer, text, **extra)}), "openComplaint")["complaint"][
            "id"
        ]
    )


async def build_differential_world(api: Api) -> DiffWorld:
    base = await build_world(api)
    d = DiffWorld(base=base)
    base.tokens["data_steward"] = await api.user("steward-sam", "data_steward")
    base.tokens["norole"] = await api.user("nobody-nora")
    base.tokens["partner_narrow"], _ = await api.partner_token(partner=PARTNER_A, scopes=NARROW_SCOPES)
    base.tokens["partner_agent"], _ = await api.partner_token(
        partner=PARTNER_A, scopes=("read:*",), role="support_agent"
    )

    # a few pages of customers (the admin's), with spend that puts them in different tiers
    for n in range(7):
        customer = await _create(
            base,
            "admin",
            name=f"Page Customer {n}",
            email=f"page.customer.{n}@example.org",
            phone=f"+49 30 5550{n:04d}",
            birthDate=f"19{70 + n}-0{1 + n % 9}-1{n}",
            address={"line1": f"Weg {n}", "postalCode": f"1011{n}", "city": "Berlin", "country": "DE"},
        )
        d.page_customers.append(customer)
        if n % 3 != 2:
            amount = f"{(n + 1) * 450}.{n}0"
            inp = {"purchases": [{"customerId": customer, "amount": amount, "externalId": f"page-{n}"}]}
            assert ok(await base.gql("admin", RECORD, {"input": inp}), "recordPurchases")["insertedCount"] == 1
    # partner A's second customer (a page of two for the partner), no consent
    await _create(base, "partner", name="Paul Northwind-Zweiter", externalRef="nw-0002", email="paul@example.net")

    # one busy customer: five complaints (nested pages of 3 have a next page), one followed up, with events
    d.busy = d.page_customers[0]
    for n in range(5):
        d.busy_complaints.append(
            await _complaint(base, "admin", d.busy, f"Busy complaint {n}: private detail {n}", severity="HIGH")
        )
    # the first is answered, resolved (with a root cause) and closed, and followed up
    first = d.busy_complaints[0]
    for status, extra in (
        ("OPEN", {"assignee": "bob", "note": "Looking into it, private note"}),
        ("RESOLVED", {"resolutionCode": "refund", "rootCauseCode": "process"}),
        ("CLOSED", {}),
    ):
        version = (await sql(d.url, "SELECT version FROM complaints WHERE id = $1", raw_id(first)))[0][0]
        move = {"id": first, "expectedVersion": version, "to": status, **extra}
        ok(await base.gql("admin", TRANSITION, {"input": move}), "transitionComplaint")
    d.follow_up = await _complaint(base, "admin", d.busy, "Following up on the first one.", followUpOf=first)
    # ... and handed to a team (Complaint.team: a join of the compiled statement)
    team = ok(await base.gql("admin", CREATE_TEAM, {"name": "Returns desk"}), "createTeam")["team"]["id"]
    version = (await sql(d.url, "SELECT version FROM complaints WHERE id = $1", raw_id(d.follow_up)))[0][0]
    handed = {"id": d.follow_up, "expectedVersion": version, "team": team}
    ok(await base.gql("admin", ASSIGN, {"input": handed}), "assignComplaint")
    ok(await base.gql("admin", ARCHIVE_TEAM, {"team": team}), "archiveTeam")  # retired: Team.archivedAt set

    # a merge: two customers with the same e-mail, the second merged into the first (a tombstone stays)
    d.survivor = await _create(base, "admin", name="Twin Survivor", email="twin@example.org", phone="+49 30 5551234")
    d.duplicate = await _create(base, "admin", name="Twin Duplicate", email="twin@example.org")
    await _complaint(base, "admin", d.duplicate, "The duplicate's complaint moves to the survivor.")
    ok(await base.gql("admin", MERGE, {"s": d.survivor, "d": d.duplicate}), "mergeCustomers")

    # an erased customer (anonymised everywhere)
    d.erased = await _create(base, "admin", name="Erin Erased", email="erin@example.org", phone="+49 30 5559999")
    await _complaint(base, "admin", d.erased, "Erin's complaint text, erased with her.")
    ok(await base.gql("admin", ERASE, {"id": d.erased}), "eraseCustomer")

    d.quiet = await _create(base, "admin", name="Quiet Quentin")
    return d


@dataclass
class Pair:
    """The reference app (strawberry alone) and the app whose reads take the compiled path."""

    world: DiffWorld
    reference: Api
    compiled: Api
    db: asyncpg.Connection  # beside the apps: reads the audit rows

    @property
    def tokens(self) -> dict[str, str]:
        return self.world.tokens

    async def audit_rows(self, *request_ids: str) -> list[list[tuple[Any, ...]]]:
        """Per request id, the audit rows it wrote (every column but id, at and request_id), in order."""
        rows = await self.db.fetch(
            "SELECT request_id, actor, action, target_type, target_ids, fields, before::text, after::text "
            "FROM audit_log WHERE request_id = ANY($1::text[]) ORDER BY id",
            list(request_ids),
        )
        return [[tuple(r.values())[1:] for r in rows if r["request_id"] == rid] for rid in request_ids]


@contextlib.asynccontextmanager
async def running_pair(template_db: str) -> AsyncIterator[Pair]:
    # rate limits off in both: the two apps share the callers' buckets, and these tests send a lot
    async with own_database(template_db) as url:
        reference = test_settings(rate_limit_enabled=False, compiled_queries=False)
        async with running_api(url, reference) as plain:
            world = await build_differential_world(plain)
            compiled = test_settings(rate_limit_enabled=False, compiled_queries=True)
            db = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                async with running_api(url, compiled) as fast:
                    yield Pair(world, plain, fast, db)
            finally:
                await db.close()


# ---------------------------------------------------------------- which path answered


def graphql_app_of(api: Api) -> Any:
    """The app's GraphQL ASGI app (built by its first request: see api/edge/app.py, _LazyGraphQL)."""
    route = next(r for r in api.app.routes if getattr(r, "path", None) == "/graphql")
    lazy = route.endpoint
    if getattr(lazy, "_app", None) is None:
        raise LookupError("the GraphQL app is built by the first request: send one first")
    return lazy._app.app


class Probe:
    """Counts the operations the compiler (api/graphql/compiler.py) answered: ``Compiler.executed``, the
    operations answered by one statement per root field. An app without it fails here (never a silent pass)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        reads = getattr(graphql_app_of(api), "reads", None)
        if reads is None or not isinstance(getattr(reads.compiler, "executed", None), int):
            raise LookupError("compiled_queries is on but the GraphQL app has no compiler with a run counter")
        self.compiler = reads.compiler

    def runs(self) -> int:
        return int(self.compiler.executed)


# ---------------------------------------------------------------- comparing


_ids = itertools.count()


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    request_id: str

    def parsed(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def data(self) -> bytes | None:
        """The bytes of the response's ``data`` member exactly as sent (None when there is none)."""
        return top_level_member(self.body, "data")

    def errors(self) -> Counter[tuple[str, str, str | None]]:
        """(message, path, code) of each error, as a multiset."""
        out: Counter[tuple[str, str, str | None]] = Counter()
        for e in self.parsed().get("errors") or []:
            out[(e.get("message"), json.dumps(e.get("path")), (e.get("extensions") or {}).get("code"))] += 1
        return out


_decoder = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def top_level_member(body: bytes, name: str) -> bytes | None:
    """The raw bytes of member ``name`` of the JSON object ``body`` (whitespace around it trimmed)."""
    text = body.decode()
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] != "{":
        raise ValueError(f"not a JSON object: {text[:80]!r}")
    pos += 1
    while True:
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos] == "}":
            return None
        key, pos = _decoder.raw_decode(text, pos)
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        assert text[pos] == ":", text[pos - 20 : pos + 20]
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        _, end = _decoder.raw_decode(text, pos)
        if key == name:
            return text[pos:end].encode()
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[pos] == ",":
            pos += 1


async def ask(api: Api, token: str | None, query: str, variables: dict[str, Any] | None, tag: str) -> Answer:
    request_id = f"diff-{tag}-{next(_ids)}-{uuid.uuid4().hex[:6]}"
    headers = {"X-Request-ID": request_id}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body: dict[str, Any] = {"query": query, "variables": variables or {}}
    response = await api.client.post("/graphql", json=body, headers=headers)
    return Answer(response.status_code, response.content, request_id)


@dataclass
class Outcome:
    """Both answers of one (caller, query), and whether the compiled side ran compiled."""

    who: str
    reference: Answer
    compiled: Answer
    ran_compiled: bool
    audit: list[tuple[Any, ...]]


async def differential(pair: Pair, probe: Probe, who: str, query: str, variables: dict[str, Any] | None) -> Outcome:
    """Ask both apps as ``who`` and require the same answer; returns both (for further assertions)."""
    token = pair.tokens[who]
    before = probe.runs()
    compiled = await ask(pair.compiled, token, query, variables, "compiled")
    ran = probe.runs() - before
    reference = await ask(pair.reference, token, query, variables, "reference")
    where = f"as {who}: {query} {variables}"
    assert compiled.status == reference.status, (where, compiled.body, reference.body)
    assert compiled.data == reference.data, (
        where,
        (compiled.data or b"")[:4000].decode(),
        (reference.data or b"")[:4000].decode(),
    )
    assert compiled.errors() == reference.errors(), (where, compiled.errors(), reference.errors())
    audit_c, audit_r = await pair.audit_rows(compiled.request_id, reference.request_id)
    assert audit_c == audit_r, (where, audit_c, audit_r)
    assert ran in (0, 1), ran
    return Outcome(who, reference, compiled, ran == 1, audit_c)


# ---------------------------------------------------------------- statements


TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START TRANSACTION|;?\s*$)", re.I)
# Background work on the same engine: the authorization service polling the policy version and reloading
# the rules, the trusted documents' refresh (tables no read of customer data touches).
BACKGROUND = re.compile(r"\bFROM (authz_state|casbin_rules|trusted_documents|trusted_document_state)\b")


class StatementTap:
    """Every statement the engine's connections send while it is open: those SQLAlchemy executes (engine
    events; its asyncpg adapter runs them as prepared statements, which asyncpg's query logger does not see)
    and those sent on the asyncpg connection itself (asyncpg's query logger on every pooled connection:
    what code holding the raw driver connection runs, unseen by SQLAlchemy). A statement SQLAlchemy sends
    through a logged asyncpg call (executemany) is counted once. Transaction control and pings are kept
    apart (``statements`` leaves them out)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.all: list[str] = []
        # statements SQLAlchemy sent through a logged asyncpg call (executemany), per driver connection, not
        # yet seen by the logger: asyncpg calls its loggers soon after, not during, the call (call_soon), so
        # whether SQLAlchemy is busy on the connection when a logger runs says nothing of who sent it
        self._by_sqlalchemy: dict[int, list[str]] = {}
        self._logged: dict[int, Any] = {}

    # SQLAlchemy
    def _before(self, conn: Any, cursor: Any, statement: str, _params: Any, _context: Any, many: bool) -> None:
        self.all.append(statement)
        if many:
            self._by_sqlalchemy.setdefault(id(conn.connection.driver_connection), []).append(statement)

    # asyncpg
    def _attach(self, driver: Any) -> None:
        if id(driver) in self._logged:
            return

        def logged(record: Any, driver_id: int = id(driver)) -> None:
            sent = self._by_sqlalchemy.get(driver_id, [])
            if record.query in sent:
                sent.remove(record.query)  # counted by the engine event already
            else:
                self.all.append(record.query)

        driver.add_query_logger(logged)
        self._logged[id(driver)] = (driver, logged)

    def _on_checkout(self, dbapi_connection: Any, *_args: Any) -> None:
        self._attach(dbapi_connection.driver_connection)

    def __enter__(self) -> StatementTap:
        sync = self.engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._before)
        event.listen(sync, "checkout", self._on_checkout)
        return self

    def __exit__(self, *exc: object) -> None:
        sync = self.engine.sync_engine
        event.remove(sync, "before_cursor_execute", self._before)
        event.remove(sync, "checkout", self._on_checkout)
        for driver, logged in self._logged.values():
            with contextlib.suppress(Exception):
                driver.remove_query_logger(logged)

    @property
    def statements(self) -> list[str]:
        """The statements of the requests: no transaction control, pings or background polling."""
        return [s for s in self.all if not TRANSACTION_CONTROL.match(s) and not BACKGROUND.search(s)]


@contextlib.contextmanager
def tapped(api: Api) -> Iterator[StatementTap]:
    with StatementTap(api.services.engine) as tap:
        yield tap


__all__ = [
    "CALLERS",
    "Answer",
    "DiffWorld",
    "Outcome",
    "Pair",
    "Probe",
    "StatementTap",
    "differential",
    "gid",
    "running_pair",
    "tapped",
]
