"""The job queue's tables (procrastinate 3.10 schema, frozen beside this file as SQL).

A later procrastinate upgrade applies its own migration scripts in a new migration.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = Path(__file__).with_name("0003_procrastinate_schema.sql")


def upgrade() -> None:
    # Many statements in one script: asyncpg's simple-query protocol runs them as one (no prepare).
    from sqlalchemy.util import await_

    driver = op.get_bind().connection.driver_connection
    await_(driver.execute(SCHEMA.read_text()))


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,"
        " procrastinate_workers CASCADE"
    )
