"""rate-limit leases: a bucket row says how many points its last take handed out.

An instance leases a slice of a caller's budget in one statement and spends it locally
(api/edge/ratelimit.py); the statement takes what the bucket holds up to the slice asked for, and
``taken`` is how it tells the instance what it got (RETURNING sees only the new row).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rate_limit_buckets", sa.Column("taken", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("rate_limit_buckets", "taken")
