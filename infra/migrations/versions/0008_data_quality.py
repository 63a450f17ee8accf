"""data quality: merges, consent history, erasure; the data_steward role and the grants of the new
operations (issue 8, items 5-10).

- customers: partial covering indexes (partner, blind index, id) of live customers per duplicate criterion.
- customers.merged_at (a merged duplicate stays as a tombstone: merged_into_id, merged_at) and
  customers.erased_at (every sensitive value removed, irreversibly).
- customer_merges: one row per merge (survivor, duplicate, reasons, filled fields, rows moved).
- consent_events: every consent given or withdrawn, per channel, with who and when.
- Role data_steward: duplicates, merges, the data-quality report and exports (access requests);
  customer data in full. Support agents and partners record consent (partners now read it too);
  admins have '*'.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = postgresql.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=True)

DUPLICATE_KINDS = ("email", "phone", "national_id", "name_dob")
LIVE = "deleted_at IS NULL AND merged_into_id IS NULL AND erased_at IS NULL"
ROLE = ("data_steward", "Data quality and access requests: duplicates, merges, quality report, exports")
_STEWARD_READ = [
    "Query.customers", "Query.customer", "Query.customerDuplicates", "Query.dataQualityReport",
    "Query.exportCustomerData", "Customer.*", "CustomerMetrics.*", "Purchase.*", "Complaint.*", "ComplaintEvent.*",
    "SurveyResponse.*", "SurveyAnswer.*", "TierChange.*", "ChurnRisk.*", "Partner.*",
    "DuplicatePair.*", "DataQualityReport.*", "MissingField.*", "DuplicateCount.*", "MonthCount.*",
    "MetricsStaleness.*", "CustomerMerge.*",
    # what an export holds besides (no Query.auditLog: audit entries only inside a customer's export)
    "SurveyInvitation.*", "AuditEntry.*",
]
POLICIES: list[tuple[str, str, str, str]] = [
    *[("role:data_steward", o, "read", "allow") for o in _STEWARD_READ],
    *[("role:data_steward", o, "write", "allow") for o in ("Mutation.mergeCustomers", "Mutation.setCustomerConsent")],
    ("role:support_agent", "Mutation.setCustomerConsent", "write", "allow"),
    ("role:partner", "Mutation.setCustomerConsent", "write", "allow"),
    ("role:partner", "Customer.consent", "read", "allow"),  # partners collect consent: they see what they set
]


def upgrade() -> None:
    op.add_column("customers", sa.Column("merged_at", TS, nullable=True))
    op.add_column("customers", sa.Column("erased_at", TS, nullable=True))
    # Duplicate candidates: per criterion, the live customers' blind index by partner, index-only (the
    # grouping that finds repeated values reads these, not the wide, encrypted rows).
    for kind in DUPLICATE_KINDS:
        op.create_index(
            f"ix_customers_dup_{kind}",
            "customers",
            ["partner_id", f"{kind}_bidx", "id"],
            postgresql_where=sa.text(f"{kind}_bidx IS NOT NULL AND {LIVE}"),
        )
    op.create_table(
        "customer_merges",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("survivor_id", UUID, nullable=False),
        sa.Column("duplicate_id", UUID, nullable=False),
        sa.Column("reasons", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("filled_fields", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("moved", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("merged_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("survivor_id <> duplicate_id", name=op.f("ck_customer_merges_not_self")),
        sa.ForeignKeyConstraint(
            ["survivor_id"], ["customers.id"], name=op.f("fk_customer_merges_survivor_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_id"], ["customers.id"], name=op.f("fk_customer_merges_duplicate_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_merges")),
        sa.UniqueConstraint("duplicate_id", name=op.f("uq_customer_merges_duplicate_id")),
    )
    op.create_index("ix_customer_merges_survivor", "customer_merges", ["survivor_id"])
    op.create_index("ix_customer_merges_at", "customer_merges", ["merged_at"])
    op.create_table(
        "consent_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms', 'phone')", name=op.f("ck_consent_events_channel")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_consent_events_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index("ix_consent_events_customer", "consent_events", ["customer_id", "at"])

    conn = op.get_bind()
    conn.execute(
        sa.text("INSERT INTO roles (name, description) VALUES (:n, :d) ON CONFLICT DO NOTHING"),
        {"n": ROLE[0], "d": ROLE[1]},
    )
    for sub, obj, act, eft in POLICIES:
        conn.execute(
            sa.text(
                "INSERT INTO casbin_rules (ptype, v0, v1, v2, v3) VALUES ('p', :s, :o, :a, :e)"
                " ON CONFLICT DO NOTHING"
            ),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    conn.execute(sa.text("UPDATE authz_state SET policy_version = policy_version + 1, updated_at = now()"))


def downgrade() -> None:
    conn = op.get_bind()
    for sub, obj, act, eft in POLICIES:
        conn.execute(
            sa.text("DELETE FROM casbin_rules WHERE ptype = 'p' AND v0 = :s AND v1 = :o AND v2 = :a AND v3 = :e"),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    conn.execute(sa.text("DELETE FROM casbin_rules WHERE ptype = 'g' AND v1 = 'role:data_steward'"))
    conn.execute(sa.text("DELETE FROM roles WHERE name = 'data_steward'"))
    conn.execute(sa.text("UPDATE authz_state SET policy_version = policy_version + 1, updated_at = now()"))
    op.drop_index("ix_consent_events_customer", table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_index("ix_customer_merges_at", table_name="customer_merges")
    op.drop_index("ix_customer_merges_survivor", table_name="customer_merges")
    op.drop_table("customer_merges")
    for kind in DUPLICATE_KINDS:
        op.drop_index(f"ix_customers_dup_{kind}", table_name="customers")
    op.drop_column("customers", "erased_at")
    op.drop_column("customers", "merged_at")
