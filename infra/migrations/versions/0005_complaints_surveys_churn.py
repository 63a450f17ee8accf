"""complaints surveys churn: SLA policy lifecycle, complaint event kinds, survey invitation triggers and
tiers, churn score index, and the default grants of the new operations and fields.

- sla_policies: a name, who created and activated it, when it was retired.
- complaint_events.kind: transition, sla_breach or escalation (the SLA sweep writes the last two).
- survey_invitations: what triggered it, the purchase that did, and the customer's tier when invited
  (survey coverage and response rates by tier); existing rows are backfilled.
- Grants (API.md's role table): support agents and analysts read SLA policies; marketing invites
  to surveys and sees invitations; marketing's reports are survey results only (no complaint
  analytics, no fairness report, which is built from complaints). New Complaint.* / ComplaintEvent.*
  fields follow the existing wildcard grants; admin has '*'.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = postgresql.TIMESTAMP(timezone=True)

_SLA_READ = ["Query.slaPolicies", "Query.activeSlaPolicy", "SlaPolicy.*", "SlaTarget.*"]
POLICIES: list[tuple[str, str, str, str]] = [
    *[("role:support_agent", o, "read", "allow") for o in [*_SLA_READ, "SurveyInvitation.*"]],
    *[("role:analyst", o, "read", "allow") for o in [*_SLA_READ, "SurveyInvitation.*"]],
    ("role:marketing", "SurveyInvitation.*", "read", "allow"),
    ("role:marketing", "Mutation.inviteToSurvey", "write", "allow"),
    ("role:marketing", "Reports.complaints", "read", "deny"),
    ("role:marketing", "Reports.fairness", "read", "deny"),
]


def upgrade() -> None:
    op.add_column("sla_policies", sa.Column("name", sa.Text(), server_default="", nullable=False))
    op.add_column("sla_policies", sa.Column("created_by", sa.Text(), nullable=True))
    op.add_column("sla_policies", sa.Column("activated_by", sa.Text(), nullable=True))
    op.add_column("sla_policies", sa.Column("retired_at", TS, nullable=True))
    op.execute(
        "UPDATE sla_policies SET name = 'Default SLA v' || version, created_by = 'migration',"
        " activated_by = CASE WHEN activated_at IS NOT NULL THEN 'migration' END WHERE name = ''"
    )

    op.add_column("complaint_events", sa.Column("kind", sa.Text(), server_default="transition", nullable=False))
    op.create_check_constraint(
        op.f("ck_complaint_events_kind"), "complaint_events", "kind IN ('transition', 'sla_breach', 'escalation')"
    )
    op.create_index("ix_complaints_escalated", "complaints", ["escalated_at"], unique=False)

    op.add_column("survey_invitations", sa.Column("trigger", sa.Text(), server_default="manual", nullable=False))
    op.add_column("survey_invitations", sa.Column("tier_at_invitation", sa.Text(), nullable=True))
    op.add_column(
        "survey_invitations",
        sa.Column(
            "purchase_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("purchases.id", name=op.f("fk_survey_invitations_purchase_id_purchases")),
            nullable=True,
        ),
    )
    op.create_check_constraint(
        op.f("ck_survey_invitations_trigger"),
        "survey_invitations",
        "trigger IN ('manual', 'complaint_resolved', 'purchase', 'periodic')",
    )
    op.create_index(
        "ix_survey_invitations_complaint", "survey_invitations", ["survey_id", "complaint_id"], unique=False
    )
    op.create_index("ix_survey_invitations_purchase", "survey_invitations", ["purchase_id"], unique=False)
    op.execute(
        "UPDATE survey_invitations i SET trigger = s.trigger, tier_at_invitation = c.tier_code"
        " FROM surveys s, customers c WHERE s.id = i.survey_id AND c.id = i.customer_id"
    )

    op.create_index("ix_churn_scores_level", "churn_scores", ["level"], unique=False)

    conn = op.get_bind()
    for sub, obj, act, eft in POLICIES:
        conn.execute(
            sa.text(
                "INSERT INTO casbin_rules (ptype, v0, v1, v2, v3) VALUES ('p', :s, :o, :a, :e)"
                " ON CONFLICT DO NOTHING"
            ),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    # Running instances reload the policy when its version moves.
    conn.execute(sa.text("UPDATE authz_state SET policy_version = policy_version + 1, updated_at = now()"))


def downgrade() -> None:
    conn = op.get_bind()
    for sub, obj, act, eft in POLICIES:
        conn.execute(
            sa.text("DELETE FROM casbin_rules WHERE ptype = 'p' AND v0 = :s AND v1 = :o AND v2 = :a AND v3 = :e"),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    conn.execute(sa.text("UPDATE authz_state SET policy_version = policy_version + 1, updated_at = now()"))
    op.drop_index("ix_churn_scores_level", table_name="churn_scores")
    op.drop_index("ix_survey_invitations_purchase", table_name="survey_invitations")
    op.drop_index("ix_survey_invitations_complaint", table_name="survey_invitations")
    op.drop_constraint(op.f("ck_survey_invitations_trigger"), "survey_invitations", type_="check")
    op.drop_column("survey_invitations", "purchase_id")
    op.drop_column("survey_invitations", "tier_at_invitation")
    op.drop_column("survey_invitations", "trigger")
    op.drop_index("ix_complaints_escalated", table_name="complaints")
    op.execute("DELETE FROM complaint_events WHERE kind <> 'transition'")
    op.drop_constraint(op.f("ck_complaint_events_kind"), "complaint_events", type_="check")
    op.drop_column("complaint_events", "kind")
    op.drop_column("sla_policies", "retired_at")
    op.drop_column("sla_policies", "activated_by")
    op.drop_column("sla_policies", "created_by")
    op.drop_column("sla_policies", "name")
