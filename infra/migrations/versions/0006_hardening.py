"""hardening: rate-limit buckets shared by every instance; token limits must be positive.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One token bucket per caller (token:<id> or user:<sub>): the points left and when. UNLOGGED:
    # losing it in a crash only hands everyone a full bucket, and charging writes no WAL.
    op.create_table(
        "rate_limit_buckets",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_buckets")),
        prefixes=["UNLOGGED"],
    )
    op.create_check_constraint(
        op.f("ck_api_tokens_rate_limit_positive"), "api_tokens", "rate_limit_per_minute IS NULL OR rate_limit_per_minute > 0"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_api_tokens_rate_limit_positive"), "api_tokens", type_="check")
    op.drop_table("rate_limit_buckets")
