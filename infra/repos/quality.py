"""Data quality and the rights of the data subject: duplicate candidates, merges, the data-quality
report, consent per channel, erasure and export.

Sensitive columns are encrypted at rest (infra/crypto.py): they are read and written through the
SQLAlchemy table objects (which decrypt and encrypt), never compared in SQL. Duplicates are found
through the blind-index columns; "missing" in the report is ``IS NULL``, which holds on ciphertext.

What erasure covers in free text: the erased customer's (and its merged duplicates') own complaints
(subject, description, every event note) and free-text survey answers are replaced by a placeholder
whatever they say; staff free text kept in plain text anywhere (``_PLAIN_FREE_TEXT``: manual-override
reasons, complaint subjects) has quotes of the customer's values cut out by a regex in SQL; audit
payloads and job arguments are searched the same way. Not covered: encrypted free text of *other*
customers (their complaint descriptions, complaint event notes typed by agents, survey answers) that
happens to quote the erased customer: it cannot be searched in SQL, and decrypting every such row of the
database inside the erasure transaction does not scale, so it is not searched.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import quality as rules
from domain.errors import Conflict, DataIntegrity, NotFound, ValidationFailed
from domain.events import EventType
from infra import crypto
from infra.repos import events as outbox
from infra.repos import scope as readable
from infra.repos.authz import write_audit
from infra.repos.base import Scope, dict_rows, escape_like
from infra.tables import (
    audit_log,
    benefit_holdouts,
    benefit_redemptions,
    churn_scores,
    complaint_events,
    complaints,
    consent_events,
    customer_merges,
    customer_metrics,
    customers,
    duplicate_dismissals,
    purchases,
    refunds,
    survey_answers,
    survey_invitations,
    survey_questions,
    survey_responses,
    tier_changes,
)

c = customers
# Free-text columns stored in plain text (not encrypted), searched for quotes of an erased customer.
_PLAIN_FREE_TEXT = (
    ("tier_changes", "reason"),
    ("customers", "tier_override_reason"),
    ("complaints", "subject"),
)  # complaint_events.note is encrypted (infra/tables.py): replaced on the customer's own complaints only
_LIVE = "deleted_at IS NULL AND merged_into_id IS NULL AND erased_at IS NULL"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------- duplicates


def _live(alias: str) -> str:
    return " AND ".join(f"{alias}.{cond}" for cond in _LIVE.split(" AND "))


def _pairs_sql(criteria: Sequence[str], scope: Scope) -> str:
    """Candidate pairs (a < b, same partner, both live) with one row per criterion that matches.

    Per criterion, the blind-index values held by more than one live customer of a partner are found
    first (one hash aggregate), then their customers through the blind-index index: the cost follows
    the number of duplicates, not the square of the table.
    """
    arms = [
        f"SELECT a.id AS a_id, b.id AS b_id, '{crit}' AS reason"
        f" FROM (SELECT partner_id, {crit}_bidx AS k FROM customers c"
        f" WHERE {_live('c')} AND {crit}_bidx IS NOT NULL{readable.customers_sql(scope, 'c')}"
        " GROUP BY 1, 2 HAVING count(*) > 1) g"
        f" JOIN customers a ON a.{crit}_bidx = g.k AND a.partner_id IS NOT DISTINCT FROM g.partner_id AND {_live('a')}"
        f" JOIN customers b ON b.{crit}_bidx = g.k AND b.partner_id IS NOT DISTINCT FROM g.partner_id"
        f" AND {_live('b')} AND a.id < b.id"
        for crit in criteria
        if crit in rules.DUPLICATE_CRITERIA  # an allow-list: nothing from the caller reaches the SQL text
    ]
    return f"WITH pairs AS ({' UNION ALL '.join(arms)})"


# Pairs (one row per matching criterion) with their dismissal, if any, through its primary key; a pair is
# dismissed while every criterion it matches on was among those it matched on when dismissed (matching on
# another one makes it a candidate again). NULL-safe: no dismissal row gives false.
_WITH_DISMISSALS = (
    " FROM pairs p LEFT JOIN duplicate_dismissals d ON d.customer_a_id = p.a_id AND d.customer_b_id = p.b_id"
)
_DISMISSED = "(bool_and(p.reason = ANY(d.criteria)) IS TRUE)"


async def duplicate_pairs(
    conn: Any,
    *,
    criteria: Sequence[str],
    scope: Scope,
    first: int,
    after: tuple[UUID, UUID] | None,
    include_dismissed: bool = False,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of candidate pairs ordered by (a, b), each with the criteria it matches on; pairs dismissed
    as "not a duplicate" are left out unless ``include_dismissed`` (each row carries its dismissal, if any:
    ``dismissed_by``, ``dismissed_at``, ``dismissal_reason``, NULL when open)."""
    if not criteria:
        return [], False
    await _no_jit(conn)
    params: dict[str, Any] = {"n": first + 1, **readable.params(scope)}
    where = ""
    if after is not None:
        where = " WHERE (p.a_id, p.b_id) > (CAST(:after_a AS uuid), CAST(:after_b AS uuid))"
        params |= {"after_a": after[0], "after_b": after[1]}
    having = "" if include_dismissed else f" HAVING NOT {_DISMISSED}"
    sql = (
        f"{_pairs_sql(criteria, scope)},"
        f" page AS (SELECT p.a_id, p.b_id, array_agg(p.reason ORDER BY p.reason) AS reasons, {_DISMISSED} AS dismissed"
        f"{_WITH_DISMISSALS}{where} GROUP BY p.a_id, p.b_id{having} ORDER BY p.a_id, p.b_id LIMIT :n)"
        " SELECT p.a_id, p.b_id, p.reasons, p.dismissed, d.dismissed_by, d.dismissed_at, d.reason AS dismissal_reason"
        " FROM page p LEFT JOIN duplicate_dismissals d ON d.customer_a_id = p.a_id AND d.customer_b_id = p.b_id"
        " ORDER BY p.a_id, p.b_id"
    )
    rows = dict_rows(await conn.execute(text(sql), params))
    return rows[:first], len(rows) > first


async def duplicate_counts(
    conn: Any, *, criteria: Sequence[str], scope: Scope, include_dismissed: bool = False
) -> tuple[int, dict[str, int]]:
    """Open candidate pairs in all, and per criterion (dismissed pairs are not open: left out unless
    ``include_dismissed``)."""
    if not criteria:
        return 0, {}
    await _no_jit(conn)
    where = "" if include_dismissed else " WHERE NOT s.dismissed"
    sql = (
        f"{_pairs_sql(criteria, scope)},"
        f" state AS (SELECT p.a_id, p.b_id, {_DISMISSED} AS dismissed{_WITH_DISMISSALS} GROUP BY p.a_id, p.b_id)"
        " SELECT p.reason, count(*) AS n, count(DISTINCT (p.a_id, p.b_id)) AS d FROM pairs p"
        f" JOIN state s ON s.a_id = p.a_id AND s.b_id = p.b_id{where} GROUP BY ROLLUP (p.reason)"
    )
    rows = (await conn.execute(text(sql), readable.params(scope))).all()
    per = {crit: 0 for crit in criteria}
    total = 0
    for r in rows:
        if r.reason is None:
            total = int(r.d)
        else:
            per[r.reason] = int(r.n)
    return total, per


async def _no_jit(conn: Any) -> None:
    """JIT compiling of these grouping statements costs seconds and saves nothing at any size we serve;
    off for the rest of the current transaction only."""
    await conn.execute(text("SET LOCAL jit = off"))


# ---------------------------------------------------------------- dismissals

# Why a candidate pair is not a duplicate: short codes, never free text (a dismissal names two customers;
# a free-text reason would be personal data to encrypt, rotate and erase).
DISMISSAL_REASONS = (
    "shared_email",  # e.g. a family or office address
    "shared_phone",  # e.g. a household or switchboard number
    "same_name_and_birth_date",  # namesakes
    "family_member",
    "different_person",
    "test_data",
    "other",
)


def _matching_criteria(one: Mapping[str, Any], two: Mapping[str, Any]) -> list[str]:
    """The duplicate criteria two customer rows match on (equal, present blind indexes)."""
    return [
        crit
        for crit in rules.DUPLICATE_CRITERIA
        if one[f"{crit}_bidx"] is not None and one[f"{crit}_bidx"] == two[f"{crit}_bidx"]
    ]


async def _pair_for_dismissal(
    conn: AsyncConnection, customer_id: UUID, other_id: UUID, scope: Scope
) -> tuple[UUID, UUID, list[str]]:
    """Both customers, locked against a concurrent merge or erasure (FOR SHARE) and checked: distinct,
    visible in the caller's scope, live, same partner. Returns (a, b) ordered, and the criteria they match on."""
    if customer_id == other_id:
        raise ValidationFailed("a customer cannot be paired with itself", field="otherId")
    stmt = (
        select(c)
        .where(c.c.id.in_([customer_id, other_id]), readable.customers(scope))
        .order_by(c.c.id)
        .with_for_update(read=True)
    )
    rows = {r["id"]: r for r in dict_rows(await conn.execute(stmt))}
    for cid, field in ((customer_id, "customerId"), (other_id, "otherId")):
        row = rows.get(cid)
        if row is None or row["deleted_at"] is not None:
            raise NotFound("no such customer", field=field)
        if row["merged_into_id"] is not None:
            raise Conflict("this customer was merged already", field=field)
        if row["erased_at"] is not None:
            raise Conflict("this customer was erased", field=field)
    one, two = rows[customer_id], rows[other_id]
    if one["partner_id"] != two["partner_id"]:
        raise ValidationFailed("both customers must belong to the same partner", field="otherId")
    matched = _matching_criteria(one, two)
    a, b = sorted((customer_id, other_id))
    return a, b, matched


async def dismiss_pair(
    conn: AsyncConnection,
    customer_id: UUID,
    other_id: UUID,
    *,
    reason: str | None,
    scope: Scope,
    actor: str,
    request_id: str | None,
) -> dict[str, Any]:
    """Mark a candidate pair "not a duplicate" for the criteria it matches on now. Idempotent: dismissing
    a dismissed pair changes nothing (the first dismissal, its author and reason stay; ``changed`` is
    False, nothing is audited). A pair that came to match on another criterion since is a candidate
    again: dismissing it once more replaces the dismissal (new criteria, reason, author, time)."""
    if reason is not None and reason not in DISMISSAL_REASONS:
        raise ValidationFailed(f"reason is one of {', '.join(DISMISSAL_REASONS)}", field="reason")
    a, b, matched = await _pair_for_dismissal(conn, customer_id, other_id, scope)
    if not matched:
        raise ValidationFailed("these customers are not a duplicate candidate (no criterion matches)", field="otherId")
    d = duplicate_dismissals
    inserted = (
        await conn.execute(
            pg_insert(d)
            .values(customer_a_id=a, customer_b_id=b, reason=reason, criteria=matched, dismissed_by=actor)
            .on_conflict_do_update(
                index_elements=[d.c.customer_a_id, d.c.customer_b_id],
                set_={
                    "reason": reason,
                    "criteria": matched,
                    "dismissed_by": actor,
                    "dismissed_at": func.now(),
                },
                where=~d.c.criteria.contains(matched),  # only a pair open again: else nothing changes
            )
            .returning(*d.c)
        )
    ).one_or_none()
    if inserted is not None:
        await write_audit(
            conn,
            target_type="Customer",
            actor=actor,
            action="duplicate_pair_dismissed",
            request_id=request_id,
            target_ids=[str(a), str(b)],
            after={"a": str(a), "b": str(b), "reason": reason, "criteria": matched},
        )
        row = dict(inserted._mapping)
    else:
        row = dict((await conn.execute(select(d).where(d.c.customer_a_id == a, d.c.customer_b_id == b))).one()._mapping)
    return {"a_id": a, "b_id": b, "reasons": matched, "dismissal": row, "changed": inserted is not None}


async def restore_pair(
    conn: AsyncConnection, customer_id: UUID, other_id: UUID, *, scope: Scope, actor: str, request_id: str | None
) -> dict[str, Any]:
    """Undo a dismissal: the pair is a candidate again (if it still matches). Restoring a pair that is
    not dismissed changes nothing (``changed`` False, not audited)."""
    a, b, matched = await _pair_for_dismissal(conn, customer_id, other_id, scope)
    d = duplicate_dismissals
    removed = (
        await conn.execute(delete(d).where(d.c.customer_a_id == a, d.c.customer_b_id == b).returning(*d.c))
    ).one_or_none()
    if removed is not None:
        await write_audit(
            conn,
            target_type="Customer",
            actor=actor,
            action="duplicate_pair_restored",
            request_id=request_id,
            target_ids=[str(a), str(b)],
            before=_jsonable(
                {"reason": removed.reason, "dismissed_by": removed.dismissed_by, "dismissed_at": removed.dismissed_at}
            ),
            after={"a": str(a), "b": str(b), "criteria": matched},
        )
    return {"a_id": a, "b_id": b, "reasons": matched, "dismissal": None, "changed": removed is not None}


# ---------------------------------------------------------------- merge


async def _lock_customers(conn: AsyncConnection, ids: Sequence[UUID], scope: Scope) -> dict[UUID, dict[str, Any]]:
    stmt = select(c).where(c.c.id.in_(list(ids)), readable.customers(scope)).order_by(c.c.id).with_for_update()
    return {r["id"]: r for r in dict_rows(await conn.execute(stmt))}


async def _move(conn: AsyncConnection, table: Any, survivor_id: UUID, duplicate_id: UUID) -> int:
    result = await conn.execute(
        update(table).where(table.c.customer_id == duplicate_id).values(customer_id=survivor_id)
    )
    return int(result.rowcount or 0)


async def merge(
    conn: AsyncConnection,
    survivor_id: UUID,
    duplicate_id: UUID,
    *,
    scope: Scope,
    actor: str,
    request_id: str | None,
    survivor_version: int | None = None,
    duplicate_version: int | None = None,
) -> dict[str, Any]:
    """Merge the duplicate into the survivor, in the caller's transaction (see docs on mergeCustomers)."""
    rows = await _lock_customers(conn, [survivor_id, duplicate_id], scope)
    survivor, duplicate = rows.get(survivor_id), rows.get(duplicate_id)
    rules.check_merge(
        survivor_id,
        duplicate_id,
        survivor,
        duplicate,
        survivor_version=survivor_version,
        duplicate_version=duplicate_version,
    )
    assert survivor is not None
    assert duplicate is not None
    reasons = _matching_criteria(survivor, duplicate)

    moved: dict[str, int] = {}
    for name, table in (
        ("purchases", purchases),
        ("refunds", refunds),
        ("benefitRedemptions", benefit_redemptions),
        ("benefitHoldouts", benefit_holdouts),
        ("complaints", complaints),
        ("tierChanges", tier_changes),
        ("surveyInvitations", survey_invitations),
        ("consentEvents", consent_events),
    ):
        moved[name] = await _move(conn, table, survivor_id, duplicate_id)
    # One response per survey (and complaint) and customer: a response to a survey the survivor answered
    # too stays with the tombstone (still reachable through the merge, and exported with the survivor).
    r = survey_responses.alias("r")
    o = survey_responses.alias("o")
    clash = (
        select(o.c.id)
        .where(
            o.c.customer_id == survivor_id,
            o.c.survey_id == survey_responses.c.survey_id,
            o.c.complaint_id.is_not_distinct_from(survey_responses.c.complaint_id),
        )
        .exists()
    )
    result = await conn.execute(
        update(survey_responses)
        .where(survey_responses.c.customer_id == duplicate_id, ~clash)
        .values(customer_id=survivor_id)
    )
    moved["surveyResponses"] = int(result.rowcount or 0)
    left = (await conn.execute(select(func.count()).select_from(r).where(r.c.customer_id == duplicate_id))).scalar_one()
    moved["surveyResponsesLeft"] = int(left)
    # Earlier tombstones of the duplicate now point at the survivor (no chains to follow).
    result = await conn.execute(update(c).where(c.c.merged_into_id == duplicate_id).values(merged_into_id=survivor_id))
    moved["tombstones"] = int(result.rowcount or 0)
    await conn.execute(delete(churn_scores).where(churn_scores.c.customer_id == duplicate_id))
    await conn.execute(delete(customer_metrics).where(customer_metrics.c.customer_id == duplicate_id))

    fill = rules.fields_to_fill(survivor, duplicate)
    values: dict[str, Any] = dict(fill)
    if fill:
        sources = {**fill, "name": survivor["name"], "birth_date": fill.get("birth_date", survivor["birth_date"])}
        for value in sources.values():
            if isinstance(value, DataIntegrity):  # a value that fails its check is not copied (nor laundered)
                raise value
        indexes = crypto.current().customer_indexes(sources)
        values |= {k: v for k, v in indexes.items() if k in crypto.BLIND_INDEX_COLUMNS}
        # The duplicate's values were decrypted for its own row: re-encrypted here for the survivor's.
        values = crypto.bind_row(c, survivor_id, values)
    await conn.execute(
        update(c).where(c.c.id == survivor_id).values(**values, version=c.c.version + 1, updated_at=func.now())
    )
    await conn.execute(
        update(c)
        .where(c.c.id == duplicate_id)
        .values(merged_into_id=survivor_id, merged_at=func.now(), version=c.c.version + 1, updated_at=func.now())
    )

    record = (
        await conn.execute(
            insert(customer_merges)
            .values(
                survivor_id=survivor_id,
                duplicate_id=duplicate_id,
                reasons=reasons,
                filled_fields=sorted(fill),
                moved=moved,
                actor=actor,
            )
            .returning(*customer_merges.c)
        )
    ).one()
    await outbox.emit(
        conn,
        EventType.CUSTOMER_MERGED,
        survivor_id,
        {
            "customerId": outbox.global_id("Customer", survivor_id),
            "duplicateId": outbox.global_id("Customer", duplicate_id),
        },
    )
    await write_audit(
        conn,
        target_type="Customer",
        actor=actor,
        action="customers_merged",
        request_id=request_id,
        target_ids=[str(survivor_id), str(duplicate_id)],
        fields=sorted(fill),
        after={"survivor": str(survivor_id), "duplicate": str(duplicate_id), "reasons": reasons, "moved": moved},
    )
    return dict(record._mapping)


async def merges_of(conn: Any, customer_id: UUID) -> list[dict[str, Any]]:
    m = customer_merges
    stmt = (
        select(m)
        .where(or_(m.c.survivor_id == customer_id, m.c.duplicate_id == customer_id))
        .order_by(m.c.merged_at, m.c.id)
    )
    return dict_rows(await conn.execute(stmt))


# ---------------------------------------------------------------- consent


async def set_consent(
    conn: AsyncConnection,
    customer_id: UUID,
    channel: str,
    given: bool,
    *,
    scope: Scope,
    actor: str,
    request_id: str | None,
    expected_version: int | None = None,
) -> bool:
    """Give or withdraw consent on one channel; returns whether anything changed (a repeat is a no-op)."""
    if channel not in rules.CONSENT_CHANNELS:
        raise ValidationFailed(f"channel is one of {', '.join(rules.CONSENT_CHANNELS)}", field="channel")
    row = (await _lock_customers(conn, [customer_id], scope)).get(customer_id)
    if row is None or row["deleted_at"] is not None or row["merged_into_id"] is not None:
        raise NotFound("no such customer", field="customerId")
    if row["erased_at"] is not None:
        raise Conflict("the customer was erased", field="customerId")
    if expected_version is not None and row["version"] != expected_version:
        raise Conflict(f"the customer changed meanwhile (now at version {row['version']})", field="expectedVersion")
    column = f"consent_{channel}_at"
    if (row[column] is not None) == given:
        return False
    await conn.execute(
        update(c)
        .where(c.c.id == customer_id)
        .values({column: func.now() if given else None, "version": c.c.version + 1, "updated_at": func.now()})
    )
    await conn.execute(
        insert(consent_events).values(customer_id=customer_id, channel=channel, given=given, actor=actor)
    )
    await write_audit(
        conn,
        target_type="Customer",
        actor=actor,
        action="consent_given" if given else "consent_withdrawn",
        request_id=request_id,
        target_ids=[str(customer_id)],
        fields=[f"Customer.consent.{channel}"],
        after={"channel": channel, "given": given},
    )
    return True


# ---------------------------------------------------------------- erasure


async def _erase_text(conn: AsyncConnection, table: Any, column: str, ids: list[Any], **plain: Any) -> int:
    """Overwrite ``column`` of the rows ``ids`` with the erased placeholder, encrypted for each row."""
    if ids:
        stmt = update(table).where(table.c.id == bindparam("row_id")).values({column: bindparam("sealed"), **plain})
        await conn.execute(stmt, [{"row_id": i, "sealed": crypto.for_row(i, rules.ERASED_TEXT)} for i in ids])
    return len(ids)


async def erase(
    conn: AsyncConnection, customer_id: UUID, *, scope: Scope, actor: str, request_id: str | None
) -> dict[str, Any]:
    """Remove every sensitive value of the customer (and of the duplicates merged into it), everywhere.

    Kept: purchases, tier history, metrics, scores, complaint and survey structure (so aggregates and
    reports stay right). Cannot be undone: the values are overwritten, not hidden; a second erase is
    refused with a CONFLICT.
    """
    row = (await _lock_customers(conn, [customer_id], scope)).get(customer_id)
    if row is None:
        raise NotFound("no such customer", field="id")
    if row["erased_at"] is not None:
        raise Conflict(f"the customer was erased already at {row['erased_at'].isoformat()}", field="id")
    tombstones = [r[0] for r in (await conn.execute(select(c.c.id).where(c.c.merged_into_id == customer_id))).all()]
    ids = [customer_id, *tombstones]
    people = [
        {k: v for k, v in p.items() if not isinstance(v, DataIntegrity)}  # unreadable: overwritten all the same
        for p in (await _lock_customers(conn, ids, scope)).values()
    ]
    needles = sorted({n for p in people for n in rules.erasure_needles(p)})

    cleared: dict[str, Any] = {
        "name": rules.ERASED_NAME,
        "email": None,
        "phone": None,
        "national_id": None,
        "birth_date": None,
        "address": None,
        "locale": None,
        "external_ref": None,
        "consent_email_at": None,
        "consent_sms_at": None,
        "consent_phone_at": None,
        "tier_override_reason": None,
        **dict.fromkeys(crypto.BLIND_INDEX_COLUMNS),
    }
    await conn.execute(
        update(c)
        .where(c.c.id.in_(ids))
        .values(**cleared, erased_at=func.now(), version=c.c.version + 1, updated_at=func.now())
    )
    # The placeholder is encrypted like any value, bound to each row: one token per row (infra/crypto.py).
    counts: dict[str, int] = {"customers": len(ids)}
    complaint_ids = [r[0] for r in await conn.execute(select(complaints.c.id).where(complaints.c.customer_id.in_(ids)))]
    counts["complaints"] = await _erase_text(conn, complaints, "description", complaint_ids, subject=rules.ERASED_TEXT)
    note_ids = [
        r[0]
        for r in await conn.execute(
            select(complaint_events.c.id).where(
                complaint_events.c.complaint_id.in_(complaint_ids or [None]), complaint_events.c.note.is_not(None)
            )
        )
    ]
    counts["complaintNotes"] = await _erase_text(conn, complaint_events, "note", note_ids)
    response_ids = select(survey_responses.c.id).where(survey_responses.c.customer_id.in_(ids)).scalar_subquery()
    answer_ids = [
        r[0]
        for r in await conn.execute(
            select(survey_answers.c.id).where(
                survey_answers.c.response_id.in_(response_ids), survey_answers.c.text.is_not(None)
            )
        )
    ]
    counts["surveyAnswers"] = await _erase_text(conn, survey_answers, "text", answer_ids)
    # A manual override's reason is free text written by staff (it may name the customer).
    result = await conn.execute(
        update(tier_changes)
        .where(tier_changes.c.customer_id.in_(ids), tier_changes.c.change_type == "manual_override")
        .values(reason=f"manual override: {rules.ERASED_TEXT}")
    )
    counts["tierChangeReasons"] = int(result.rowcount or 0)

    # Plain-text free text of anyone (override reasons, subjects) that quotes one of the values: the value is
    # cut out. Encrypted free text of other customers (descriptions, event notes, survey answers) cannot be
    # searched without decrypting it all: not covered (module docstring).
    if needles:
        pattern = "|".join(re.escape(n) for n in needles)
        for table, column in _PLAIN_FREE_TEXT:
            result = await conn.execute(
                text(
                    f"UPDATE {table} SET {column} = regexp_replace({column}, :re, :erased, 'gi') WHERE {column} ~* :re"
                ),
                {"re": pattern, "erased": rules.ERASED_TEXT},
            )
            counts["quotes"] = counts.get("quotes", 0) + int(result.rowcount or 0)
    # Audit payloads: those about the customer, and any other that quotes one of its values. The rows stay
    # (who did what, when, to which ids); their before/after payloads are replaced.
    result = await conn.execute(
        text(
            "UPDATE audit_log SET before = CASE WHEN before IS NULL THEN NULL ELSE CAST(:s AS jsonb) END,"
            " after = CASE WHEN after IS NULL THEN NULL ELSE CAST(:s AS jsonb) END"
            " WHERE (before IS NOT NULL OR after IS NOT NULL)"
            " AND (target_ids && CAST(:ids AS text[])"
            " OR coalesce(before::text, '') ILIKE ANY(CAST(:p AS text[]))"
            " OR coalesce(after::text, '') ILIKE ANY(CAST(:p AS text[])))"
        ),
        {
            "s": json.dumps({"erased": True}),
            "ids": [str(i) for i in ids],
            "p": [f"%{escape_like(n)}%" for n in needles],
        },
    )
    counts["auditEntries"] = int(result.rowcount or 0)
    counts["jobs"] = await _scrub_jobs(conn, needles, [str(i) for i in ids])
    await outbox.emit(
        conn, EventType.CUSTOMER_ERASED, customer_id, {"customerId": outbox.global_id("Customer", customer_id)}
    )

    await write_audit(
        conn,
        target_type="Customer",
        actor=actor,
        action="customer_erased",
        request_id=request_id,
        target_ids=[str(i) for i in ids],
        fields=sorted(k for k in cleared if not k.endswith("_bidx")),
        after=counts,
    )
    at = (await conn.execute(select(c.c.erased_at).where(c.c.id == customer_id))).scalar_one()
    return {"ids": ids, "erased_at": at, "counts": counts}


async def _scrub_jobs(conn: AsyncConnection, needles: list[str], ids: list[str]) -> int:
    """Job arguments that mention the customer: finished jobs are deleted (their history goes with
    them); waiting ones keep running with the values replaced."""
    terms = [*needles, *ids]
    if not terms:
        return 0
    patterns = [f"%{escape_like(t)}%" for t in terms]
    found = (
        await conn.execute(
            text("SELECT id, status::text AS status, args FROM procrastinate_jobs WHERE args::text ILIKE ANY(:p)"),
            {"p": patterns},
        )
    ).all()
    for job in found:
        if job.status in ("todo", "doing"):
            raw = json.dumps(job.args)
            for needle in needles:  # found case-blind (ILIKE above): replaced case-blind too
                raw = re.sub(re.escape(json.dumps(needle)[1:-1]), rules.ERASED_TEXT, raw, flags=re.IGNORECASE)
            await conn.execute(
                text("UPDATE procrastinate_jobs SET args = CAST(:a AS jsonb) WHERE id = :id"), {"a": raw, "id": job.id}
            )
        else:
            await conn.execute(text("DELETE FROM procrastinate_jobs WHERE id = :id"), {"id": job.id})
    return len(found)


# ---------------------------------------------------------------- export


async def export(conn: Any, customer_id: UUID, *, scope: Scope) -> dict[str, Any]:
    """Everything held about one customer (and the duplicates merged into it), decrypted, as JSON."""
    stmt = select(c).where(c.c.id == customer_id, c.c.deleted_at.is_(None), readable.customers(scope))
    found = dict_rows(await conn.execute(stmt))
    if not found:
        raise NotFound("no such customer", field="id")
    row = found[0]
    tombstones = dict_rows(await conn.execute(select(c).where(c.c.merged_into_id == customer_id).order_by(c.c.id)))
    ids = [customer_id, *[t["id"] for t in tombstones]]

    def profile(r: dict[str, Any]) -> dict[str, Any]:
        hidden = {*crypto.BLIND_INDEX_COLUMNS, "consent_email_at", "consent_sms_at", "consent_phone_at"}
        return {k: v for k, v in r.items() if k not in hidden}

    async def rows_of(stmt: Any) -> list[dict[str, Any]]:
        return dict_rows(await conn.execute(stmt))

    complaint_rows = await rows_of(
        select(complaints).where(complaints.c.customer_id.in_(ids)).order_by(complaints.c.opened_at)
    )
    events = await rows_of(
        select(complaint_events)
        .where(complaint_events.c.complaint_id.in_([x["id"] for x in complaint_rows] or [None]))
        .order_by(complaint_events.c.id)
    )
    for complaint in complaint_rows:
        complaint["events"] = [e for e in events if e["complaint_id"] == complaint["id"]]
    responses = await rows_of(
        select(survey_responses)
        .where(survey_responses.c.customer_id.in_(ids))
        .order_by(survey_responses.c.submitted_at)
    )
    answers = await rows_of(
        select(survey_answers, survey_questions.c.prompt, survey_questions.c.dimension)
        .join(survey_questions, survey_questions.c.id == survey_answers.c.question_id)
        .where(survey_answers.c.response_id.in_([x["id"] for x in responses] or [None]))
        .order_by(survey_answers.c.id)
    )
    for response in responses:
        response["answers"] = [a for a in answers if a["response_id"] == response["id"]]
    metrics = await rows_of(select(customer_metrics).where(customer_metrics.c.customer_id == customer_id))
    churn_row = await rows_of(select(churn_scores).where(churn_scores.c.customer_id == customer_id))
    audit = await rows_of(
        select(audit_log)
        .where(audit_log.c.target_ids.overlap([str(i) for i in ids]), readable.audit_entries(scope))
        .order_by(audit_log.c.at, audit_log.c.id)
        .limit(10_000)
    )
    own = {str(i) for i in ids}
    for entry in audit:  # an entry about several customers: only the fact, not the others or their values
        if not set(entry["target_ids"]) <= own:
            entry["target_ids"] = [t for t in entry["target_ids"] if t in own]
            entry["before"] = entry["after"] = None
    data = {
        "exportedAt": dt.datetime.now(dt.UTC),
        "customer": profile(row),
        "consent": {
            "email": row["consent_email_at"],
            "sms": row["consent_sms_at"],
            "phone": row["consent_phone_at"],
            "events": await rows_of(
                select(consent_events).where(consent_events.c.customer_id.in_(ids)).order_by(consent_events.c.id)
            ),
        },
        "tier": {
            "code": row["tier_code"],
            "since": row["tier_since"],
            "policyVersion": row["tier_policy_version"],
            "override": row["tier_override_code"],
            "overrideReason": row["tier_override_reason"],
            "history": await rows_of(
                select(tier_changes).where(tier_changes.c.customer_id.in_(ids)).order_by(tier_changes.c.id)
            ),
        },
        "metrics": metrics[0] if metrics else None,
        "churnRisk": churn_row[0] if churn_row else None,
        "purchases": await rows_of(
            select(purchases).where(purchases.c.customer_id.in_(ids)).order_by(purchases.c.purchased_at)
        ),
        "refunds": await rows_of(select(refunds).where(refunds.c.customer_id.in_(ids)).order_by(refunds.c.refunded_at)),
        "benefitRedemptions": await rows_of(
            select(benefit_redemptions)
            .where(benefit_redemptions.c.customer_id.in_(ids))
            .order_by(benefit_redemptions.c.redeemed_at)
        ),
        "benefitHoldouts": await rows_of(
            select(benefit_holdouts)
            .where(benefit_holdouts.c.customer_id.in_(ids))
            .order_by(benefit_holdouts.c.starts_at)
        ),
        "complaints": complaint_rows,
        "surveyInvitations": await rows_of(
            select(survey_invitations)
            .where(survey_invitations.c.customer_id.in_(ids))
            .order_by(survey_invitations.c.id)
        ),
        "surveyResponses": responses,
        "merges": await merges_of(conn, customer_id),
        "mergedDuplicates": [profile(t) for t in tombstones],
        "auditEntries": audit,
    }
    # A value that fails its integrity check (infra/crypto.py) is exported as null, and its column named.
    unreadable: set[str] = set()

    def default(value: Any) -> Any:
        if isinstance(value, DataIntegrity):
            unreadable.add(value.field or "?")
            return None
        return str(value)

    result: dict[str, Any] = json.loads(json.dumps(data, default=default))
    if unreadable:
        result["dataIntegrityErrors"] = sorted(unreadable)
    return result


# ---------------------------------------------------------------- data-quality report


async def report(
    conn: Any, *, required: Sequence[str], criteria: Sequence[str], stale_days: int, scope: Scope
) -> dict[str, Any]:
    await _no_jit(conn)
    fields = [f for f in required if f in rules.REPORTABLE_FIELDS]  # allow-list
    missing_cols = "".join(f", count(*) FILTER (WHERE {f} IS NULL AND {_LIVE}) AS missing_{f}" for f in fields)
    params = {**readable.params(scope), "stale_days": stale_days}
    counts = (
        await conn.execute(
            text(
                f"SELECT count(*) FILTER (WHERE {_LIVE}) AS live,"
                " count(*) FILTER (WHERE erased_at IS NOT NULL) AS erased,"
                " count(*) FILTER (WHERE merged_into_id IS NOT NULL) AS merged"
                f"{missing_cols}"
                f" FROM customers c WHERE true{readable.customers_sql(scope, 'c')}"
            ),
            params,
        )
    ).one()
    live = int(counts.live)
    missing = [
        {
            "field": f,
            "missing": int(getattr(counts, f"missing_{f}")),
            "share": round(int(getattr(counts, f"missing_{f}")) / live, 4) if live else 0.0,
        }
        for f in fields
    ]
    total_pairs, per_criterion = await duplicate_counts(conn, criteria=criteria, scope=scope)
    months = (
        await conn.execute(
            text(
                "SELECT to_char(date_trunc('month', m.merged_at AT TIME ZONE 'UTC'), 'YYYY-MM') AS month,"
                " count(*) AS merges FROM customer_merges m JOIN customers s ON s.id = m.survivor_id"
                f" WHERE m.merged_at > now() - interval '24 months'{readable.customers_sql(scope, 's')}"
                " GROUP BY 1 ORDER BY 1"
            ),
            params,
        )
    ).all()
    stale = (
        await conn.execute(
            text(
                "WITH ages AS (SELECT extract(epoch FROM now() - m.computed_at) / 3600.0 AS hours"
                " FROM customers c LEFT JOIN customer_metrics m ON m.customer_id = c.id"
                f" WHERE {_live('c')}{readable.customers_sql(scope, 'c')})"
                " SELECT count(*) AS customers, count(*) FILTER (WHERE hours IS NULL) AS without_metrics,"
                " percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS p50,"
                " percentile_cont(0.9) WITHIN GROUP (ORDER BY hours) AS p90,"
                " percentile_cont(0.99) WITHIN GROUP (ORDER BY hours) AS p99,"
                " max(hours) AS max,"
                " count(*) FILTER (WHERE hours > :stale_days * 24) AS stale FROM ages"
            ),
            params,
        )
    ).one()

    def hours(v: Any) -> float | None:
        return None if v is None else round(float(v), 2)

    return {
        "live": live,
        "erased": int(counts.erased),
        "merged": int(counts.merged),
        "missing": missing,
        "duplicate_pairs": total_pairs,
        "duplicates": [{"criterion": k, "pairs": v} for k, v in per_criterion.items()],
        "merges_by_month": [{"month": r.month, "merges": int(r.merges)} for r in months],
        "staleness": {
            "customers": int(stale.customers),
            "without_metrics": int(stale.without_metrics),
            "median_hours": hours(stale.p50),
            "p90_hours": hours(stale.p90),
            "p99_hours": hours(stale.p99),
            "max_hours": hours(stale.max),
            "older_than_days": stale_days,
            "stale_customers": int(stale.stale),
        },
    }
