"""The outbox: each change emits its event once, from the one statement that makes it, in its transaction;
a rolled-back transaction leaves no event, no delivery, no job and no notification."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
from sqlalchemy import text

from api.graphql.core.ids import to_global_id
from authz.catalogue import CATALOGUE, EVENT_DATA, EVENT_REVEALS
from domain.churn import MODEL
from domain.events import EVENT_TYPES, EventType
from infra import churn, sla
from infra.repos import events as outbox
from tests.api.helpers import create_customer, open_complaint, raw_id
from tests.conftest import Api
from tests.integration.test_sla_sweep import _age


async def _events(api: Api, event_type: str) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text("SELECT type, customer_id, partner_id, data FROM events WHERE type = :t ORDER BY seq"),
                    {"t": event_type},
                )
            ).all()
        )


async def _sweep(api: Api) -> None:
    async with api.services.engine.begin() as conn:
        await sla.sweep(conn, auto_close_days=7, critical_fraction=0.5)


async def test_a_breach_and_an_escalation_emit_one_event_each(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Late Case"))["id"]
    late = await open_complaint(api, admin, customer, subject="late", severity="LOW")
    await _age(api, late["id"], dt.timedelta(hours=25))  # bronze, low: 24 h to a first response

    await _sweep(api)
    await _sweep(api)  # a second sweep finds nothing new

    breached = await _events(api, "complaint.sla_breached")
    escalated = await _events(api, "complaint.escalated")
    assert [e.data for e in breached] == [
        {"complaintId": late["id"], "customerId": customer, "clocks": ["first_response"]}
    ]
    assert [e.data for e in escalated] == [
        {"complaintId": late["id"], "customerId": customer, "reason": "first_response_breached"}
    ]
    for event in (*breached, *escalated):  # every key of a payload is declared (what it reveals)
        assert set(event.data) == set(EVENT_DATA[event.type])
    assert breached[0].customer_id == raw_id(customer)


async def test_a_churn_rise_emits_once(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Drifting Away"))["id"]
    everyone_red = dataclasses.replace(MODEL, yellow_at=0, red_at=0)
    for _ in range(2):  # the second refresh finds the level already red: no rise
        async with api.services.engine.begin() as conn:
            await churn.refresh(conn, [raw_id(customer)], everyone_red)
    raised = await _events(api, "churn.risk_raised")
    assert [e.data["customerId"] for e in raised] == [customer]
    assert set(raised[0].data) == set(EVENT_DATA["churn.risk_raised"])
    assert raised[0].data["toLevel"] == "red"
    assert raised[0].data["fromLevel"] in ("green", None)


async def test_a_rolled_back_change_leaves_no_event_delivery_job_or_notification(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Never Merged"))["id"]
    await api.gql(
        admin,
        """mutation { registerWebhookEndpoint(input: {url: "https://hooks.example.com/x",
        eventTypes: [CUSTOMER_ERASED]}) { endpoint { id } } }""",
    )
    listener = await asyncpg.connect(api.url)
    heard: list[str] = []
    await listener.add_listener(outbox.CHANNEL, lambda *args: heard.append(args[-1]))
    try:
        counts = "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM webhook_deliveries), " + (
            "(SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'tierwise.webhook_deliver')"
        )
        async with api.services.engine.connect() as conn:
            before = (await conn.execute(text(counts))).one()
        try:
            async with api.services.engine.begin() as conn:
                await outbox.emit(conn, EventType.CUSTOMER_ERASED, raw_id(customer), {"customerId": customer})
                inside = (await conn.execute(text(counts))).one()
                raise RuntimeError("the change fails after its event was written")
        except RuntimeError:
            pass
        await asyncio.sleep(0.3)
        async with api.services.engine.connect() as conn:
            after = (await conn.execute(text(counts))).one()
        assert tuple(inside) == (before[0] + 1, before[1] + 1, before[2] + 1)  # written, fanned out, queued…
        assert tuple(after) == tuple(before)  # …and gone with the transaction
        assert heard == []

        async with api.services.engine.begin() as conn:  # committed: heard once, with its facts
            await outbox.emit(conn, EventType.CUSTOMER_ERASED, raw_id(customer), {"customerId": customer})
        for _ in range(20):
            if heard:
                break
            await asyncio.sleep(0.05)
        assert [json.loads(h)["data"] for h in heard] == [{"customerId": customer}]
    finally:
        await listener.close()


async def test_global_ids_in_sql_python_and_the_api_agree(api: Api) -> None:
    ids = [uuid.uuid4() for _ in range(50)]
    async with api.services.engine.connect() as conn:
        for type_name in ("Customer", "Complaint", "SurveyResponse"):
            sql = f"SELECT {outbox.global_id_sql(type_name, 'x')} FROM unnest(CAST(:ids AS uuid[])) AS x"
            got = list((await conn.execute(text(sql), {"ids": ids})).scalars())
            assert got == [to_global_id(type_name, i) for i in ids]
            assert got == [outbox.global_id(type_name, i) for i in ids]


def test_every_event_type_declares_what_it_reveals() -> None:
    assert set(EVENT_REVEALS) == set(EVENT_TYPES)
    for fields in EVENT_REVEALS.values():
        assert all(f in CATALOGUE for f in fields)
    assert set(EVENT_DATA) == set(EVENT_TYPES)
    for keys in EVENT_DATA.values():
        assert all(f in CATALOGUE for fields in keys.values() for f in fields), keys
