"""webhook endpoints keep the payload keys their receiver may not read.

An event's payload carries facts some callers may not read (a ``tier.changed``'s history fields, for the
``partner`` role, which reads a customer's tier but not its tier history). A subscription applies the
subscriber's decisions at each event; a webhook is delivered with no caller present, so the endpoint
keeps, as ``withheld`` (``<event type>:<key>``), what the decisions of the caller who registered or last
changed it deny (authz/catalogue.py ``EVENT_DATA``), and each delivery leaves those keys out.

Endpoints registered before this migration: a partner's get what the default ``partner`` role withholds
(updateWebhookEndpoint recomputes it from the caller's decisions); staff endpoints withhold nothing, as
before.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTNER_ROLE_WITHHOLDS = ["tier.changed:changeType", "tier.changed:fromTier", "tier.changed:policyVersion"]


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("withheld", ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'::text[]")),
    )
    op.execute(
        sa.text("UPDATE webhook_endpoints SET withheld = :keys WHERE partner_id IS NOT NULL").bindparams(
            sa.bindparam("keys", _PARTNER_ROLE_WITHHOLDS, type_=ARRAY(sa.Text()))
        )
    )


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "withheld")
