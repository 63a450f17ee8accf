"""teams (issue 16, the last complaint queue): "assigned to a team", "my teams".

- teams: a named group of staff (the name unique); team_members: who is in it, by user id (a token's
  ``sub``, the same value ``complaints.assignee`` holds and "assigned to me" matches).
- complaints.team_id: the team a complaint is assigned to (optional; independent of the assignee, so a
  complaint can wait in a team's queue unassigned, or be worked by someone of the team), indexed for the
  team queues.
- Grants: ``Complaint.team`` is read by the roles that read ``Complaint.assignee`` (support agents,
  analysts, partners and data stewards hold ``Complaint.*`` since 0002/0008; explicit rows keep the grant
  if that rule is ever narrowed); the team a complaint is in (``Team.id``, ``Team.name``) by the same
  roles, its members and the list of teams (``Query.teams``) by staff only (support agents, analysts):
  a partner sees a team's name on its own complaints, not who works there. Team administration
  (createTeam, addTeamMember, removeTeamMember) is for admins, who hold ``*``. (No migration grants
  database privileges: the app's roles are Casbin roles, above.)

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import add_policy_rules, execute_script, remove_policy_rules

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_READ_TEAM = ("Complaint.team", "Team.name")
POLICIES: list[tuple[str, str, str, str]] = [
    *[(f"role:{r}", o, "read", "allow") for r in ("support_agent", "analyst", "partner", "data_steward") for o in _READ_TEAM],
    *[(f"role:{r}", o, "read", "allow") for r in ("support_agent", "analyst") for o in ("Query.teams", "Team.*")],
]  # fmt: skip

_DDL = """
        CREATE TABLE teams (
            id uuid DEFAULT gen_random_uuid() NOT NULL,
            name text NOT NULL,
            created_at timestamptz DEFAULT now() NOT NULL,
            CONSTRAINT pk_teams PRIMARY KEY (id),
            CONSTRAINT uq_teams_name UNIQUE (name),
            CONSTRAINT ck_teams_name_not_blank CHECK (length(btrim(name)) > 0)
        );
        CREATE TABLE team_members (
            team_id uuid NOT NULL,
            user_id text NOT NULL,
            added_by text,
            created_at timestamptz DEFAULT now() NOT NULL,
            CONSTRAINT pk_team_members PRIMARY KEY (team_id, user_id),
            CONSTRAINT fk_team_members_team_id_teams FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE
        );
        CREATE INDEX ix_team_members_user_id ON team_members (user_id);
        ALTER TABLE complaints ADD COLUMN team_id uuid;
        ALTER TABLE complaints ADD CONSTRAINT fk_complaints_team_id_teams FOREIGN KEY (team_id) REFERENCES teams (id);
        CREATE INDEX ix_complaints_team_id ON complaints (team_id)
"""


def upgrade() -> None:
    execute_script(_DDL)
    conn = op.get_bind()
    add_policy_rules(conn, POLICIES)


def downgrade() -> None:
    conn = op.get_bind()
    remove_policy_rules(conn, POLICIES)
    op.execute("DROP INDEX ix_complaints_team_id")
    op.execute("ALTER TABLE complaints DROP COLUMN team_id")
    op.execute("DROP TABLE team_members")
    op.execute("DROP TABLE teams")
