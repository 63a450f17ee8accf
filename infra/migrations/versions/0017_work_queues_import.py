"""work queues, name search, bulk import (issue 16): indexes, complaint event kinds, the default grants.

- pg_trgm and a GIN trigram index on customers.name: the typo-tolerant, ranked name search
  (``word_similarity``, operator ``<%``) runs on the index. Names are the one personal field kept in
  plain text (sensitive fields are encrypted: they are only ever matched by their blind index).
  The code calls four SQL functions (``tw_name_*``), thin wrappers of pg_trgm's operators that the planner
  inlines (so the index is used). Where pg_trgm is not available (the embedded development server,
  pgserver, ships no contrib modules) they are written in plain SQL instead: the same trigrams, no index,
  ``word_similarity`` approximated as the share of the term's trigrams found in the name.
- complaint_events.kind gains ``note`` (a note without a state change) and ``assignment`` (a
  reassignment): both in the complaint's event history, with their actor.
- complaints: the open complaints by assignee (the "assigned to me" and "unassigned" queues).
- churn_scores: (score, customer) for the churn queue sorted by score.
- Grants: the churn queue to support agents, marketing and analysts (they read churn risk already);
  the complaint queue to support agents, analysts and partners (they read complaints already); name search
  to support agents, marketing and partners (they read names in full; analysts do not, and would be
  refused the argument anyway); notes and reassignment to support agents; the customer import to data
  stewards and partners (partners within their own partner). Admins hold '*'.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import add_policy_rules, remove_policy_rules

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "('new', 'open', 'pending_customer', 'on_hold')"
_ENTRY = ("ChurnQueueEntry.*",)
POLICIES: list[tuple[str, str, str, str]] = [
    *[(f"role:{r}", o, "read", "allow") for r in ("support_agent", "marketing", "analyst") for o in _ENTRY],
    *[(f"role:{r}", "Query.churnQueue", "read", "allow") for r in ("support_agent", "marketing", "analyst")],
    *[(f"role:{r}", "Query.complaintQueue", "read", "allow") for r in ("support_agent", "analyst", "partner")],
    *[(f"role:{r}", "Query.searchCustomers", "read", "allow") for r in ("support_agent", "marketing", "partner")],
    ("role:support_agent", "Mutation.addComplaintNote", "write", "allow"),
    ("role:support_agent", "Mutation.assignComplaint", "write", "allow"),
    ("role:data_steward", "Mutation.importCustomers", "write", "allow"),
    ("role:partner", "Mutation.importCustomers", "write", "allow"),
    # what an import writes: the same field write grants as createCustomer (partners have theirs since 0002)
    *[
        ("role:data_steward", o, "write", "allow")
        for o in (
            "Customer.name", "Customer.externalRef", "Customer.email", "Customer.phone", "Customer.nationalId",
            "Customer.birthDate", "Customer.address", "Customer.locale", "Customer.lifecycleStage",
        )
    ],
]  # fmt: skip


# With pg_trgm: its operators, inlined by the planner (STABLE, like the operators: they read the thresholds).
WITH_PG_TRGM = """
CREATE FUNCTION tw_name_matches(term text, name text) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT term <% name $$;
CREATE FUNCTION tw_name_score(term text, name text) RETURNS real LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT word_similarity(term, name) $$;
CREATE FUNCTION tw_names_close(a text, b text) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT a % b $$;
CREATE FUNCTION tw_name_similarity(a text, b text) RETURNS real LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT similarity(a, b) $$;
"""
# Without it: pg_trgm's trigrams (lower case, words of letters and digits padded with two blanks before and
# one after) in plain SQL, and the same thresholds (pg_trgm.word_similarity_threshold, which the app sets
# on its connections, infra/db.py; 0.3 similarity).
WITHOUT_PG_TRGM = """
CREATE FUNCTION tw_trigrams(t text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT substr(w, i, 3)), '{}')
    FROM (SELECT '  ' || word || ' ' AS w
          FROM regexp_split_to_table(lower(t), '[^[:alnum:]]+') AS word WHERE word <> '') AS words,
         generate_series(1, length(w) - 2) AS i $$;
CREATE FUNCTION tw_name_similarity(a text, b text) RETURNS real LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(x.u) = 0 THEN 0 ELSE cardinality(x.i)::real / cardinality(x.u) END
    FROM (SELECT ARRAY(SELECT unnest(tw_trigrams(a)) INTERSECT SELECT unnest(tw_trigrams(b))) AS i,
                 ARRAY(SELECT unnest(tw_trigrams(a)) UNION SELECT unnest(tw_trigrams(b))) AS u) AS x $$;
CREATE FUNCTION tw_name_score(term text, name text) RETURNS real LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(x.t) = 0 THEN 0
                ELSE cardinality(ARRAY(SELECT unnest(x.t) INTERSECT SELECT unnest(tw_trigrams(name))))::real
                     / cardinality(x.t) END
    FROM (SELECT tw_trigrams(term) AS t) AS x $$;
CREATE FUNCTION tw_name_matches(term text, name text) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT tw_name_score(term, name)
           >= coalesce(nullif(current_setting('pg_trgm.word_similarity_threshold', true), '')::real, 0.6) $$;
CREATE FUNCTION tw_names_close(a text, b text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT tw_name_similarity(a, b) >= 0.3 $$;
"""


def _run(statements: str) -> None:
    """One statement at a time (a prepared statement holds one); no body holds a semicolon."""
    for statement in statements.split(";"):
        if statement.strip():
            op.execute(statement)


FUNCTIONS = ("tw_name_matches", "tw_name_score", "tw_names_close", "tw_name_similarity", "tw_trigrams")


def upgrade() -> None:
    conn = op.get_bind()
    available = conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first()
    if available is not None:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_customers_name_trgm ON customers USING gin (name gin_trgm_ops)")
        _run(WITH_PG_TRGM)
    else:
        _run(WITHOUT_PG_TRGM)
    op.drop_constraint(op.f("ck_complaint_events_kind"), "complaint_events", type_="check")
    op.create_check_constraint(
        op.f("ck_complaint_events_kind"),
        "complaint_events",
        "kind IN ('transition', 'sla_breach', 'escalation', 'note', 'assignment')",
    )
    op.execute(f"CREATE INDEX ix_complaints_active_assignee ON complaints (assignee) WHERE status IN {_ACTIVE}")
    op.create_index("ix_churn_scores_score", "churn_scores", ["score", "customer_id"], unique=False)
    add_policy_rules(conn, POLICIES)


def downgrade() -> None:
    conn = op.get_bind()
    remove_policy_rules(conn, POLICIES)
    op.drop_index("ix_churn_scores_score", table_name="churn_scores")
    op.execute("DROP INDEX ix_complaints_active_assignee")
    op.execute("DELETE FROM complaint_events WHERE kind IN ('note', 'assignment')")
    op.drop_constraint(op.f("ck_complaint_events_kind"), "complaint_events", type_="check")
    op.create_check_constraint(
        op.f("ck_complaint_events_kind"), "complaint_events", "kind IN ('transition', 'sla_breach', 'escalation')"
    )
    op.execute("DROP INDEX IF EXISTS ix_customers_name_trgm")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
