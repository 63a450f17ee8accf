"""Aggregates for the reports, in SQL: complaint rates, root causes and reopen rates; survey scores
(NPS, CSAT, CES) with their response counts and response rates; the fairness report across tiers;
the churn picture.

Every query takes an optional ``[since, until)`` range (NULL: unbounded). Only whitelisted SQL
fragments (group keys, period units) are ever formatted into the statements.

Definitions (the tests recompute each of them with direct SQL):

- complaints per 1 000 customers: complaints opened in the range under a tier (``tier_at_open``)
  and category, per 1 000 live customers in that tier now;
- reopen rate: complaints reopened at least once / complaints resolved at least once;
- a score: over the scored answers of the kind, ``100 * (positive - negative) / answers`` with
  positive = 9-10 and negative = 0-6 for NPS, positive = 4-5 for CSAT, 5-7 for CES (no negative);
- response rate: invitations answered / invitations, an invitation being a (survey, customer,
  complaint) invited (reminders are not new invitations), answered by a response of that survey,
  customer and complaint; grouped by the invitation's own survey, tier, channel and send time;
- fairness: per tier, the medians of first-response time and of resolution time without the time
  spent waiting on the customer (tier at opening), the share of complaints with an SLA that
  breached it (flags or clocks as of now), the shares of today's customers invited and answering
  in the range, and the NPS (tier at response).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import text

from domain.surveys import SCORE_BANDS
from infra.repos import holdout as holdout_repo
from infra.repos import scope as readable
from infra.repos.base import Executor, Scope, dict_rows
from infra.repos.clocks import breached_sql

LIVE = "c.deleted_at IS NULL AND c.merged_into_id IS NULL"
ACTIVE_TIERS = "SELECT t.code, t.rank FROM tiers t JOIN tier_policies p ON p.id = t.policy_id WHERE p.status = 'active'"
PERIOD_UNITS = ("day", "week", "month")
# A response answers an invitation of its survey, customer and complaint: at most one (uq_survey_responses_once,
# on the complaint id or this nil uuid), so a plain join on the same key counts the answered ones, by a hash join
# rather than one index probe per invitation (issue 7).
NIL = "00000000-0000-0000-0000-000000000000"


def _in_range(column: str) -> str:
    return (
        f"(CAST(:since AS timestamptz) IS NULL OR {column} >= CAST(:since AS timestamptz))"
        f" AND (CAST(:until AS timestamptz) IS NULL OR {column} < CAST(:until AS timestamptz))"
    )


# ---------------------------------------------------------------- complaints


async def complaint_rates(
    db: Executor, *, since: dt.datetime | None, until: dt.datetime | None, scope: Scope
) -> list[dict[str, Any]]:
    """Tier x category grid (zeros included) of complaints and complaints per 1 000 customers."""
    sql = f"""
    WITH active_tiers AS ({ACTIVE_TIERS}),
    counted AS (
        SELECT k.tier_at_open AS tier, k.category_code AS category, count(*) AS complaints
        FROM complaints k
        WHERE k.tier_at_open IS NOT NULL AND {_in_range("k.opened_at")}
          {readable.by_customer_sql(scope, "k.customer_id")}
        GROUP BY 1, 2
    ),
    live AS (
        SELECT c.tier_code AS tier, count(*) AS customers FROM customers c
        WHERE {LIVE} AND c.tier_code IS NOT NULL{readable.customers_sql(scope, "c")} GROUP BY 1
    ),
    tier_list AS (
        SELECT code AS tier, rank FROM active_tiers
        UNION
        SELECT DISTINCT tier, NULL::integer FROM counted WHERE tier NOT IN (SELECT code FROM active_tiers)
    ),
    category_list AS (
        SELECT code AS category, label FROM complaint_categories
        WHERE active OR code IN (SELECT category FROM counted)
    )
    SELECT t.tier, t.rank, g.category, g.label,
           coalesce(n.complaints, 0) AS complaints, coalesce(l.customers, 0) AS customers,
           CASE WHEN l.customers > 0 THEN round(1000.0 * coalesce(n.complaints, 0) / l.customers, 2) END
               AS per_thousand
    FROM tier_list t CROSS JOIN category_list g
    LEFT JOIN counted n ON n.tier = t.tier AND n.category = g.category
    LEFT JOIN live l ON l.tier = t.tier
    ORDER BY t.rank NULLS LAST, t.tier, g.category
    """
    return dict_rows(await db.execute(text(sql), {"since": since, "until": until, **readable.params(scope)}))


async def top_root_causes(
    db: Executor,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    tier: str | None,
    limit: int,
    scope: Scope,
) -> list[dict[str, Any]]:
    """The most frequent root causes of the complaints opened in the range, with their share (percent)."""
    sql = f"""
    SELECT k.root_cause_code AS code, r.label, count(*) AS complaints,
           round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS share
    FROM complaints k JOIN root_causes r ON r.code = k.root_cause_code
    WHERE {_in_range("k.opened_at")} AND (CAST(:tier AS text) IS NULL OR k.tier_at_open = CAST(:tier AS text))
      {readable.by_customer_sql(scope, "k.customer_id")}
    GROUP BY k.root_cause_code, r.label
    ORDER BY complaints DESC, code
    LIMIT :limit
    """
    params = {"since": since, "until": until, "tier": tier, "limit": limit, **readable.params(scope)}
    return dict_rows(await db.execute(text(sql), params))


async def reopen_rates(
    db: Executor, *, since: dt.datetime | None, until: dt.datetime | None, scope: Scope
) -> list[dict[str, Any]]:
    """Per tier at opening, and overall (tier NULL, ``overall`` true): resolved, reopened, rate."""
    sql = f"""
    WITH active_tiers AS ({ACTIVE_TIERS})
    SELECT x.*, a.rank,
           CASE WHEN x.resolved > 0 THEN round(1.0 * x.reopened / x.resolved, 4) END AS rate
    FROM (
        SELECT k.tier_at_open AS tier, GROUPING(k.tier_at_open) = 1 AS overall,
               count(*) FILTER (WHERE k.status IN ('resolved', 'closed') OR k.reopen_count > 0) AS resolved,
               count(*) FILTER (WHERE k.reopen_count > 0) AS reopened,
               coalesce(sum(k.reopen_count), 0) AS reopens
        FROM complaints k
        WHERE {_in_range("k.opened_at")}{readable.by_customer_sql(scope, "k.customer_id")}
        GROUP BY GROUPING SETS ((k.tier_at_open), ())
    ) x
    LEFT JOIN active_tiers a ON a.code = x.tier
    ORDER BY x.overall, a.rank NULLS LAST, x.tier
    """
    return dict_rows(await db.execute(text(sql), {"since": since, "until": until, **readable.params(scope)}))


# ---------------------------------------------------------------- survey scores

# group -> (expression over a response row r / question q, expression over an invitation i / dimension d)
SCORE_GROUPS: dict[str, tuple[str, str]] = {
    "SURVEY": ("r.survey_id", "i.survey_id"),
    "TIER": ("r.tier_at_response", "i.tier_at_invitation"),
    "CHANNEL": ("r.channel", "i.channel"),
    "DIMENSION": ("q.dimension", "d.dimension"),
    "PERIOD": ("date_trunc('{unit}', r.submitted_at, 'UTC')", "date_trunc('{unit}', i.sent_at, 'UTC')"),
}


async def survey_scores(
    db: Executor,
    *,
    kind: str,
    group_by: Sequence[str],
    period: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    survey_id: UUID | None,
    scope: Scope,
    summaries: bool = True,
) -> list[dict[str, Any]]:
    """One row per group: responses, scored answers, positive/negative counts, the score, invitations,
    invitations answered and the response rate.

    Served from the daily summaries (migration 0010) when the groups leave out DIMENSION and the range's
    bounds are UTC midnights (or open), with the same results; otherwise (or ``summaries=False``) by the
    raw query over the answers and invitations. The summaries count every partner's customers: a partner's
    scores always take the raw query over its own customers' answers and invitations."""
    if period not in PERIOD_UNITS or kind not in SCORE_BANDS or any(g not in SCORE_GROUPS for g in group_by):
        raise ValueError("unknown score kind, group or period")
    groups = list(dict.fromkeys(group_by))
    if summaries and scope.unrestricted and "DIMENSION" not in groups and _day_aligned(since) and _day_aligned(until):
        return await _survey_scores_summarised(
            db, kind=kind, groups=groups, period=period, since=since, until=until, survey_id=survey_id
        )
    names = [f"g_{g.lower()}" for g in groups]
    r_keys = [SCORE_GROUPS[g][0].format(unit=period) for g in groups]
    i_keys = [SCORE_GROUPS[g][1].format(unit=period) for g in groups]
    r_select = "".join(f"{e} AS {n}, " for e, n in zip(r_keys, names, strict=True))
    i_select = "".join(f"{e} AS {n}, " for e, n in zip(i_keys, names, strict=True))
    by_position = ", ".join(str(n + 1) for n in range(len(groups)))
    group_clause = f"GROUP BY {by_position}" if groups else ""
    dimension_join = (
        "JOIN (SELECT DISTINCT survey_id, dimension FROM survey_questions WHERE kind = :kind) d"
        " ON d.survey_id = i.survey_id"
        if "DIMENSION" in groups
        else ""
    )
    high, low = SCORE_BANDS[kind]
    sql = f"""
    WITH scored AS (
        SELECT {r_select}
               count(DISTINCT r.id) AS responses, count(*) AS answers,
               count(*) FILTER (WHERE a.score >= :high) AS positive,
               count(*) FILTER (WHERE a.score <= :low) AS negative,
               0::bigint AS invitations, 0::bigint AS answered
        FROM survey_answers a
        JOIN survey_responses r ON r.id = a.response_id
        JOIN survey_questions q ON q.id = a.question_id
        WHERE q.kind = :kind AND a.score IS NOT NULL AND {_in_range("r.submitted_at")}
          AND (CAST(:survey AS uuid) IS NULL OR r.survey_id = CAST(:survey AS uuid))
          {readable.by_customer_sql(scope, "r.customer_id")}
        {group_clause}
    ),
    targets AS (
        SELECT DISTINCT ON (i.survey_id, i.customer_id, i.complaint_id) i.*
        FROM survey_invitations i
        WHERE EXISTS (SELECT 1 FROM survey_questions q WHERE q.survey_id = i.survey_id AND q.kind = :kind)
          AND (CAST(:survey AS uuid) IS NULL OR i.survey_id = CAST(:survey AS uuid))
          {readable.by_customer_sql(scope, "i.customer_id")}
        ORDER BY i.survey_id, i.customer_id, i.complaint_id, i.sent_at, i.id
    ),
    invited AS (
        SELECT {i_select}
               0::bigint, 0::bigint, 0::bigint, 0::bigint, count(*), count(x.id)
        FROM targets i {dimension_join}
        LEFT JOIN survey_responses x
               ON x.survey_id = i.survey_id AND x.customer_id = i.customer_id
              AND coalesce(x.complaint_id, '{NIL}') = coalesce(i.complaint_id, '{NIL}')
        WHERE {_in_range("i.sent_at")}
        {group_clause}
    )
    {_scores_outer(names)}
    """
    params = {
        "kind": kind,
        "high": high,
        "low": -1 if low is None else low,
        "since": since,
        "until": until,
        "survey": survey_id,
        **readable.params(scope),
    }
    return _named_groups(dict_rows(await db.execute(text(sql), params)), groups, names)


def _scores_outer(names: list[str]) -> str:
    """The final SELECT of both survey-score queries: the CTEs ``scored`` and ``invited`` (group keys
    ``names`` first, then the six counts) summed per group, with the score and the response rate."""
    keys = ", ".join(names)
    return f"""SELECT {keys}{", " if names else ""}
           sum(responses)::int AS responses, sum(answers)::int AS answers,
           sum(positive)::int AS positive, sum(negative)::int AS negative,
           CASE WHEN sum(answers) > 0 THEN round(100.0 * (sum(positive) - sum(negative)) / sum(answers), 2) END
               AS score,
           sum(invitations)::int AS invitations, sum(answered)::int AS answered,
           CASE WHEN sum(invitations) > 0 THEN round(1.0 * sum(answered) / sum(invitations), 4) END AS response_rate
    FROM (SELECT * FROM scored UNION ALL SELECT * FROM invited) u
    {f"GROUP BY {keys} ORDER BY {keys}" if names else ""}"""


def _named_groups(rows: list[dict[str, Any]], groups: list[str], names: list[str]) -> list[dict[str, Any]]:
    """The rows with their group columns under the groups' names (``g_tier`` -> ``TIER``)."""
    return [
        {
            **{g: row[n] for g, n in zip(groups, names, strict=True)},
            **{k: v for k, v in row.items() if not k.startswith("g_")},
        }
        for row in rows
    ]


def _day_aligned(moment: dt.datetime | None) -> bool:
    """Open, or a UTC midnight: the bound of a range of whole days of the summaries."""
    if moment is None:
        return True
    utc = moment.astimezone(dt.UTC)
    return (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0)


# Migration 0010's summaries that writers add to, each with its deltas (migration 0027): the triggers append
# every write's deltas there (so that writers never wait for each other on a summary row) and a periodic job
# (infra/economics.py) moves them into the summary. A report reads both in one statement, one snapshot, so it is
# exact whether or not the job ran; deltas waiting only cost it time.
SUMMARY_COLUMNS = {
    "report_score_days": "day, kind, survey_id, tier, channel, responses, answers, positive, negative",
    "report_invitation_days": "day, survey_id, tier, channel, invitations, answered",
    "report_complaint_tiers": "tier, complaints, with_sla, breached, responded, resolved",
    "report_tier_reach": "tier, customers, invited, answered",
}
SUMMARY_DELTAS = {
    "report_score_days": "report_score_day_deltas",
    "report_invitation_days": "report_invitation_day_deltas",
    "report_complaint_tiers": "report_complaint_tier_deltas",
    "report_tier_reach": "report_tier_reach_deltas",
}


def _summary(name: str) -> str:
    """The rows of the summary ``name`` and of its deltas, as one relation (to be summed per key)."""
    columns = SUMMARY_COLUMNS[name]
    return f"(SELECT {columns} FROM {name} UNION ALL SELECT {columns} FROM {SUMMARY_DELTAS[name]})"


# group -> expression over a score day s / an invitation day v (migration 0010's tables)
SUMMARY_GROUPS: dict[str, str] = {
    "SURVEY": "{t}.survey_id",
    "TIER": "{t}.tier",
    "CHANNEL": "{t}.channel",
    "PERIOD": "date_trunc('{unit}', {t}.day, 'UTC')",
}


async def _survey_scores_summarised(
    db: Executor,
    *,
    kind: str,
    groups: list[str],
    period: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    survey_id: UUID | None,
) -> list[dict[str, Any]]:
    """survey_scores from report_score_days and report_invitation_days (with their deltas): each response and
    each first invitation lies in one day (UTC) x survey x tier x channel, so the groups' sums are the raw
    counts."""
    names = [f"g_{g.lower()}" for g in groups]
    s_select = "".join(
        f"{SUMMARY_GROUPS[g].format(t='s', unit=period)} AS {n}, " for g, n in zip(groups, names, strict=True)
    )
    v_select = "".join(
        f"{SUMMARY_GROUPS[g].format(t='v', unit=period)} AS {n}, " for g, n in zip(groups, names, strict=True)
    )
    by_position = ", ".join(str(n + 1) for n in range(len(groups)))
    # a group exists when it has an answer (an invitation); without groups, one row of zeros as the raw query
    s_group = f"GROUP BY {by_position} HAVING sum(s.answers) > 0" if groups else ""
    v_group = f"GROUP BY {by_position} HAVING sum(v.invitations) > 0" if groups else ""
    sql = f"""
    WITH scored AS (
        SELECT {s_select}
               coalesce(sum(s.responses), 0) AS responses, coalesce(sum(s.answers), 0) AS answers,
               coalesce(sum(s.positive), 0) AS positive, coalesce(sum(s.negative), 0) AS negative,
               0::numeric AS invitations, 0::numeric AS answered
        FROM {_summary("report_score_days")} s
        WHERE s.kind = :kind AND {_in_range("s.day")}
          AND (CAST(:survey AS uuid) IS NULL OR s.survey_id = CAST(:survey AS uuid))
        {s_group}
    ),
    invited AS (
        SELECT {v_select}
               0::numeric, 0::numeric, 0::numeric, 0::numeric,
               coalesce(sum(v.invitations), 0), coalesce(sum(v.answered), 0)
        FROM {_summary("report_invitation_days")} v
        WHERE v.survey_id IN (SELECT q.survey_id FROM survey_questions q WHERE q.kind = :kind)
          AND {_in_range("v.day")}
          AND (CAST(:survey AS uuid) IS NULL OR v.survey_id = CAST(:survey AS uuid))
        {v_group}
    )
    {_scores_outer(names)}
    """
    params = {"kind": kind, "since": since, "until": until, "survey": survey_id}
    return _named_groups(dict_rows(await db.execute(text(sql), params)), groups, names)


# ---------------------------------------------------------------- fairness


# a customer held out of its tier's benefits at a time (the benefit holdout)
_HELD = (
    "SELECT 1 FROM benefit_holdouts bh WHERE bh.held AND bh.customer_id = {customer}"
    " AND bh.starts_at <= {at} AND bh.ends_at > {at}"
)


async def fairness(
    db: Executor, *, since: dt.datetime | None, until: dt.datetime | None, scope: Scope, summaries: bool = True
) -> list[dict[str, Any]]:
    """One row per tier of the active policy, lowest rank first.

    Over the whole history (no range) from the summaries of migration 0010 with their deltas (migration
    0027), same results: the counts of the complaints whose clocks are settled (stopped or paused: breached
    or not whatever the time) per tier, plus the running ones counted as of now; the complaints' clocks
    (narrow, with the two durations indexed per tier, so a median is two index entries at an offset); the
    live customers invited / answering per tier; the NPS answers per day and tier. A range, or a partner's
    scope (the summaries count every partner), takes the raw query.

    Customers held out of their tier's benefits (the benefit holdout, domain/holdout.py) are left out while
    withheld: their complaints opened and NPS answers given during their holdout, and, from the reach, those
    held out now. The summaries cannot leave them out, so once anyone has been held out the raw query answers."""
    if summaries and scope.unrestricted and since is None and until is None and not await holdout_repo.any_held(db):
        return await _fairness_summarised(db)
    sql = f"""
    WITH active_tiers AS ({ACTIVE_TIERS}),
    handled AS (
        SELECT k.tier_at_open AS tier,
               count(*) AS complaints,
               count(*) FILTER (WHERE k.first_response_due_at IS NOT NULL OR k.resolution_due_at IS NOT NULL)
                   AS with_sla,
               count(*) FILTER (WHERE {breached_sql("k")}) AS breached,
               count(k.first_responded_at) AS responded,
               count(k.resolved_at) AS resolved,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM k.first_responded_at - k.opened_at))
                   AS first_response_s,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM k.resolved_at - k.opened_at) - k.paused_seconds) AS resolution_s
        FROM complaints k
        WHERE {_in_range("k.opened_at")}{readable.by_customer_sql(scope, "k.customer_id")}
          AND NOT EXISTS ({_HELD.format(customer="k.customer_id", at="k.opened_at")})
        GROUP BY k.tier_at_open
    ),
    reach AS (  -- who was invited / answered: hashed sets, not two index probes per customer (issue 7)
        SELECT c.tier_code AS tier, count(*) AS customers, count(i.customer_id) AS invited,
               count(r.customer_id) AS answered
        FROM customers c
        LEFT JOIN (SELECT DISTINCT i.customer_id FROM survey_invitations i WHERE {_in_range("i.sent_at")}) i
               ON i.customer_id = c.id
        LEFT JOIN (SELECT DISTINCT r.customer_id FROM survey_responses r WHERE {_in_range("r.submitted_at")}) r
               ON r.customer_id = c.id
        WHERE {LIVE}{readable.customers_sql(scope, "c")}
          AND NOT EXISTS ({_HELD.format(customer="c.id", at="now()")})
        GROUP BY c.tier_code
    ),
    nps AS (
        SELECT r.tier_at_response AS tier, count(*) AS answers,
               count(*) FILTER (WHERE a.score >= 9) AS promoters, count(*) FILTER (WHERE a.score <= 6) AS detractors
        FROM survey_answers a
        JOIN survey_responses r ON r.id = a.response_id
        JOIN survey_questions q ON q.id = a.question_id
        WHERE q.kind = 'nps' AND a.score IS NOT NULL AND {_in_range("r.submitted_at")}
          {readable.by_customer_sql(scope, "r.customer_id")}
          AND NOT EXISTS ({_HELD.format(customer="r.customer_id", at="r.submitted_at")})
        GROUP BY r.tier_at_response
    )
    SELECT t.code AS tier, t.rank,
           coalesce(h.complaints, 0) AS complaints, coalesce(h.with_sla, 0) AS with_sla,
           coalesce(h.breached, 0) AS breached, coalesce(h.responded, 0) AS responded,
           coalesce(h.resolved, 0) AS resolved,
           round((h.first_response_s / 60.0)::numeric, 2) AS median_first_response_minutes,
           round((h.resolution_s / 60.0)::numeric, 2) AS median_resolution_minutes,
           CASE WHEN h.with_sla > 0 THEN round(1.0 * h.breached / h.with_sla, 4) END AS breach_rate,
           coalesce(x.customers, 0) AS customers, coalesce(x.invited, 0) AS invited,
           coalesce(x.answered, 0) AS answered,
           CASE WHEN x.customers > 0 THEN round(1.0 * x.invited / x.customers, 4) END AS invited_share,
           CASE WHEN x.customers > 0 THEN round(1.0 * x.answered / x.customers, 4) END AS answered_share,
           coalesce(n.answers, 0) AS nps_answers,
           CASE WHEN n.answers > 0 THEN round(100.0 * (n.promoters - n.detractors) / n.answers, 2) END AS nps
    FROM active_tiers t
    LEFT JOIN handled h ON h.tier = t.code
    LEFT JOIN reach x ON x.tier = t.code
    LEFT JOIN nps n ON n.tier = t.code
    ORDER BY t.rank
    """
    return dict_rows(await db.execute(text(sql), {"since": since, "until": until, **readable.params(scope)}))


def _median_sql(column: str, count: str) -> str:
    """percentile_cont(0.5) of ``column`` over the tier's clocks, as PostgreSQL computes it (orderedsetaggs.c:
    the value at floor((n - 1) / 2), interpolated towards the next one when n is even), from the index."""
    return f"""(SELECT CASE WHEN floor(p.pos) = p.pos THEN m.v[1]
                            ELSE m.v[1] + (m.v[2] - m.v[1]) * (p.pos - floor(p.pos)) END
               FROM (SELECT 0.5::float8 * (h.{count} - 1) AS pos) p
               CROSS JOIN LATERAL (
                   SELECT array_agg(x.v ORDER BY x.v) AS v FROM (
                       SELECT k.{column} AS v FROM report_complaint_clocks k
                       WHERE k.tier_at_open = h.tier AND k.{column} IS NOT NULL
                       ORDER BY k.{column} OFFSET floor(p.pos)::bigint LIMIT 2) x) m)"""


async def _fairness_summarised(db: Executor) -> list[dict[str, Any]]:
    sql = f"""
    WITH active_tiers AS ({ACTIVE_TIERS}),
    counted AS (  -- settled clocks: counted as they change; running ones: counted as of now (a few, indexed)
        SELECT tier, sum(complaints) AS complaints, sum(with_sla) AS with_sla, sum(breached) AS breached,
               sum(responded) AS responded, sum(resolved) AS resolved
        FROM (
            SELECT s.tier, s.complaints, s.with_sla, s.breached, s.responded, s.resolved
            FROM {_summary("report_complaint_tiers")} s
            UNION ALL
            SELECT k.tier_at_open, count(*),
                   count(*) FILTER (WHERE k.first_response_due_at IS NOT NULL OR k.resolution_due_at IS NOT NULL),
                   count(*) FILTER (WHERE {breached_sql("k")}),
                   count(k.first_responded_at), count(k.resolved_at)
            FROM report_complaint_clocks k WHERE k.running GROUP BY k.tier_at_open
        ) u
        WHERE tier IN (SELECT code FROM active_tiers)
        GROUP BY tier
        HAVING sum(complaints) > 0
    ),
    handled AS (
        SELECT h.*,
               CASE WHEN h.responded > 0 THEN {_median_sql("first_response_s", "responded")} END AS first_response_s,
               CASE WHEN h.resolved > 0 THEN {_median_sql("resolution_s", "resolved")} END AS resolution_s
        FROM counted h
    ),
    reach AS (
        SELECT x.tier, sum(x.customers)::bigint AS customers, sum(x.invited)::bigint AS invited,
               sum(x.answered)::bigint AS answered
        FROM {_summary("report_tier_reach")} x GROUP BY x.tier
    ),
    nps AS (
        SELECT s.tier, sum(s.answers) AS answers, sum(s.positive) AS promoters, sum(s.negative) AS detractors
        FROM {_summary("report_score_days")} s WHERE s.kind = 'nps'
        GROUP BY s.tier HAVING sum(s.answers) > 0
    )
    SELECT t.code AS tier, t.rank,
           coalesce(h.complaints, 0)::bigint AS complaints, coalesce(h.with_sla, 0)::bigint AS with_sla,
           coalesce(h.breached, 0)::bigint AS breached, coalesce(h.responded, 0)::bigint AS responded,
           coalesce(h.resolved, 0)::bigint AS resolved,
           round((h.first_response_s / 60.0)::numeric, 2) AS median_first_response_minutes,
           round((h.resolution_s / 60.0)::numeric, 2) AS median_resolution_minutes,
           CASE WHEN h.with_sla > 0 THEN round(1.0 * h.breached / h.with_sla, 4) END AS breach_rate,
           coalesce(x.customers, 0) AS customers, coalesce(x.invited, 0) AS invited,
           coalesce(x.answered, 0) AS answered,
           CASE WHEN x.customers > 0 THEN round(1.0 * x.invited / x.customers, 4) END AS invited_share,
           CASE WHEN x.customers > 0 THEN round(1.0 * x.answered / x.customers, 4) END AS answered_share,
           coalesce(n.answers, 0)::bigint AS nps_answers,
           CASE WHEN n.answers > 0 THEN round(100.0 * (n.promoters - n.detractors) / n.answers, 2) END AS nps
    FROM active_tiers t
    LEFT JOIN handled h ON h.tier = t.code
    LEFT JOIN reach x ON x.tier IS NOT DISTINCT FROM t.code
    LEFT JOIN nps n ON n.tier = t.code
    ORDER BY t.rank
    """
    return dict_rows(await db.execute(text(sql)))


# ---------------------------------------------------------------- churn


async def churn_levels(db: Executor, *, scope: Scope) -> list[dict[str, Any]]:
    """Live customers per tier and churn level, with the mean score."""
    sql = f"""
    WITH active_tiers AS ({ACTIVE_TIERS})
    SELECT c.tier_code AS tier, s.level, count(*) AS customers, round(avg(s.score), 2) AS mean_score
    FROM churn_scores s JOIN customers c ON c.id = s.customer_id
    LEFT JOIN active_tiers t ON t.code = c.tier_code
    WHERE {LIVE}{readable.customers_sql(scope, "c")}
    GROUP BY c.tier_code, t.rank, s.level
    ORDER BY t.rank NULLS LAST, c.tier_code, array_position(ARRAY['green', 'yellow', 'red'], s.level)
    """
    return dict_rows(await db.execute(text(sql), readable.params(scope)))


async def churn_signals(db: Executor, *, scope: Scope) -> list[dict[str, Any]]:
    """How many live customers each signal fires for, most frequent first."""
    sql = f"""
    SELECT sig->>'code' AS code, count(*) AS customers
    FROM churn_scores s JOIN customers c ON c.id = s.customer_id
    CROSS JOIN LATERAL jsonb_array_elements(s.signals) AS sig
    WHERE {LIVE}{readable.customers_sql(scope, "c")}
    GROUP BY 1 ORDER BY customers DESC, code
    """
    return dict_rows(await db.execute(text(sql), readable.params(scope)))


# ---------------------------------------------------------------- compaction


async def compact_summaries(db: Executor) -> int | None:
    """Move the summaries' deltas into them (migration 0027's ``report_summaries_compact()``) and say how many
    delta rows it moved; None when another compaction (or a rebuild) holds the lock: that one, or the next
    run, moves them. Run it in a transaction of its own: the lock and the moved deltas go with its commit."""
    moved = (await db.execute(text("SELECT report_summaries_compact()"))).scalar()
    return None if moved is None else int(moved)
