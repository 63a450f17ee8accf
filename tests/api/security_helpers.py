"""Shared seed data and helpers for the security tests (issue 3).

``world_for(template_db)`` builds, over real HTTP with real tokens, one world per test module: staff
users for every default role, two partner tokens, an unowned customer with every sensitive field set
(created by an admin), one customer per partner (created with that partner's token), a complaint on
each, a purchase on each, and a survey response. Reads of the tests then go through the API only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.conftest import ADMIN_URL, RUN, Api, running_api, test_settings

FULL, MASKED, DENIED = "FULL", "MASKED", "DENIED"
STAFF_ROLES = ("admin", "support_agent", "analyst", "marketing")
STAFF_USERS = {"admin": "alice", "support_agent": "bob", "analyst": "carol", "marketing": "dave"}
PARTNER_A = "Northwind Shop"
PARTNER_B = "Southwind Traders"


@dataclass(frozen=True)
class Seed:
    """A customer's input and the plaintext values it is stored with."""

    input: dict[str, Any]
    phone_e164: str
    spend: str  # 12-month and lifetime spend after the seeded purchase
    tier: str

    @property
    def name(self) -> str:
        return str(self.input["name"])

    @property
    def email(self) -> str:
        return str(self.input["email"])

    @property
    def address(self) -> dict[str, Any]:
        return dict(self.input["address"])

    def plaintexts(self) -> dict[str, list[str]]:
        """Per field, the strings that must not appear in a response that may not carry it in full."""
        a = self.address
        return {
            "name": [self.name],
            "email": [self.email],
            "phone": [self.phone_e164],
            "nationalId": [self.input["nationalId"]],
            "birthDate": [self.input["birthDate"]],
            "address": [a["line1"], a["postalCode"], *([a["line2"]] if a.get("line2") else [])],
            "spend": [repr(float(self.spend))],  # "2500.0" is in "2500.00" and in a JSON 2500.0
        }


# The unowned customer, created by an admin with every sensitive field set (and e-mail consent).
ADA = Seed(
    input={
        "name": "Ada Quintessa Lovelace",
        "email": "ada.quintessa@example.org",
        "phone": "+49 30 12345678",
        "nationalId": "DE-T22000129-7731",
        "birthDate": "1985-12-10",
        "address": {
            "line1": "Schlossallee 17",
            "line2": "Hinterhaus 3",
            "postalCode": "10117",
            "city": "Berlin",
            "country": "DE",
        },
    },
    phone_e164="+493012345678",
    spend="2500.00",
    tier="silver",
)
# Partner A's own customer (created with partner A's token) and partner B's; no e-mail consent.
PAULA = Seed(
    input={
        "name": "Paula Northwind-Kundin",
        "externalRef": "nw-0001",
        "email": "paula.kundin@example.net",
        "phone": "+49 40 87654321",
        "nationalId": "NW-PASS-55443322",
        "birthDate": "1990-04-01",
        "address": {"line1": "Elbchaussee 99", "postalCode": "22763", "city": "Hamburg", "country": "DE"},
    },
    phone_e164="+494087654321",
    spend="120.50",
    tier="bronze",
)
BRUNO = Seed(
    input={
        "name": "Bruno Southwind-Kunde",
        "externalRef": "sw-0001",
        "email": "bruno.kunde@example.com",
        "phone": "+49 89 11223344",
        "nationalId": "SW-PASS-99887766",
        "birthDate": "1977-07-07",
        "address": {"line1": "Leopoldstrasse 5", "postalCode": "80802", "city": "Muenchen", "country": "DE"},
    },
    phone_e164="+498911223344",
    spend="99.99",
    tier="bronze",
)

ADA_COMPLAINT = "My parcel never arrived; call me back on my private line, the door code is 4711."
PAULA_COMPLAINT = "Paula's complaint text: the blender broke after two days of use."
BRUNO_COMPLAINT = "Bruno's complaint text: wrong size delivered, please swap it."
SURVEY_TEXT = "Free text answer from Paula: the courier was rude to my grandmother."

UNKNOWN_UUID = uuid.UUID("00000000-0000-4000-8000-000000000000")


# ---------------------------------------------------------------- ids and responses


def gid(type_name: str, raw: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{raw}".encode()).decode().rstrip("=")


def raw_id(global_id: str) -> uuid.UUID:
    padded = global_id + "=" * (-len(global_id) % 4)
    return uuid.UUID(base64.urlsafe_b64decode(padded).decode().partition(":")[2])


def errors_at(body: dict[str, Any], path: Iterable[str | int]) -> list[dict[str, Any]]:
    want = list(path)
    return [e for e in body.get("errors") or [] if e.get("path") == want]


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


def at(body: dict[str, Any], path: Iterable[str | int]) -> Any:
    value: Any = body.get("data")
    for step in path:
        if value is None:
            return None
        value = value[step]
    return value


def assert_denied_at(body: dict[str, Any], path: list[str | int]) -> None:
    """The field at ``path`` is null and carries exactly one FORBIDDEN_FIELD error at that path; its
    parent is there (the rest of the data is intact)."""
    found = errors_at(body, path)
    assert [e["extensions"]["code"] for e in found] == ["FORBIDDEN_FIELD"], (path, body.get("errors"))
    parent = at(body, path[:-1])
    assert isinstance(parent, dict), (path, body)
    assert parent[path[-1]] is None, (path, parent)


def assert_forbidden_operation(body: dict[str, Any], op: str) -> None:
    assert body["_status"] == 200, body
    found = errors_at(body, [op])
    assert [e["extensions"]["code"] for e in found] == ["FORBIDDEN"], body
    assert at(body, [op]) is None, body


def raw_text(body: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in body.items() if k != "_status"}, ensure_ascii=False)


def assert_no_plaintext(body: dict[str, Any], *secrets: str) -> None:
    text = raw_text(body)
    for secret in secrets:
        assert secret not in text, f"plaintext {secret!r} leaked: {text}"


def index_of(edges: list[dict[str, Any]], node_id: str) -> int:
    ids = [e["node"]["id"] for e in edges]
    assert node_id in ids, (node_id, ids)
    return ids.index(node_id)


# ---------------------------------------------------------------- databases


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def own_database(template_db: str) -> AsyncIterator[str]:
    """A database cloned from the migrated template, for one test module (dropped afterwards)."""
    name = f"tierwise_sec_{RUN}_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Read (or seed) the database directly, beside the API."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# ---------------------------------------------------------------- the world


@dataclass
class World:
    api: Api
    tokens: dict[str, str] = field(default_factory=dict)  # role, "partner" (A) or "partner_b" -> bearer token
    partner_a: uuid.UUID | None = None
    partner_b: uuid.UUID | None = None
    ada: str = ""  # global ids
    paula: str = ""
    bruno: str = ""
    ada_complaint: str = ""
    paula_complaint: str = ""
    bruno_complaint: str = ""
    survey: str = ""
    question_nps: str = ""
    question_text: str = ""
    paula_response: str = ""

    @property
    def url(self) -> str:
        return self.api.url

    async def gql(self, who: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.api.gql(self.tokens[who], query, variables)

    def seed_of(self, customer_id: str) -> Seed:
        return {self.ada: ADA, self.paula: PAULA, self.bruno: BRUNO}[customer_id]

    def complaint_of(self, customer_id: str) -> tuple[str, str]:
        """(complaint id, its description) of a seeded customer."""
        return {
            self.ada: (self.ada_complaint, ADA_COMPLAINT),
            self.paula: (self.paula_complaint, PAULA_COMPLAINT),
            self.bruno: (self.bruno_complaint, BRUNO_COMPLAINT),
        }[customer_id]


def ok(body: dict[str, Any], name: str) -> dict[str, Any]:
    assert body["_status"] == 200, body
    assert not body.get("errors"), body
    payload: dict[str, Any] = body["data"][name]
    assert payload["userErrors"] == [], payload
    return payload


CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
    customer { id version } userErrors { field code message } } }"""
OPEN = """mutation($input: OpenComplaintInput!) { openComplaint(input: $input) {
    complaint { id } userErrors { field code message } } }"""
RECORD = """mutation($input: RecordPurchasesInput!) { recordPurchases(input: $input) {
    insertedCount userErrors { field code message } } }"""
SUBMIT = """mutation($input: SubmitSurveyResponseInput!) { submitSurveyResponse(input: $input) {
    response { id } userErrors { field code message } } }"""


def complaint_input(customer: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "customerId": customer,
        "subject": "Delivery problem",
        "description": description,
        "category": "delivery",
        "severity": "MEDIUM",
        "channel": "WEB",
        **extra,
    }


async def build_world(api: Api) -> World:
    w = World(api=api)
    for role in STAFF_ROLES:
        w.tokens[role] = await api.user(STAFF_USERS[role], role)
    w.tokens["partner"], w.partner_a = await api.partner_token(partner=PARTNER_A)
    w.tokens["partner_b"], w.partner_b = await api.partner_token(partner=PARTNER_B)

    for attr, who, seed in (("ada", "admin", ADA), ("paula", "partner", PAULA), ("bruno", "partner_b", BRUNO)):
        setattr(w, attr, ok(await w.gql(who, CREATE, {"input": seed.input}), "createCustomer")["customer"]["id"])
    # Ada consented to e-mail (no mutation sets consent yet): marketing may see her address.
    await sql(api.url, "UPDATE customers SET consent_email_at = now() WHERE id = $1", raw_id(w.ada))

    for attr, who, customer, text in (
        ("ada_complaint", "admin", w.ada, ADA_COMPLAINT),
        ("paula_complaint", "partner", w.paula, PAULA_COMPLAINT),
        ("bruno_complaint", "partner_b", w.bruno, BRUNO_COMPLAINT),
    ):
        opened = ok(await w.gql(who, OPEN, {"input": complaint_input(customer, text)}), "openComplaint")
        setattr(w, attr, opened["complaint"]["id"])

    for who, customer, seed in (("admin", w.ada, ADA), ("partner", w.paula, PAULA), ("partner_b", w.bruno, BRUNO)):
        inp = {"purchases": [{"customerId": customer, "amount": seed.spend, "externalId": f"seed-{who}"}]}
        assert ok(await w.gql(who, RECORD, {"input": inp}), "recordPurchases")["insertedCount"] == 1

    survey = ok(
        await w.gql(
            "admin",
            """mutation { createSurvey(input: {title: "After delivery",
        channels: [EMAIL], trigger: MANUAL, status: ACTIVE, perComplaint: false,
        questions: [{kind: NPS, dimension: "nps", prompt: "Recommend us?"},
                    {kind: TEXT, dimension: "comment", prompt: "Anything else?", required: false}]}) {
        survey { id questions { id kind } } userErrors { field code message } } }""",
        ),
        "createSurvey",
    )["survey"]
    w.survey = survey["id"]
    w.question_nps, w.question_text = (q["id"] for q in survey["questions"])
    answer = {
        "surveyId": w.survey,
        "customerId": w.paula,
        "channel": "EMAIL",
        "externalId": "resp-paula",
        "answers": [{"questionId": w.question_nps, "score": 9}, {"questionId": w.question_text, "text": SURVEY_TEXT}],
    }
    w.paula_response = ok(await w.gql("partner", SUBMIT, {"input": answer}), "submitSurveyResponse")["response"]["id"]
    return w


@contextlib.asynccontextmanager
async def world_for(template_db: str, **settings: Any) -> AsyncIterator[World]:
    """A world on its own database; ``settings``: overrides of the test settings (e.g. ``compiled_queries``)."""
    async with own_database(template_db) as url, running_api(url, test_settings(**settings)) as api:
        yield await build_world(api)


# The read paths the security tests run on: the compiled one (``compiled_queries``, the default) and
# strawberry's resolvers alone (the fallback of whatever the compiled path does not cover).
READ_PATHS = ("compiled", "strawberry")


@contextlib.asynccontextmanager
async def world_on_read_path(template_db: str, path: str) -> AsyncIterator[World]:
    """A world of its own whose app's reads take ``path`` (its own: the tests write, and may not meet the
    other path's rows)."""
    assert path in READ_PATHS, path
    async with world_for(template_db, compiled_queries=path == "compiled") as w:
        yield w
