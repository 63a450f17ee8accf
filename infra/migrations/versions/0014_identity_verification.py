"""identity verification: the grant of Mutation.verifyCustomerIdentity (issue 17, F4).

Support agents confirm a caller's identity by checking a value the caller gives (match / no match,
through the blind index) instead of seeing contact fields in full; admins may too (they hold '*'
already: the explicit rows keep the grant if that rule is ever narrowed). Partner roles get nothing by
default; a partner token granted it stays confined to its own customers. Attempts are counted in the
existing rate_limit_buckets table: no schema change.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import add_policy_rules, remove_policy_rules

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICIES: list[tuple[str, str, str, str]] = [
    (f"role:{role}", "Mutation.verifyCustomerIdentity", "write", "allow") for role in ("support_agent", "admin")
]


def upgrade() -> None:
    conn = op.get_bind()
    add_policy_rules(conn, POLICIES)


def downgrade() -> None:
    conn = op.get_bind()
    remove_policy_rules(conn, POLICIES)
