"""duplicate dismissals: a data steward marks a candidate pair as "not a duplicate" (issue 8).

- duplicate_dismissals: one row per dismissed pair (customer_a_id < customer_b_id, so a pair is stored
  once; both cascade with their customers), who dismissed it, when, a short reason code (not free
  text: no personal data; see infra/repos/quality.py DISMISSAL_REASONS), and the criteria the pair
  matched on then: a pair that comes to match on another criterion is a candidate again. The primary key (a, b) answers
  the NOT EXISTS with which customerDuplicates and the data-quality report leave dismissed pairs out;
  the index on b serves the cascade.
- Grants: Mutation.dismissDuplicatePair and Mutation.restoreDuplicatePair to data_steward and admin
  (admins hold '*' already: the explicit rows keep the grant if that rule is ever narrowed).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import add_policy_rules, remove_policy_rules
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = postgresql.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=True)

POLICIES: list[tuple[str, str, str, str]] = [
    (f"role:{role}", obj, "write", "allow")
    for role in ("data_steward", "admin")
    for obj in ("Mutation.dismissDuplicatePair", "Mutation.restoreDuplicatePair")
]


def upgrade() -> None:
    op.create_table(
        "duplicate_dismissals",
        sa.Column("customer_a_id", UUID, nullable=False),
        sa.Column("customer_b_id", UUID, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("criteria", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("dismissed_by", sa.Text(), nullable=False),
        sa.Column("dismissed_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("customer_a_id < customer_b_id", name=op.f("ck_duplicate_dismissals_ordered")),
        sa.ForeignKeyConstraint(
            ["customer_a_id"],
            ["customers.id"],
            name=op.f("fk_duplicate_dismissals_customer_a_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_b_id"],
            ["customers.id"],
            name=op.f("fk_duplicate_dismissals_customer_b_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_a_id", "customer_b_id", name=op.f("pk_duplicate_dismissals")),
    )
    op.create_index("ix_duplicate_dismissals_customer_b_id", "duplicate_dismissals", ["customer_b_id"])

    conn = op.get_bind()
    add_policy_rules(conn, POLICIES)


def downgrade() -> None:
    conn = op.get_bind()
    remove_policy_rules(conn, POLICIES)
    op.drop_index("ix_duplicate_dismissals_customer_b_id", table_name="duplicate_dismissals")
    op.drop_table("duplicate_dismissals")
