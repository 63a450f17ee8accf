"""Tier engine: editable drafts, the checkpoint of full re-tiers, and the default grants of the tier
operations (policies, simulation, overrides, reports, explanations).

- ``tier_policies`` gains an edit ``revision`` (optimistic concurrency on drafts), ``description``,
  who last changed it and who retired it.
- ``tier_runs``: one row per full re-tier, with its checkpoint (the last customer id done), so an
  interrupted run resumes where it stopped; at most one runs at a time.
- A partial index finds the manual overrides that expire; the purchases index by customer covers the
  amount, so metrics are recomputed by index-only scans.
- Grants: admins have ``*`` already. Analysts and marketing read the tier reports; every role that
  reads ``Customer.tier`` reads ``Customer.tierExplanation`` (the metric values inside it follow the
  role's own metric grants); roles that list policies may read one.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = TIMESTAMP(timezone=True)

_REPORTS = [
    "Query.tierDistribution",
    "Query.tierMigrations",
    "TierDistribution.*",
    "TierShare.*",
    "TierMigrationReport.*",
    "TierMigrationCell.*",
]
POLICIES: list[tuple[str, str, str, str]] = [
    *[("role:analyst", o, "read", "allow") for o in [*_REPORTS, "Customer.tierExplanation", "Query.tierPolicy"]],
    *[("role:marketing", o, "read", "allow") for o in [*_REPORTS, "Customer.tierExplanation", "Query.tierPolicy"]],
    ("role:support_agent", "Customer.tierExplanation", "read", "allow"),
    ("role:support_agent", "Query.tierPolicy", "read", "allow"),
    ("role:partner", "Customer.tierExplanation", "read", "allow"),
]


def upgrade() -> None:
    op.add_column("tier_policies", sa.Column("description", sa.Text(), nullable=True))
    op.add_column("tier_policies", sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("tier_policies", sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()))
    op.add_column("tier_policies", sa.Column("updated_by", sa.Text(), nullable=True))
    op.add_column("tier_policies", sa.Column("retired_by", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_tier_policies_days"),
        "tier_policies",
        "grace_days BETWEEN 0 AND 3650 AND min_stay_days BETWEEN 0 AND 3650 AND spend_window_days BETWEEN 1 AND 3650",
    )
    # Covering index: the metrics of a customer, or of a range of customers, come from the index alone.
    op.drop_index("ix_purchases_customer_at", table_name="purchases")
    op.create_index(
        "ix_purchases_customer_at",
        "purchases",
        ["customer_id", sa.literal_column("purchased_at DESC")],
        postgresql_include=["amount"],
    )
    op.create_index(
        "ix_customers_tier_override_expires",
        "customers",
        ["tier_override_expires_at"],
        postgresql_where=sa.text("tier_override_code IS NOT NULL"),
    )
    op.create_table(
        "tier_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, server_default="full"),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="running"),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("after_id", UUID(as_uuid=True), nullable=True),
        sa.Column("customers_total", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("customers_done", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("batches", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("changed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("started_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TS, nullable=True),
        sa.CheckConstraint("status IN ('running', 'done', 'superseded')", name=op.f("ck_tier_runs_status")),
        sa.CheckConstraint("batch_size > 0", name=op.f("ck_tier_runs_batch_size_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_runs")),
    )
    op.create_index(
        "uq_tier_runs_one_running", "tier_runs", ["kind"], unique=True, postgresql_where=sa.text("status = 'running'")
    )
    op.create_index("ix_tier_runs_started", "tier_runs", [sa.text("started_at DESC")])
    conn = op.get_bind()
    for sub, obj, act, eft in POLICIES:
        conn.execute(
            sa.text("INSERT INTO casbin_rules (ptype, v0, v1, v2, v3) VALUES ('p', :s, :o, :a, :e)"),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    conn.execute(sa.text("UPDATE authz_state SET policy_version = policy_version + 1, updated_at = now()"))


def downgrade() -> None:
    conn = op.get_bind()
    for sub, obj, act, eft in POLICIES:
        conn.execute(
            sa.text("DELETE FROM casbin_rules WHERE ptype = 'p' AND v0 = :s AND v1 = :o AND v2 = :a AND v3 = :e"),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    op.drop_table("tier_runs")
    op.drop_index("ix_customers_tier_override_expires", table_name="customers")
    op.drop_index("ix_purchases_customer_at", table_name="purchases")
    op.create_index("ix_purchases_customer_at", "purchases", ["customer_id", sa.literal_column("purchased_at DESC")])
    op.drop_constraint("ck_tier_policies_days", "tier_policies", type_="check")
    for column in ("retired_by", "updated_by", "updated_at", "revision", "description"):
        op.drop_column("tier_policies", column)
