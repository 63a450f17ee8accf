"""report summaries without write contention (0010's, as 0024 did for the economics summaries).

Migration 0010's triggers added each write's deltas to four summaries with INSERT ... ON CONFLICT DO UPDATE,
one row per key, so two transactions touching the same key serialized until the first one committed:

- report_tier_reach (per tier now: live customers, those ever invited, those who ever answered): every
  customer created, every change of tier (one row for the old tier, one for the new), a customer's first
  invitation and first response. Ingest batches that re-tier customers (recordPurchases, recordRefunds),
  imports and createCustomer waited for each other on a handful of rows;
- report_score_days (per UTC day x score kind x survey x tier x channel): every survey response with a scored
  answer, so today's responses to one survey from one tier and channel waited for each other;
- report_invitation_days (per UTC day x survey x tier x channel): every first invitation, and every response
  that answers one;
- report_complaint_tiers (per tier at opening: the complaints with settled clocks): every complaint resolved
  or paused (or opened without an SLA), per tier.

(report_invitation_targets and report_complaint_clocks have one row per (survey, customer, complaint) and per
complaint: writers of different customers never meet there. tests/integration/test_report_summaries.py shows
each of these writes waiting for the same write of another customer under 0026, and not here.)

The same functions, grouping and counting as 0010 wrote them, now append their deltas to
report_score_day_deltas, report_invitation_day_deltas, report_complaint_tier_deltas and
report_tier_reach_deltas: the summary's key and sums, insert-only, no unique constraint, so a writer never
waits for another. The functions are 0010's own text with each upsert into a summary rewritten into an append
to its deltas (``appending``): 0010 stays the one statement of what each write adds; the tests check that no
function upserts into these summaries any more, and that the downgrade gives 0010's text back.

``report_summaries_compact()`` moves the deltas into the summaries, one statement per table (DELETE ...
RETURNING, summed per key, upserted in key order), one run at a time (a transaction-level advisory lock of its
own: a run that finds it taken does nothing and returns NULL). The economics job runs it every minute
(TIERWISE_ECONOMICS_COMPACT_CRON, infra/economics.py). ``report_summaries_rebuild()`` (and
``report_fairness_rebuild()``) wait for the same lock and empty the deltas before refilling the summaries.
Under READ COMMITTED the DELETE takes the deltas committed when it starts; one committed while it runs stays
for the next run, so a delta is never lost nor counted twice.

The reports (infra/repos/reports.py, the survey scores and the fairness report) read each summary with its
deltas in one statement, so they are exact whether or not compaction ran: deltas waiting only cost them time
(bench/results/report_deltas.md). The downgrade folds the deltas in and gives 0010's functions back.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence

from infra.migrate import execute_function_script

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0010 as it landed (a migration never changes): the text of its functions.
_0010 = importlib.import_module("infra.migrations.versions.0010_report_summaries")

# summary -> (its deltas, its unique constraint, its key, its sums)
SUMMARIES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "report_score_days": (
        "report_score_day_deltas",
        "uq_report_score_days",
        "day, kind, survey_id, tier, channel",
        ("responses", "answers", "positive", "negative"),
    ),
    "report_invitation_days": (
        "report_invitation_day_deltas",
        "uq_report_invitation_days",
        "day, survey_id, tier, channel",
        ("invitations", "answered"),
    ),
    "report_complaint_tiers": (
        "report_complaint_tier_deltas",
        "uq_report_complaint_tiers",
        "tier",
        ("complaints", "with_sla", "breached", "responded", "resolved"),
    ),
    "report_tier_reach": (
        "report_tier_reach_deltas",
        "uq_report_tier_reach",
        "tier",
        ("customers", "invited", "answered"),
    ),
}
# One compaction at a time (and a rebuild waits for it): the key of their transaction-level advisory lock.
LOCK = "hashtext('tierwise.report_summaries_compact')"

# The functions of 0010 that upsert into a summary, and its two rebuilds.
WRITERS = (
    "report_apply_answers",
    "report_move_responses",
    "report_refresh_targets",
    "report_response_deleting",
    "report_reach_apply",
    "report_complaints_changed",
)
REBUILDS = ("report_summaries_rebuild", "report_fairness_rebuild")


def functions_of_0010() -> dict[str, str]:
    """0010's CREATE FUNCTION statements by function name, as CREATE OR REPLACE."""
    found = re.finditer(r"CREATE FUNCTION (\w+)\(.*?\$\$.*?\$\$;", _0010.FUNCTIONS + _0010.FAIRNESS_FUNCTIONS, re.DOTALL)
    return {m[1]: m[0].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1) for m in found}


def appending(source: str) -> str:
    """``source`` with every upsert into a summary (``INSERT INTO <summary> AS t (...) SELECT ... ON CONFLICT
    ON CONSTRAINT <its constraint> DO UPDATE SET ...;``) appending to the summary's deltas instead."""
    for summary, (deltas, constraint, _key, _sums) in SUMMARIES.items():
        source = source.replace(f"INSERT INTO {summary} AS t (", f"INSERT INTO {deltas} (")
        source = re.sub(rf"\s*ON CONFLICT ON CONSTRAINT {constraint} DO UPDATE SET[^;]*;", ";", source)
    return source


def _rebuilding(source: str, summaries: Sequence[str]) -> str:
    """A rebuild that first takes the compaction's lock (waiting for a running one) and empties the deltas of
    ``summaries``, then refills them as 0010 did."""
    deltas = ", ".join(SUMMARIES[s][0] for s in summaries)
    head, sep, tail = source.partition("BEGIN\n")
    assert sep, source
    return f"{head}BEGIN\n    PERFORM pg_advisory_xact_lock({LOCK});\n    TRUNCATE {deltas};\n{tail}"


def upgraded_functions() -> str:
    """0010's writers appending to the deltas, and its rebuilds emptying them."""
    of_0010 = functions_of_0010()
    writers = [appending(of_0010[name]) for name in WRITERS]
    rebuilds = [
        _rebuilding(of_0010["report_summaries_rebuild"], list(SUMMARIES)),
        _rebuilding(of_0010["report_fairness_rebuild"], ["report_complaint_tiers", "report_tier_reach"]),
    ]
    return "\n".join(writers + rebuilds)


def _move(summary: str) -> str:
    """The deltas of ``summary`` moved into it: what the DELETE takes, summed per key, upserted in key order;
    the delta rows taken added to ``moved``."""
    deltas, constraint, key, sums = SUMMARIES[summary]
    return f"""
    WITH taken AS (DELETE FROM {deltas} RETURNING *),
    added AS (
        INSERT INTO {summary} AS t ({key}, {", ".join(sums)})
        SELECT {key}, {", ".join(f"sum({s})" for s in sums)} FROM taken
        GROUP BY {key} HAVING {" OR ".join(f"sum({s}) <> 0" for s in sums)}
        ORDER BY {key}
        ON CONFLICT ON CONSTRAINT {constraint} DO UPDATE SET {", ".join(f"{s} = t.{s} + EXCLUDED.{s}" for s in sums)}
    )
    SELECT moved + count(*) INTO moved FROM taken;"""


MOVE = "".join(_move(s) for s in SUMMARIES)


def _deltas_table(summary: str) -> str:
    deltas, _constraint, _key, _sums = SUMMARIES[summary]
    # the summary's columns, without its constraint (LIKE copies neither unique constraints nor indexes)
    return f"CREATE TABLE {deltas} (LIKE {summary} INCLUDING DEFAULTS);\n"


UPGRADE = f"""
{"".join(_deltas_table(s) for s in SUMMARIES)}
{upgraded_functions()}
CREATE FUNCTION report_summaries_compact() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    moved bigint := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock({LOCK}) THEN
        RETURN NULL;  -- another compaction runs (or a rebuild): it takes these deltas, or the next run does
    END IF;
    {MOVE}
    RETURN moved;
END $$;
"""

DOWNGRADE = f"""
LOCK TABLE {", ".join(d for d, *_ in SUMMARIES.values())} IN EXCLUSIVE MODE;  -- no delta appended meanwhile
DO $$
DECLARE
    moved bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK});
    {MOVE}
END $$;
{"".join(functions_of_0010()[name] + chr(10) for name in (*WRITERS, *REBUILDS))}
DROP FUNCTION report_summaries_compact();
DROP TABLE {", ".join(d for d, *_ in SUMMARIES.values())};
"""


def upgrade() -> None:
    execute_function_script(UPGRADE)


def downgrade() -> None:
    execute_function_script(DOWNGRADE)
