"""Small helpers shared by the API tests: build data through the GraphQL API (the paths users take)
and look at the database directly only to prove what was, or was not, written."""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text

from api.usecases.caller import Caller
from authz.principal import Principal, PrincipalKind
from infra.repos.base import Scope
from tests.conftest import _MADE, RUN, Api, _admin_execute, _url_for, running_api, test_settings


@contextlib.asynccontextmanager
async def module_api(template_db: str, **settings: Any) -> AsyncIterator[Api]:
    """A running app on its own database cloned from the template, for a whole test module
    (``settings``: overrides of the test settings).

    For modules whose tests build their own data and assert only on it (or on before/after snapshots),
    so they can share one database and skip the per-test create/drop.
    """
    name = f"tierwise_m_{RUN}_{uuid.uuid4().hex[:10]}"
    await _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    _MADE.append(name)  # dropped with the others at the end of the run (see tests/conftest.py)
    async with running_api(_url_for(name), test_settings(**settings)) as api:
        yield api


USER_ERRORS = "userErrors { field code message }"
CUSTOMER_FIELDS = "id name email phone version createdAt updatedAt"

CREATE_CUSTOMER = f"""
mutation($input: CreateCustomerInput!) {{
  createCustomer(input: $input) {{ customer {{ {CUSTOMER_FIELDS} }} {USER_ERRORS} }}
}}"""
UPDATE_CUSTOMER = f"""
mutation($input: UpdateCustomerInput!) {{
  updateCustomer(input: $input) {{ customer {{ {CUSTOMER_FIELDS} }} {USER_ERRORS} }}
}}"""
DELETE_CUSTOMER = f"""
mutation($input: DeleteCustomerInput!) {{ deleteCustomer(input: $input) {{ deletedId {USER_ERRORS} }} }}"""
RECORD_PURCHASES = f"""
mutation($input: RecordPurchasesInput!) {{
  recordPurchases(input: $input) {{
    insertedCount
    purchases {{ id externalId amount currency purchasedAt }}
    {USER_ERRORS}
  }}
}}"""
OPEN_COMPLAINT = f"""
mutation($input: OpenComplaintInput!) {{
  openComplaint(input: $input) {{
    complaint {{ id version status tierAtOpen openedAt firstResponseDueAt resolutionDueAt }}
    {USER_ERRORS}
  }}
}}"""
TRANSITION_COMPLAINT = f"""
mutation($input: TransitionComplaintInput!) {{
  transitionComplaint(input: $input) {{
    complaint {{ id version status assignee resolutionCode reopenCount firstRespondedAt resolvedAt closedAt }}
    {USER_ERRORS}
  }}
}}"""
CREATE_SURVEY = f"""
mutation($input: CreateSurveyInput!) {{
  createSurvey(input: $input) {{ survey {{ id status channels questions {{ id kind required }} }} {USER_ERRORS} }}
}}"""
SUBMIT_RESPONSE = f"""
mutation($input: SubmitSurveyResponseInput!) {{
  submitSurveyResponse(input: $input) {{ response {{ id }} {USER_ERRORS} }}
}}"""


def caller_of(api: Api, subject: str, *roles: str, partner_id: uuid.UUID | None = None) -> Caller:
    """A use-case caller holding ``roles`` (a partner token's when ``partner_id`` is given), built as the
    request context builds it: its decisions from the running policy, its partner's row scope."""
    kind = PrincipalKind.TOKEN if partner_id else PrincipalKind.USER
    principal = Principal(kind, subject, roles=roles, partner_id=partner_id)
    decisions = api.services.authz.store.decisions_of(principal)
    return Caller(principal.subject, principal, Scope(partner_id=partner_id), f"req-{subject}", decisions)


def global_id(type_name: str, raw: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{raw}".encode()).decode().rstrip("=")


def raw_id(gid: str) -> uuid.UUID:
    padded = gid + "=" * (-len(gid) % 4)
    return uuid.UUID(base64.urlsafe_b64decode(padded).decode().partition(":")[2])


def payload(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The payload of mutation ``name``, asserting the request itself succeeded."""
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][name]
    return result


def ok(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The payload of mutation ``name``, asserting it had no user errors."""
    result = payload(body, name)
    assert result["userErrors"] == [], result["userErrors"]
    return result


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def create_customer(
    api: Api, token: str, *, select: str = "id name version createdAt updatedAt", **fields: Any
) -> dict[str, Any]:
    """Create a customer through the API; ``select`` must be readable by the caller (partners: no contact data)."""
    fields.setdefault("name", "Test Customer")
    query = f"""mutation($input: CreateCustomerInput!) {{
      createCustomer(input: $input) {{ customer {{ {select} }} {USER_ERRORS} }} }}"""
    body = await api.gql(token, query, {"input": fields})
    customer: dict[str, Any] = ok(body, "createCustomer")["customer"]
    return customer


async def create_nps_survey(api: Api, token: str, channels: tuple[str, ...] = ("WEB",)) -> dict[str, Any]:
    """An active one-question NPS survey (dimension loyalty), created through the API."""
    body = await api.gql(
        token,
        CREATE_SURVEY,
        {
            "input": {
                "title": "NPS",
                "channels": list(channels),
                "questions": [{"kind": "NPS", "dimension": "loyalty", "prompt": "?"}],
            }
        },
    )
    return ok(body, "createSurvey")["survey"]


async def record_purchases(api: Api, token: str, *items: dict[str, Any]) -> dict[str, Any]:
    return ok(await api.gql(token, RECORD_PURCHASES, {"input": {"purchases": list(items)}}), "recordPurchases")


async def open_complaint(api: Api, token: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    values = {
        "customerId": customer_id,
        "subject": "Parcel late",
        "description": "It has not arrived.",
        "category": "delivery",
        **fields,
    }
    complaint: dict[str, Any] = ok(await api.gql(token, OPEN_COMPLAINT, {"input": values}), "openComplaint")[
        "complaint"
    ]
    return complaint


async def scalar(api: Api, sql: str, **params: Any) -> Any:
    async with api.services.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def count(api: Api, table: str) -> int:
    return int(await scalar(api, f"SELECT count(*) FROM {table}"))


# Every table a business write can touch (the audit log is left out: reading sensitive fields writes to it).
DATA_TABLES = (
    "customers",
    "customer_metrics",
    "purchases",
    "tier_changes",
    "complaints",
    "complaint_events",
    "teams",
    "team_members",
    "surveys",
    "survey_questions",
    "survey_responses",
    "survey_answers",
    "partners",
    "refunds",
    "benefits",
    "benefit_redemptions",
)


async def snapshot(api: Api) -> dict[str, tuple[int, str]]:
    """(row count, digest of every row) per data table: equal snapshots mean nothing was written."""
    out: dict[str, tuple[int, str]] = {}
    async with api.services.engine.connect() as conn:
        for table in DATA_TABLES:
            row = (
                await conn.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
                    )
                )
            ).one()
            out[table] = (int(row[0]), str(row[1]))
    return out
