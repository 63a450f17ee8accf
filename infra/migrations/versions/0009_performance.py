"""performance at a million customers (issue 7): covering indexes for the reports over the whole base.

- ix_customers_live_tier: the live customers (not deleted, not merged) by id with their tier. The tier
  distribution, the fairness report's reach and the complaint rates count live customers per tier: an
  index-only scan of this small index instead of a sequential scan of the customers table, whose rows
  carry the encrypted contact data (about 1 kB each).
- ix_customer_metrics_spend: the metrics' spend in the policy window by customer (index-only, for the
  tier distribution's revenue).
- ix_survey_invitations_target: the first invitation of each (survey, customer, complaint), with the
  columns the response-rate grouping reads, in the order of the reports' DISTINCT ON (no sort of every
  invitation).
- ix_tier_changes_latest: each customer's history newest first with the tier it moved to (the tier
  migration matrix's "tier at a moment" without sorting the whole history).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    (
        "ix_customers_live_tier",
        "customers (id) INCLUDE (tier_code) WHERE deleted_at IS NULL AND merged_into_id IS NULL",
    ),
    ("ix_customer_metrics_spend", "customer_metrics (customer_id) INCLUDE (spend_12m)"),
    (
        "ix_survey_invitations_target",
        "survey_invitations (survey_id, customer_id, complaint_id, sent_at, id) INCLUDE (channel, tier_at_invitation)",
    ),
    ("ix_tier_changes_latest", "tier_changes (customer_id, changed_at DESC, id DESC) INCLUDE (to_tier)"),
)


def upgrade() -> None:
    for name, spec in INDEXES:
        op.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {spec}"))


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        op.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
