"""teams can be retired (archiveTeam): ``teams.archived_at``, null while the team takes complaints.

An archived team is offered for no new complaint (assignComplaint to it is refused, api/usecases/queues.py
through domain/queues.py ``team_takes_complaints``) and left out of ``teams`` unless asked for; the
complaints it holds keep it until someone reassigns them, so its queue still lists them. The row stays
(complaints and their history point at it), and so does its name: names are unique over every team,
archived ones included (rename an archived team to reuse its name).

Grants: none new. ``Team.archivedAt`` is read by the roles that read ``Team.*`` (support agents and
analysts, since 0022); partners and data stewards read a team's name only. renameTeam and archiveTeam are
for admins, who hold ``*``, like createTeam.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE teams ADD COLUMN archived_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE teams DROP COLUMN archived_at")
