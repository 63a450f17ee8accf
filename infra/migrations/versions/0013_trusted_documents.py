"""trusted documents (issue 17, docs/sec-edge.md).

- trusted_documents: GraphQL documents registered with `tierwise documents register`, by the
  SHA-256 (64 lower-case hex digits) of their exact text, with the names of their operations, the
  file they came from, who registered them and when.
- trusted_document_state: one row whose version moves with every registration or removal (and a
  NOTIFY on tierwise_documents): each instance keeps the registered set in memory and reloads it
  when the version moves, so no request asks the database.
- api_tokens.allow_arbitrary_documents: in trusted-documents mode, this partner token may still
  send documents that are not registered (false by default).
- setPartnerTokenArbitraryDocuments needs no new rule: only admins ('*') hold it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = postgresql.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trusted_documents",
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("operation_names", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("registered_by", sa.Text(), nullable=False),
        sa.Column("registered_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("hash ~ '^[0-9a-f]{64}$'", name=op.f("ck_trusted_documents_sha256_hex")),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_trusted_documents")),
    )
    op.create_table(
        "trusted_document_state",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_trusted_document_state_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trusted_document_state")),
    )
    op.execute("INSERT INTO trusted_document_state (id, version) VALUES (1, 1)")
    op.add_column(
        "api_tokens",
        sa.Column("allow_arbitrary_documents", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("api_tokens", "allow_arbitrary_documents")
    op.drop_table("trusted_document_state")
    op.drop_table("trusted_documents")
