"""The SLA clocks of complaints in SQL: the one definition of a breach and of the escalation reason
(domain/sla.py decides pause and resume only), and the set-based statements that flag breaches, escalate
and auto-close.

The breach fragments are used by the sweep (infra/sla.py), the ``breached`` filter and the complaint rows
(``clock_columns``, selected with every complaint row: the API's ``breached`` fields), the reports and the
churn inputs. ``mark_breaches`` also runs, scoped to one complaint, in the transaction of every
transition, so a clock that stops late is flagged at that moment.

The notes of the events these statements write (``complaint_events.note``) are encrypted at rest like
every other note (infra/crypto.py), each a ``tw2:`` token bound to its event's row. The set-based
statements insert the events with a placeholder naming the note (``sla:<param>``, never the text) and
return their ids; ``SystemNotes.seal`` then replaces every placeholder with its token in one UPDATE of the
same transaction, so no other transaction ever sees a placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, literal_column, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from domain import sla
from domain.complaints import TRANSITIONS
from domain.events import EventType
from infra import crypto
from infra.repos import events as outbox
from infra.repos.base import Executor

ACTIVE_SQL = "('new', 'open', 'pending_customer', 'on_hold')"
assert set(sla.ACTIVE_STATUSES) == {"new", "open", "pending_customer", "on_hold"}


# ---------------------------------------------------------------- breach and escalation: the one definition


def first_response_late_sql(k: str = "k", now: str = "now()") -> str:
    """The first-response clock stopped (or is at ``now``) strictly after its deadline."""
    return (
        f"({k}.first_response_due_at IS NOT NULL"
        f" AND coalesce({k}.first_responded_at, {now}) > {k}.first_response_due_at)"
    )


def resolution_late_sql(k: str = "k", now: str = "now()") -> str:
    """The resolution clock (stopped at the pause while paused) strictly after its deadline."""
    return (
        f"({k}.resolution_due_at IS NOT NULL"
        f" AND coalesce({k}.resolved_at, {k}.paused_since, {now}) > {k}.resolution_due_at)"
    )


def breached_sql(k: str = "k", now: str = "now()") -> str:
    """Either clock breached, by its sticky flag or as of ``now``."""
    return (
        f"({k}.first_response_breached OR {k}.resolution_breached"
        f" OR {first_response_late_sql(k, now)} OR {resolution_late_sql(k, now)})"
    )


def escalation_reason_sql(k: str = "k", now: str = "now()", fraction: str = ":fraction") -> str:
    """The escalation reason code, or NULL: a breach of either clock; for a critical complaint, also
    ``fraction`` of a running clock's time used (waiting on the customer not counted)."""
    epoch = "extract(epoch FROM {})"
    pauses = f"{k}.paused_seconds"
    return f"""CASE
        WHEN {k}.escalated_at IS NOT NULL OR {k}.status NOT IN {ACTIVE_SQL} THEN NULL
        WHEN {k}.first_response_breached OR {first_response_late_sql(k, now)} THEN '{sla.FIRST_RESPONSE_BREACHED}'
        WHEN {k}.resolution_breached OR {resolution_late_sql(k, now)} THEN '{sla.RESOLUTION_BREACHED}'
        WHEN {k}.severity <> 'critical' THEN NULL
        WHEN {k}.first_response_due_at IS NOT NULL AND {k}.first_responded_at IS NULL
             AND {epoch.format(f"{now} - {k}.opened_at")}
                 >= {epoch.format(f"{k}.first_response_due_at - {k}.opened_at")} * {fraction}
            THEN '{sla.CRITICAL_FIRST_RESPONSE_AT_RISK}'
        WHEN {k}.resolution_due_at IS NOT NULL AND {k}.resolved_at IS NULL
             AND {epoch.format(f"coalesce({k}.paused_since, {now}) - {k}.opened_at")} - {pauses}
                 >= ({epoch.format(f"{k}.resolution_due_at - {k}.opened_at")} - {pauses}) * {fraction}
            THEN '{sla.CRITICAL_RESOLUTION_AT_RISK}'
    END"""


def first_response_breached_sql(k: str = "k", now: str = "now()") -> str:
    """The first-response clock's verdict: its sticky flag, or late as of ``now``."""
    return f"({k}.first_response_breached OR {first_response_late_sql(k, now)})"


def resolution_breached_sql(k: str = "k", now: str = "now()") -> str:
    """The resolution clock's verdict: its sticky flag, or late as of ``now``."""
    return f"({k}.resolution_breached OR {resolution_late_sql(k, now)})"


def clock_columns(k: str = "complaints") -> list[Any]:
    """The verdicts of a complaint's clocks as of the statement's ``now()``, selected with its row: the API
    shows these (with ``sla_now``, the instant they hold for, from which it counts the time left). The read
    compiler selects the same expressions (authz/catalogue.STORAGE)."""
    return [
        literal_column(first_response_breached_sql(k)).label("sla_first_response_breached"),
        literal_column(resolution_breached_sql(k)).label("sla_resolution_breached"),
        func.now().label("sla_now"),
    ]


NOTE_COLUMN = "complaint_events.note"


def _breach_param(clock: str) -> str:
    return f"note_breach_{clock}"


def _escalation_param(code: str) -> str:
    return f"note_escalation_{code}"


_PLACEHOLDER = "sla:"
_SEAL_SQL = text(
    "UPDATE complaint_events e SET note = v.new"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:olds AS text[]), CAST(:news AS text[])) AS v(id, old, new)"
    " WHERE e.id = v.id AND e.note = v.old"
)


@dataclass(frozen=True)
class SystemNotes:
    """The notes the sweep writes: bound as placeholders (``:note_…`` = ``sla:note_…``) into the set-based
    inserts, then sealed per event row (``seal``)."""

    plain: dict[str, str]  # param name → note text
    auto_close_days: int | None = None
    keyring: crypto.Keyring | None = None

    @classmethod
    def make(cls, *, auto_close_days: int | None = None, keyring: crypto.Keyring | None = None) -> SystemNotes:
        plain = {_breach_param(clock): note for clock, note in sla.BREACH_NOTES.items()}
        plain |= {_escalation_param(code): note for code, note in sla.ESCALATION_NOTES.items()}
        if auto_close_days is not None:
            plain["note_auto_close"] = auto_close_note(auto_close_days)
        return cls(plain, auto_close_days, keyring)

    def pick(self, *names: str) -> dict[str, str]:
        return {name: _PLACEHOLDER + name for name in names}

    async def seal(self, conn: Executor, events: Sequence[tuple[int, str]]) -> None:
        """Replace the placeholders of the events ``(event id, placeholder)`` by their notes, each
        encrypted bound to its event (one statement, none when there is no event)."""
        if not events:
            return
        ring = self.keyring or crypto.current()
        news = [ring.encrypt(self.plain[p.removeprefix(_PLACEHOLDER)], NOTE_COLUMN, i) for i, p in events]
        await conn.execute(_SEAL_SQL, {"ids": [i for i, _ in events], "olds": [p for _, p in events], "news": news})


def auto_close_note(days: int) -> str:
    return f"closed automatically after {days} days without a reopen"


def _notes_case(column: str) -> str:
    whens = " ".join(f"WHEN '{code}' THEN :{_escalation_param(code)}" for code in sla.ESCALATION_NOTES)
    return f"CASE {column} {whens} END"


_IDS = bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True)))


def _scope(ids: Sequence[UUID] | None, *, active_only: bool) -> str:
    if ids is not None:
        return "k.id = ANY(:ids)"
    return f"k.status IN {ACTIVE_SQL}" if active_only else "true"


def _breached_events_sql() -> str:
    """One ``complaint.sla_breached`` event per complaint flagged (``flagged``), naming the clocks that breached."""
    return outbox.insert_sql(
        EventType.COMPLAINT_SLA_BREACHED,
        "flagged",
        "s.customer_id",
        {
            "complaintId": outbox.global_id_sql("Complaint", "s.id"),
            "customerId": outbox.global_id_sql("Customer", "s.customer_id"),
            "clocks": "to_jsonb(array_remove(ARRAY[CASE WHEN s.fr THEN 'first_response' END,"
            " CASE WHEN s.res THEN 'resolution' END], NULL))",
        },
    )


def _escalated_events_sql() -> str:
    """One ``complaint.escalated`` event per complaint escalated (``escalated``), with the reason code."""
    return outbox.insert_sql(
        EventType.COMPLAINT_ESCALATED,
        "escalated",
        "s.customer_id",
        {
            "complaintId": outbox.global_id_sql("Complaint", "s.id"),
            "customerId": outbox.global_id_sql("Customer", "s.customer_id"),
            "reason": "s.reason",
        },
    )


def _mark_breaches_sql(scope: str) -> str:
    fr, res = first_response_late_sql(), resolution_late_sql()
    return f"""
    WITH cand AS (
        SELECT k.id, k.customer_id, k.status,
               (NOT k.first_response_breached AND {fr}) AS fr,
               (NOT k.resolution_breached AND {res}) AS res
        FROM complaints k
        WHERE {scope}
          AND ((NOT k.first_response_breached AND {fr}) OR (NOT k.resolution_breached AND {res}))
        ORDER BY k.id
        FOR UPDATE
    ),
    flagged AS (
        UPDATE complaints k
        SET first_response_breached = k.first_response_breached OR c.fr,
            resolution_breached = k.resolution_breached OR c.res
        FROM cand c WHERE k.id = c.id
        RETURNING k.id, k.customer_id, k.status, c.fr, c.res
    ),
    events AS (
        INSERT INTO complaint_events (complaint_id, from_status, to_status, actor, note, kind)
        SELECT id, status, status, :actor, :{_breach_param("first_response")}, 'sla_breach' FROM flagged WHERE fr
        UNION ALL
        SELECT id, status, status, :actor, :{_breach_param("resolution")}, 'sla_breach' FROM flagged WHERE res
        RETURNING id, note
    ),
    emitted AS ({_breached_events_sql()})
    SELECT id, customer_id, NULL::bigint AS event_id, NULL::text AS note FROM flagged
    UNION ALL
    SELECT NULL, NULL, id, note FROM events
    """


def _escalate_sql(scope: str) -> str:
    reason = escalation_reason_sql()
    return f"""
    WITH cand AS (
        SELECT k.id, k.status, {reason} AS reason
        FROM complaints k
        WHERE {scope} AND k.escalated_at IS NULL AND k.status IN {ACTIVE_SQL} AND ({reason}) IS NOT NULL
        ORDER BY k.id
        FOR UPDATE
    ),
    escalated AS (
        UPDATE complaints k SET escalated_at = now()
        FROM cand c WHERE k.id = c.id
        RETURNING k.id, k.customer_id, c.status, c.reason
    ),
    emitted AS ({_escalated_events_sql()})
    INSERT INTO complaint_events (complaint_id, from_status, to_status, actor, note, kind)
    SELECT id, status, status, :actor, {_notes_case("reason")}, 'escalation' FROM escalated
    RETURNING id, note
    """


# resolved → closed is a transition of the state machine (domain/complaints.py); checked at import.
assert "closed" in TRANSITIONS["resolved"]
_AUTO_CLOSE_SQL = text("""
    WITH closing AS (
        UPDATE complaints k
        SET status = 'closed', closed_at = now(), updated_at = now(), version = k.version + 1
        WHERE k.status = 'resolved' AND k.resolved_at <= now() - make_interval(days => :days)
        RETURNING k.id
    )
    INSERT INTO complaint_events (complaint_id, from_status, to_status, actor, note, kind)
    SELECT id, 'resolved', 'closed', :actor, :note_auto_close, 'transition' FROM closing
    RETURNING id, note
""")


async def mark_breaches(
    conn: Executor, ids: Sequence[UUID] | None = None, *, actor: str, notes: SystemNotes | None = None
) -> list[UUID]:
    """Flag the clocks that are late now (all active complaints, or the given ones); one ``sla_breach``
    event per clock newly breached. Returns the customers of the complaints flagged."""
    stmt = text(_mark_breaches_sql(_scope(ids, active_only=True)))
    notes = notes or SystemNotes.make()
    params: dict[str, Any] = {"actor": actor, **notes.pick(*(_breach_param(k) for k in sla.BREACH_NOTES))}
    if ids is not None:
        stmt, params["ids"] = stmt.bindparams(_IDS), list(ids)
    rows = (await conn.execute(stmt, params)).all()
    await notes.seal(conn, [(r.event_id, r.note) for r in rows if r.event_id is not None])
    return list(dict.fromkeys(r.customer_id for r in rows if r.id is not None))


async def escalate(
    conn: Executor,
    ids: Sequence[UUID] | None = None,
    *,
    critical_fraction: float,
    actor: str,
    notes: SystemNotes | None = None,
) -> int:
    stmt = text(_escalate_sql(_scope(ids, active_only=False)))
    notes = notes or SystemNotes.make()
    params: dict[str, Any] = {
        "actor": actor,
        "fraction": critical_fraction,
        **notes.pick(*(_escalation_param(code) for code in sla.ESCALATION_NOTES)),
    }
    if ids is not None:
        stmt, params["ids"] = stmt.bindparams(_IDS), list(ids)
    events = (await conn.execute(stmt, params)).all()
    await notes.seal(conn, [(r.id, r.note) for r in events])
    return len(events)


async def auto_close(conn: Executor, *, days: int, actor: str, notes: SystemNotes | None = None) -> int:
    if notes is None or notes.auto_close_days != days:
        notes = SystemNotes.make(auto_close_days=days)
    params = {"days": days, "actor": actor, **notes.pick("note_auto_close")}
    events = (await conn.execute(_AUTO_CLOSE_SQL, params)).all()
    await notes.seal(conn, [(r.id, r.note) for r in events])
    return len(events)
