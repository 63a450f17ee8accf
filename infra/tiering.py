"""The tier engine in SQL: rules compiled to SQL, the hysteresis decision for a set of customers, the
incremental re-tier after an event, the resumable full re-tier, simulation and manual overrides.

One decision, written once (``decision_sql``), serves every path: ``retier(conn, ids)`` after an event,
the batches of a full re-tier (``retier_range``), the whole table (``retier_all``) and, as a pure
SELECT, ``simulate``. It mirrors ``domain.tiers.decide`` (unit-tested; an integration test keeps the
two equal):

- up as soon as the entry rule of a higher tier holds;
- keep while the entry or the retain rule of the current tier holds;
- when the retain rule first fails, a grace period starts (``tier_grace_since``, a 'grace' history row);
  it ends (another 'grace' row) if the rule holds again;
- down only when the grace period is over *and* the minimum stay since ``tier_since`` too, to the
  highest lower tier whose entry or retain rule holds;
- an unexpired manual override wins; once expired the customer is placed by the entry rules.

No Python loop over customers: each call is one statement whatever the number of customers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain import holdout
from domain.errors import NotFound, ValidationFailed
from domain.events import EventType
from domain.tiers import PolicySpec, Rule, TierSpec
from infra.job_deps import JobDeps
from infra.repos import events as outbox
from infra.repos import scope as readable
from infra.repos.base import Executor, Scope
from infra.repos.tiers import METRIC_SQL

log = logging.getLogger("tierwise.tiering")

NIL = UUID(int=0)
DEFAULT_BATCH = 50_000
_LOCK_KEY = 7_431_204_118  # pg_advisory_lock key of the full re-tier: one at a time per database


def _number(value: Any) -> str:
    return repr(float(value))


def _literal(value: str) -> str:
    """A validated tier code or name as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def rule_sql(rule: Rule) -> str:
    """Compile a *validated* rule to a boolean SQL expression (NULL metrics never satisfy a condition)."""
    ((key, body),) = rule.items()
    if key == "always":
        return "true"
    if key == "score":
        terms = " + ".join(f"coalesce({METRIC_SQL[m]}, 0) * {_number(w)}" for m, w in body["weights"].items())
        return f"(({terms}) >= {_number(body['min'])})"
    parts = []
    for item in body:
        if "metric" in item:
            op = "=" if item["op"] == "==" else item["op"]
            parts.append(f"coalesce({METRIC_SQL[item['metric']]} {op} {_number(item['value'])}, false)")
        else:
            parts.append(rule_sql(item))
    joiner = " AND " if key == "all" else " OR "
    return "(" + joiner.join(parts) + ")"


def entry_tier_sql(tiers: list[TierSpec]) -> str:
    ordered = sorted(tiers, key=lambda t: t.rank, reverse=True)
    base = ordered[-1]
    whens = " ".join(f"WHEN {rule_sql(t.entry_rule)} THEN {_literal(t.code)}" for t in ordered[:-1])
    return f"CASE {whens} ELSE {_literal(base.code)} END" if whens else _literal(base.code)


def metrics_json_sql() -> str:
    pairs = ", ".join(f"'{name}', {expr}" for name, expr in METRIC_SQL.items())
    return f"jsonb_build_object({pairs})"


# ---------------------------------------------------------------- policies


async def load_policy(conn: Executor, policy_id: UUID | None = None) -> PolicySpec | None:
    """A policy with its tiers: the active one, or the one with this id."""
    where = "p.status = 'active'" if policy_id is None else "p.id = :id"
    rows = (
        await conn.execute(
            text(
                "SELECT p.version, p.name, p.grace_days, p.min_stay_days, p.spend_window_days, "
                "p.holdout_share, p.holdout_days, "
                "t.code, t.name AS tier_name, t.rank, t.entry_rule, t.retain_rule, t.benefits "
                f"FROM tier_policies p LEFT JOIN tiers t ON t.policy_id = p.id WHERE {where} ORDER BY t.rank"
            ),
            {"id": policy_id},
        )
    ).all()
    if not rows:
        return None
    first = rows[0]
    tiers = [TierSpec(r.code, r.tier_name, r.rank, r.entry_rule, r.retain_rule) for r in rows if r.code is not None]
    return PolicySpec(
        name=first.name,
        tiers=tiers,
        grace_days=first.grace_days,
        min_stay_days=first.min_stay_days,
        spend_window_days=first.spend_window_days,
        version=first.version,
        benefits={r.code: list(r.benefits or []) for r in rows if r.code is not None},
        holdout_share=Decimal(first.holdout_share).normalize(),
        holdout_days=first.holdout_days,
    )


async def active_policy(conn: AsyncConnection) -> tuple[int, list[TierSpec]] | None:
    policy = await load_policy(conn)
    if policy is None or not policy.tiers:
        return None
    return policy.version, list(policy.tiers)


# ---------------------------------------------------------------- the decision


def _fingerprint(policy: PolicySpec) -> str:
    return json.dumps(
        [
            policy.version,
            policy.grace_days,
            policy.min_stay_days,
            str(policy.holdout_share),
            policy.holdout_days,
            [(t.code, t.name, t.rank, t.entry_rule, t.retain_rule) for t in policy.tiers],
        ],
        sort_keys=True,
    )


def decision_sql(
    policy: PolicySpec, scope: str, metrics_from: str = "customer_metrics", customers_from: str = "customers"
) -> str:
    """A SELECT of (id, from_tier, to_tier, eventual_tier, kind, grace_since, created_at, spend) for the live
    customers matching ``scope`` (a fixed SQL condition on ``c``), under ``policy``. ``customers_from`` and
    ``metrics_from`` are the tables read as ``c`` and ``m`` (fixed names: a simulation's metrics, the
    import's staged customers).

    ``kind`` is the decision of ``domain.tiers.decide``; ``eventual_tier`` is where the customer ends once
    running grace periods and minimum stays are over, if the metrics stay as they are."""
    ordered = sorted(policy.tiers, key=lambda t: t.rank, reverse=True)
    base = ordered[-1]
    entry_rank = (
        "CASE "
        + " ".join(f"WHEN {rule_sql(t.entry_rule)} THEN {t.rank}" for t in ordered[:-1])
        + f" ELSE {base.rank} END"
        if len(ordered) > 1
        else str(base.rank)
    )
    current_rank = "CASE c.tier_code " + " ".join(f"WHEN {_literal(t.code)} THEN {t.rank}" for t in ordered) + " END"
    retains = (
        "CASE c.tier_code "
        + " ".join(f"WHEN {_literal(t.code)} THEN {rule_sql(t.retain_rule)}" for t in ordered)
        + " ELSE false END"
    )
    steps = []
    for i, t in enumerate(ordered[:-1]):
        lower = ordered[i + 1 : -1]
        inner = " ".join(f"WHEN {rule_sql(low.retain_rule)} THEN {low.rank}" for low in lower)
        steps.append(
            f"WHEN {_literal(t.code)} THEN " + (f"CASE {inner} ELSE {base.rank} END" if inner else str(base.rank))
        )
    step_rank = ("CASE c.tier_code " + " ".join(steps) + f" ELSE {base.rank} END") if steps else str(base.rank)
    code_of = "CASE {x} " + " ".join(f"WHEN {t.rank} THEN {_literal(t.code)}" for t in ordered) + " END"
    down_rank = "GREATEST(d.er, d.sr)"
    return f"""
    SELECT d.id, d.from_tier, d.kind, d.created_at, d.spend, d.old_grace_since,
           CASE WHEN d.kind IN ('place', 'replace', 'up') THEN {code_of.format(x="d.er")}
                WHEN d.kind = 'down' THEN {code_of.format(x=down_rank)}
                ELSE d.from_tier END AS to_tier,
           CASE WHEN d.kind IN ('place', 'replace', 'up') THEN {code_of.format(x="d.er")}
                WHEN d.kind IN ('down', 'grace', 'wait') THEN {code_of.format(x=down_rank)}
                ELSE d.from_tier END AS eventual_tier,
           CASE WHEN d.kind = 'grace' THEN now()
                WHEN d.kind IN ('wait', 'override') THEN d.old_grace_since END AS grace_since
    FROM (
        SELECT e.*,
               CASE WHEN e.override_active THEN 'override'
                    WHEN e.has_override THEN 'replace'
                    WHEN e.cr IS NULL THEN 'place'
                    WHEN e.er > e.cr THEN 'up'
                    WHEN e.er = e.cr OR e.retains THEN
                         CASE WHEN e.old_grace_since IS NULL THEN 'keep' ELSE 'recover' END
                    WHEN e.old_grace_since IS NULL THEN 'grace'
                    WHEN now() >= e.old_grace_since + make_interval(days => {int(policy.grace_days)})
                     AND now() >= coalesce(e.since, '-infinity'::timestamptz)
                                  + make_interval(days => {int(policy.min_stay_days)}) THEN 'down'
                    ELSE 'wait' END AS kind
        FROM (
            SELECT c.id, c.tier_code AS from_tier, c.tier_since AS since, c.tier_grace_since AS old_grace_since,
                   c.created_at, {METRIC_SQL["spend_12m"]} AS spend,
                   (c.tier_override_code IS NOT NULL
                    AND (c.tier_override_expires_at IS NULL OR c.tier_override_expires_at > now())) AS override_active,
                   c.tier_override_code IS NOT NULL AS has_override,
                   {entry_rank} AS er, {current_rank} AS cr, {retains} AS retains, {step_rank} AS sr
            FROM {customers_from} c LEFT JOIN {metrics_from} m ON m.customer_id = c.id
            WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL AND {scope}
            OFFSET 0
        ) e
    ) d
    """


_MOVES = "s.change_type <> 'grace' AND s.from_tier IS DISTINCT FROM s.to_tier"  # history rows that move a tier
_MOVING = "('place', 'replace', 'up', 'down', 'grace', 'recover')"  # decisions that write tier columns and history


def _tier_changed_sql(source: str, where: str, customers_from: str = "customers") -> str:
    """The ``tier.changed`` events of the history rows ``source`` (infra/repos/events.py): one per move."""
    return outbox.insert_sql(
        EventType.TIER_CHANGED,
        source,
        "s.customer_id",
        {
            "customerId": outbox.global_id_sql("Customer", "s.customer_id"),
            "fromTier": "s.from_tier",
            "toTier": "s.to_tier",
            "changeType": "s.change_type",
            "policyVersion": "s.policy_version",
        },
        where,
        customers_from,
    )


def _history_sql(policy: PolicySpec, source: str, metrics_from: str) -> str:
    """The ``INSERT INTO tier_changes`` of the moves in ``source`` (a CTE of id, created_at, from_tier,
    to_tier, kind, old_grace_since), with the metric values (``metrics_from``) that decided them; returns
    what ``_tier_changed_sql`` reads."""
    grace, stay = int(policy.grace_days), int(policy.min_stay_days)
    return f"""
    INSERT INTO tier_changes (customer_id, from_tier, to_tier, policy_version, change_type, reason, metrics, actor)
    SELECT c.id, c.from_tier, c.to_tier, CAST(:version AS integer),
           CASE c.kind WHEN 'replace' THEN 'manual_override' WHEN 'place' THEN 'initial'
                       WHEN 'up' THEN 'upgrade' WHEN 'down' THEN 'downgrade' ELSE 'grace' END,
           CASE c.kind
             WHEN 'place' THEN
               CASE WHEN c.from_tier IS NULL THEN 'placed in ' || c.to_tier || ' by the entry rules'
                    ELSE 'tier ' || c.from_tier || ' is not part of policy v' || CAST(:version AS text)
                         || ': placed in ' || c.to_tier || ' by the entry rules' END
             WHEN 'replace' THEN 'manual override ended: placed in ' || c.to_tier || ' by the entry rules'
             WHEN 'up' THEN 'entry rule of ' || c.to_tier || ' holds'
             WHEN 'down' THEN 'retain rule of ' || c.from_tier || ' failing since '
                  || to_char(c.old_grace_since AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                  || '; grace of {grace} days and minimum stay of {stay} days over: moved to '
                  || c.to_tier || ', the highest tier whose entry or retain rule holds'
             WHEN 'grace' THEN 'retain rule of ' || c.from_tier || ' fails: grace period of {grace} days'
                  || ' started (a downgrade needs it and the minimum stay of {stay} days to be over)'
             ELSE 'retain rule of ' || c.from_tier || ' holds again: grace period ended'
           END || ' (policy v' || CAST(:version AS text) || ')' || coalesce(CAST(:cause AS text), ''),
           {metrics_json_sql()}, CAST(:actor AS text)
    FROM {source} c LEFT JOIN {metrics_from} m ON m.customer_id = c.id
    RETURNING customer_id, from_tier, to_tier, change_type, policy_version
    """


def holdout_draw_sql(customer_id: str, version: str, tier: str) -> str:
    """The draw of an upgrade into the benefit holdout, an integer in [0, 2^32): the first 32 bits of the md5 of
    'customer:version:tier' (``domain.holdout.draw`` says the same in Python; a test keeps them equal)."""
    return (
        f"('x' || substr(md5({customer_id}::text || ':' || {version}::text || ':' || {tier}), 1, 8))::bit(32)::bigint"
    )


def _holdout_sql(policy: PolicySpec) -> str:
    """The CTEs that put the customers upgraded by this statement into the benefit holdout (held or treated),
    in the same statement, and audit it; nothing (no cost) when the policy has no holdout."""
    if policy.holdout_share <= 0 or policy.holdout_days <= 0:
        return ""
    share, days = policy.holdout_share, int(policy.holdout_days)
    return f""",
    drawn AS (
        SELECT m.id, m.from_tier, m.to_tier,
               {holdout_draw_sql("m.id", "CAST(:version AS integer)", "m.to_tier")}
                   < {holdout.threshold(share)} AS held
        FROM moved m
        WHERE m.kind = 'up'
          AND NOT EXISTS (SELECT 1 FROM benefit_holdouts h
                          WHERE h.customer_id = m.id AND h.held AND h.ends_at > now())
    ),
    assigned AS (
        INSERT INTO benefit_holdouts (customer_id, policy_version, from_tier, to_tier, held, share, starts_at, ends_at,
                                      actor)
        SELECT d.id, CAST(:version AS integer), d.from_tier, d.to_tier, d.held, {share}, now(),
               now() + make_interval(days => {days}), CAST(:actor AS text)
        FROM drawn d
        RETURNING customer_id, held
    ),
    holdout_audited AS (
        INSERT INTO audit_log (actor, action, target_type, target_ids, after)
        SELECT CAST(:actor AS text), 'benefit_holdout_assigned', 'Customer',
               array_agg(customer_id::text ORDER BY customer_id),
               jsonb_build_object(
                   'held', coalesce(jsonb_agg(customer_id ORDER BY customer_id) FILTER (WHERE held), '[]'::jsonb),
                   'treated', count(*) FILTER (WHERE NOT held),
                   'share', {share}, 'days', {days}, 'policyVersion', CAST(:version AS integer))
        FROM assigned HAVING count(*) > 0
        RETURNING 1
    )"""


def _apply_sql(policy: PolicySpec, scope: str) -> str:
    """The decision applied: tier columns updated, history written (with the metric values that decided it),
    expired overrides cleared and audited, upgrades drawn into the benefit holdout when the policy has one.
    Returns (changes, grace rows)."""
    return f"""
    WITH d AS MATERIALIZED ({decision_sql(policy, scope)}),
    moved AS (
        UPDATE customers c SET
            tier_code = d.to_tier,
            tier_since = CASE WHEN d.kind IN ('place', 'replace', 'up', 'down') THEN now() ELSE c.tier_since END,
            tier_policy_version = CASE WHEN d.kind IN ('place', 'replace', 'up', 'down')
                                       THEN CAST(:version AS integer) ELSE c.tier_policy_version END,
            tier_grace_since = d.grace_since,
            tier_override_code = CASE WHEN d.kind = 'replace' THEN NULL ELSE c.tier_override_code END,
            tier_override_reason = CASE WHEN d.kind = 'replace' THEN NULL ELSE c.tier_override_reason END,
            tier_override_expires_at = CASE WHEN d.kind = 'replace' THEN NULL ELSE c.tier_override_expires_at END,
            tier_override_by = CASE WHEN d.kind = 'replace' THEN NULL ELSE c.tier_override_by END
        FROM d
        WHERE c.id = d.id AND d.kind IN {_MOVING}
        RETURNING c.id, c.created_at, d.from_tier, d.to_tier, d.kind, d.old_grace_since
    ),
    audited AS (
        INSERT INTO audit_log (actor, action, target_type, target_ids, after)
        SELECT CAST(:actor AS text), 'tier_override_ended', 'Customer', array_agg(id::text ORDER BY id),
               jsonb_build_object('customers', count(*), 'reason', 'expired or cleared')
        FROM moved WHERE kind = 'replace' HAVING count(*) > 0
        RETURNING 1
    ),
    written AS ({_history_sql(policy, "moved", "customer_metrics")}),
    emitted AS ({_tier_changed_sql("written", _MOVES)}){_holdout_sql(policy)}
    SELECT count(*) FILTER (WHERE change_type <> 'grace') AS changes,
           count(*) FILTER (WHERE change_type = 'grace') AS grace_rows,
           (SELECT count(*) FROM audited) AS overrides_ended
    FROM written
    """


_CONFLICT = "ON CONFLICT (partner_id, external_ref) WHERE external_ref IS NOT NULL DO NOTHING"


def _insert_staged_sql(policy: PolicySpec | None, stage: str, metrics_stage: str, columns: Sequence[str]) -> str:
    """The staged new customers inserted already placed (see ``insert_staged``). ``stage``, ``metrics_stage``
    and ``columns`` are fixed names of the code, never input."""
    cols = ", ".join(columns)
    staged = ", ".join(f"s.{name}" for name in columns)
    metrics = f"INSERT INTO customer_metrics SELECT m.* FROM {metrics_stage} m JOIN ins ON ins.id = m.customer_id"
    if policy is None or not policy.tiers:  # no active policy: nobody is placed (as ``retier`` does)
        return f"""
        WITH ins AS (INSERT INTO customers ({cols}) SELECT {staged} FROM {stage} s {_CONFLICT}
                     RETURNING id, external_ref),
        met AS ({metrics})
        SELECT id, external_ref FROM ins"""
    return f"""
    WITH d AS MATERIALIZED ({decision_sql(policy, "true", metrics_stage, stage)}),
    ins AS (
        INSERT INTO customers ({cols}, tier_code, tier_since, tier_policy_version, tier_grace_since)
        SELECT {staged}, d.to_tier,
               CASE WHEN d.kind IN ('place', 'replace', 'up', 'down') THEN now() END,
               CASE WHEN d.kind IN ('place', 'replace', 'up', 'down') THEN CAST(:version AS integer) END,
               d.grace_since
        FROM {stage} s JOIN d ON d.id = s.id
        {_CONFLICT}
        RETURNING id, external_ref, created_at
    ),
    met AS ({metrics}),
    moved AS (
        SELECT i.id, i.created_at, d.from_tier, d.to_tier, d.kind, d.old_grace_since
        FROM ins i JOIN d ON d.id = i.id WHERE d.kind IN {_MOVING}
    ),
    written AS ({_history_sql(policy, "moved", metrics_stage)}),
    emitted AS ({_tier_changed_sql("written", _MOVES, stage)})
    SELECT id, external_ref FROM ins
    """


async def insert_staged(
    conn: AsyncConnection, *, stage: str, metrics_stage: str, columns: Sequence[str], actor: str
) -> dict[str, UUID]:
    """Insert the new customers staged in ``stage`` (a temporary table like ``customers``; ``columns`` are
    the ones to copy) with their metrics rows (``metrics_stage``, like ``customer_metrics``), each already
    in the tier ``retier`` would place it in, with the same history row and ``tier.changed`` event: one
    statement, and one write of each customer row instead of an insert and then an update of every index
    (the bulk import, api/usecases/imports.py). A reference taken meanwhile is skipped. Returns external
    reference -> new id of the rows inserted."""
    policy = await load_policy(conn)
    sql = _insert_staged_sql(policy, stage, metrics_stage, columns)
    params = {"version": policy.version if policy else None, "actor": actor, "cause": None}
    rows = (await conn.execute(text(sql), params if policy and policy.tiers else {})).all()
    return {r.external_ref: r.id for r in rows}


_SCOPES = {
    "ids": "c.id = ANY(CAST(:ids AS uuid[]))",
    "range": "c.id > :after AND c.id <= :upto",
    "all": "true",
}
_compiled: dict[tuple[str, str], str] = {}  # (policy fingerprint, scope) -> SQL text; pure data, no state


def _apply_for(policy: PolicySpec, scope: str) -> str:
    key = (_fingerprint(policy), scope)
    sql = _compiled.get(key)
    if sql is None:
        if len(_compiled) > 64:
            _compiled.clear()
        sql = _compiled[key] = _apply_sql(policy, _SCOPES[scope])
    return sql


@dataclass(frozen=True)
class RetierResult:
    changes: int = 0  # tier changes (initial, upgrade, downgrade, override end)
    grace_rows: int = 0  # grace periods started or ended
    overrides_ended: int = 0


# What set off a re-tier, when it is not the plain facts: said in the history row's reason.
CAUSES = {"refund": " after a refund"}
# A refund never moves a customer down on the day its tier last changed (a purchase and its refund must
# not flip the tier twice in a day): it is decided with a minimum stay of at least this many days.
REFUND_MIN_STAY_DAYS = 1


async def _apply(
    conn: AsyncConnection,
    scope: str,
    params: dict[str, Any],
    actor: str,
    policy: PolicySpec | None = None,
    cause: str | None = None,
) -> RetierResult:
    policy = policy or await load_policy(conn)
    if policy is None or not policy.tiers:
        return RetierResult()
    if cause == "refund" and policy.min_stay_days < REFUND_MIN_STAY_DAYS:
        policy = replace(policy, min_stay_days=REFUND_MIN_STAY_DAYS)
    row = (
        await conn.execute(
            text(_apply_for(policy, scope)),
            {**params, "version": policy.version, "actor": actor, "cause": CAUSES.get(cause or "")},
        )
    ).one()
    return RetierResult(int(row.changes), int(row.grace_rows), int(row.overrides_ended))


async def retier(
    conn: AsyncConnection, customer_ids: Sequence[UUID] | None, *, actor: str = "system", cause: str | None = None
) -> int:
    """Re-tier the given customers (all when None) in one set-based statement; returns how many changed tier.

    Every change, and every start or end of a grace period, writes a history row with the metric values
    that decided it (and its ``cause``, one of ``CAUSES``, when given: a refund also keeps the tier of a
    customer whose tier changed today, see ``REFUND_MIN_STAY_DAYS``)."""
    if customer_ids is None:
        return (await _apply(conn, "all", {}, actor, cause=cause)).changes
    if not customer_ids:
        return 0
    return (await _apply(conn, "ids", {"ids": list(dict.fromkeys(customer_ids))}, actor, cause=cause)).changes


async def retier_all(conn: AsyncConnection, actor: str = "system") -> int:
    """Put every live customer in its tier, in one statement; returns how many changed."""
    return await retier(conn, None, actor=actor)


async def retier_range(
    conn: AsyncConnection, after: UUID, upto: UUID, *, actor: str, policy: PolicySpec | None = None
) -> RetierResult:
    """Re-tier the customers with ``after < id <= upto`` (one batch of a full re-tier)."""
    return await _apply(conn, "range", {"after": after, "upto": upto}, actor, policy)


# ---------------------------------------------------------------- full re-tier, resumable


class RetierBusy(RuntimeError):
    """Another full re-tier holds the lock."""


@dataclass
class RunProgress:
    run_id: int
    policy_version: int
    total: int
    done: int = 0
    changes: int = 0
    grace_rows: int = 0
    batches: int = 0
    resumed_from: int = 0  # customers already done when this process took the run over
    finished: bool = False
    seconds: float = 0.0
    timings: list[float] = field(default_factory=list)


ProgressFn = Callable[[RunProgress], Awaitable[None] | None]


async def _next_batch(conn: AsyncConnection, after: UUID, batch_size: int) -> tuple[int, UUID | None]:
    """How many customers the next batch holds and the last id of it (an index-only scan of the ids)."""
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS n, (array_agg(id ORDER BY id DESC))[1] AS upto"
                " FROM (SELECT id FROM customers WHERE id > :after ORDER BY id LIMIT :n) s"
            ),
            {"after": after, "n": batch_size},
        )
    ).one()
    return int(row.n), row.upto


async def _take_run(conn: AsyncConnection, policy: PolicySpec, actor: str, batch_size: int) -> tuple[Any, bool]:
    """The unfinished run of this policy version (resumed), or a new one (an unfinished run of an older
    policy is superseded: its customers are re-tiered again under the new policy)."""
    running = (
        await conn.execute(text("SELECT * FROM tier_runs WHERE kind = 'full' AND status = 'running' FOR UPDATE"))
    ).first()
    if running is not None and running.policy_version == policy.version:
        return running, True
    if running is not None:
        await conn.execute(
            text("UPDATE tier_runs SET status = 'superseded', finished_at = now(), updated_at = now() WHERE id = :id"),
            {"id": running.id},
        )
    run = (
        await conn.execute(
            text(
                "INSERT INTO tier_runs (policy_version, actor, batch_size, after_id, customers_total) "
                "VALUES (:v, :a, :b, :after, (SELECT count(*) FROM customers)) RETURNING *"
            ),
            {"v": policy.version, "a": actor, "b": batch_size, "after": NIL},
        )
    ).one()
    return run, False


async def run_full_retier(
    engine: AsyncEngine,
    *,
    actor: str,
    batch_size: int = DEFAULT_BATCH,
    on_progress: ProgressFn | None = None,
    max_batches: int | None = None,
) -> RunProgress | None:
    """Recompute metrics and re-tier every customer, in batches of ``batch_size`` customers by id, each
    batch one transaction that also moves the run's checkpoint (``tier_runs.after_id``). A run that
    stops half-way (crash, deploy, ``max_batches``) is resumed by the next call from its checkpoint.
    One run at a time per database (an advisory lock; ``RetierBusy`` otherwise). None when there is no
    active policy."""
    import time

    from infra import metrics

    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    async with engine.connect() as conn:
        if not (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY})).scalar():
            await conn.rollback()
            raise RetierBusy("another full re-tier is running")
        await conn.commit()
        try:
            progress: RunProgress | None = None
            after, size = NIL, batch_size
            while True:
                async with conn.begin():
                    policy = await load_policy(conn)
                    if policy is None or not policy.tiers:
                        return None
                    if progress is None or progress.policy_version != policy.version:
                        # a new run, or a policy activated while this one ran: (re)start under it
                        run, resumed = await _take_run(conn, policy, actor, batch_size)
                        progress = RunProgress(
                            run_id=run.id,
                            policy_version=policy.version,
                            total=int(run.customers_total),
                            done=int(run.customers_done),
                            changes=int(run.changed),
                            batches=int(run.batches),
                            resumed_from=int(run.customers_done) if resumed else 0,
                        )
                        after = run.after_id or NIL
                        size = int(run.batch_size) if resumed else batch_size
                    started = time.perf_counter()
                    await conn.execute(text("SET LOCAL statement_timeout = 0"))
                    await conn.execute(text("SET LOCAL work_mem = '64MB'"))
                    customers, upto = await _next_batch(conn, after, size)
                    if upto is None:
                        await conn.execute(
                            text(
                                "UPDATE tier_runs SET status = 'done', finished_at = now(), updated_at = now() "
                                "WHERE id = :id"
                            ),
                            {"id": progress.run_id},
                        )
                        progress.finished = True
                    else:
                        await metrics.recompute_range(conn, after, upto)
                        result = await retier_range(conn, after, upto, actor=actor, policy=policy)
                        await conn.execute(
                            text(
                                "UPDATE tier_runs SET after_id = :upto, customers_done = customers_done + :n, "
                                "batches = batches + 1, changed = changed + :changed, updated_at = now() "
                                "WHERE id = :id"
                            ),
                            {"upto": upto, "n": customers, "changed": result.changes, "id": progress.run_id},
                        )
                        after = upto
                        progress.done += customers
                        progress.changes += result.changes
                        progress.grace_rows += result.grace_rows
                        progress.batches += 1
                        progress.timings.append(time.perf_counter() - started)
                if on_progress is not None:
                    maybe = on_progress(progress)
                    if maybe is not None:
                        await maybe
                if progress.finished:
                    return progress
                if max_batches is not None and len(progress.timings) >= max_batches:
                    return progress  # stopped on purpose: the run stays 'running', to be resumed
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
            await conn.commit()


async def full_retier_inline(conn: AsyncConnection, *, actor: str) -> RetierResult:
    """Metrics and tiers of every customer in the caller's transaction (small data: policy activation)."""
    from infra import metrics

    await conn.execute(text("SET LOCAL work_mem = '64MB'"))
    await metrics.recompute_all(conn)
    return await _apply(conn, "all", {}, actor)


# ---------------------------------------------------------------- simulation


@dataclass(frozen=True)
class SimulationCell:
    from_tier: str | None
    to_tier: str
    customers: int
    revenue: float


@dataclass(frozen=True)
class Simulation:
    policy_version: int
    customers: int
    revenue: float
    now: list[SimulationCell]  # the moves the activation makes at once
    eventual: list[SimulationCell]  # and once running grace periods and minimum stays are over


def _window_metrics(days: int) -> str:
    """``customer_metrics`` with spend and orders over another window (a draft with its own window)."""
    return f"""(
        SELECT cm.customer_id, coalesce(w.spend, 0) - coalesce(r.spend, 0) AS spend_12m,
               coalesce(w.orders, 0) - coalesce(r.orders, 0) AS orders_12m,
               cm.lifetime_spend, cm.order_count, cm.last_purchase_at, cm.open_complaints,
               cm.latest_nps, cm.latest_csat
        FROM customer_metrics cm
        LEFT JOIN (SELECT customer_id, sum(amount) AS spend, count(*) AS orders FROM purchases
                   WHERE purchased_at > now() - make_interval(days => {int(days)}) GROUP BY customer_id) w
               ON w.customer_id = cm.customer_id
        LEFT JOIN (SELECT customer_id, sum(amount) AS spend, count(*) FILTER (WHERE closes_purchase) AS orders
                   FROM refunds WHERE purchased_at > now() - make_interval(days => {int(days)})
                   GROUP BY customer_id) r
               ON r.customer_id = cm.customer_id
    )"""


async def simulate(conn: Executor, draft: PolicySpec) -> Simulation:
    """What activating ``draft`` would do now, with pure SELECTs (nothing is written): the moves from each
    current tier to each tier under the draft, with the customers' spend, at once and eventually."""
    active = await load_policy(conn)
    window = active.spend_window_days if active else 365
    source = "customer_metrics" if draft.spend_window_days == window else _window_metrics(draft.spend_window_days)
    sql = f"""
    WITH d AS ({decision_sql(draft, "true", source)})
    SELECT from_tier, to_tier, eventual_tier, count(*) AS customers, coalesce(sum(spend), 0) AS revenue
    FROM d GROUP BY from_tier, to_tier, eventual_tier
    """
    rows = (await conn.execute(text(sql))).all()
    now: dict[tuple[str | None, str], list[float]] = {}
    eventual: dict[tuple[str | None, str], list[float]] = {}
    for r in rows:
        for cells, to in ((now, r.to_tier), (eventual, r.eventual_tier)):
            cell = cells.setdefault((r.from_tier, to), [0, 0.0])
            cell[0] += int(r.customers)
            cell[1] += float(r.revenue)

    def listed(cells: Mapping[tuple[str | None, str], list[float]]) -> list[SimulationCell]:
        return [
            SimulationCell(f, t, int(v[0]), round(v[1], 2))
            for (f, t), v in sorted(cells.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
        ]

    return Simulation(
        policy_version=draft.version,
        customers=sum(int(r.customers) for r in rows),
        revenue=round(sum(float(r.revenue) for r in rows), 2),
        now=listed(now),
        eventual=listed(eventual),
    )


# ---------------------------------------------------------------- manual override


async def set_override(
    conn: AsyncConnection,
    customer_id: UUID,
    *,
    tier: str,
    reason: str,
    expires_at: dt.datetime,
    actor: str,
    scope: Scope,
) -> None:
    """Put a customer in ``tier`` until ``expires_at`` whatever the rules say; history row and audit entry."""
    policy = await load_policy(conn)
    if policy is None or policy.tier(tier) is None:
        raise ValidationFailed(f"the active policy has no tier '{tier}'", field="tier")
    before = (
        await conn.execute(
            text(
                "SELECT c.id, c.tier_code, c.tier_override_code, c.tier_override_expires_at FROM customers c "
                "WHERE c.id = :id AND c.deleted_at IS NULL AND c.merged_into_id IS NULL"
                f"{readable.customers_sql(scope, 'c')} FOR UPDATE"
            ),
            {"id": customer_id, **readable.params(scope)},
        )
    ).first()
    if before is None:
        raise NotFound("no such customer", field="customerId")
    await conn.execute(
        text(
            f"""
            WITH moved AS (
                UPDATE customers c SET tier_code = :tier, tier_since = now(), tier_grace_since = NULL,
                       tier_policy_version = :version, tier_override_code = :tier, tier_override_reason = :reason,
                       tier_override_expires_at = :expires, tier_override_by = :actor
                WHERE c.id = :id
                RETURNING c.id, c.created_at
            ),
            written AS (
                INSERT INTO tier_changes (customer_id, from_tier, to_tier, policy_version, change_type, reason,
                                          metrics, actor)
                SELECT c.id, :from_tier, :tier, :version, 'manual_override',
                       'manual override until ' || to_char(CAST(:expires AS timestamptz) AT TIME ZONE 'UTC',
                                                           'YYYY-MM-DD HH24:MI') || ' UTC: ' || :reason,
                       {metrics_json_sql()}, :actor
                FROM moved c LEFT JOIN customer_metrics m ON m.customer_id = c.id
                RETURNING customer_id, from_tier, to_tier, change_type, policy_version
            )
            {_tier_changed_sql("written", "s.from_tier IS DISTINCT FROM s.to_tier")}
            """
        ),
        {
            "id": customer_id,
            "tier": tier,
            "reason": reason,
            "expires": expires_at,
            "actor": actor,
            "version": policy.version,
            "from_tier": before.tier_code,
        },
    )
    await _audit(
        conn,
        actor,
        "tier_override",
        customer_id,
        {"tier": before.tier_code, "override": before.tier_override_code},
        {"tier": tier, "reason": reason, "expiresAt": expires_at.isoformat()},
    )


async def clear_override(conn: AsyncConnection, customer_id: UUID, *, reason: str, actor: str, scope: Scope) -> None:
    """End a customer's override now: the rules place it again (same path as an expiry)."""
    row = (
        await conn.execute(
            text(
                "UPDATE customers c SET tier_override_expires_at = now() WHERE c.id = :id AND c.deleted_at IS NULL "
                f"AND c.merged_into_id IS NULL{readable.customers_sql(scope, 'c')} "
                "AND c.tier_override_code IS NOT NULL RETURNING c.tier_code, c.tier_override_reason"
            ),
            {"id": customer_id, **readable.params(scope)},
        )
    ).first()
    if row is None:
        raise NotFound("no such customer with a manual override", field="customerId")
    await _audit(
        conn,
        actor,
        "tier_override_cleared",
        customer_id,
        {"tier": row.tier_code, "reason": row.tier_override_reason},
        {"reason": reason},
    )
    await retier(conn, [customer_id], actor=actor)


async def _audit(conn: AsyncConnection, actor: str, action: str, customer_id: UUID, before: Any, after: Any) -> None:
    await conn.execute(
        text(
            "INSERT INTO audit_log (actor, action, target_type, target_ids, before, after) "
            "VALUES (:actor, :action, 'Customer', :ids, CAST(:before AS jsonb), CAST(:after AS jsonb))"
        ),
        {
            "actor": actor,
            "action": action,
            "ids": [str(customer_id)],
            "before": json.dumps(before),
            "after": json.dumps(after),
        },
    )


# ---------------------------------------------------------------- jobs


def register_jobs(app: procrastinate.App, deps: JobDeps) -> None:
    """The nightly full re-tier: time-based rules (recency, tenure, the spend window) move tiers without
    any event, and expired overrides end. Deferred also when a policy is activated on a large base."""

    @app.periodic(cron="17 3 * * *", periodic_id="retier-nightly")
    @app.task(name="tierwise.retier_all", queue="tierwise", queueing_lock="retier_all")
    async def retier_all_job(timestamp: int) -> int:
        try:
            progress = await run_full_retier(deps.engine, actor="job:retier")
        except RetierBusy:
            log.info("full re-tier skipped: another one is running")
            return -1
        if progress is None:
            return 0
        log.info(
            "full re-tier of %d customers under policy v%d: %d changes in %d batches",
            progress.done,
            progress.policy_version,
            progress.changes,
            progress.batches,
        )
        return progress.changes
