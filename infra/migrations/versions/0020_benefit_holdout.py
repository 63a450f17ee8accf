"""benefit holdout (issue 15): a share of newly upgraded customers whose new benefits are withheld for a while.

- tier_policies.holdout_share / holdout_days: the holdout of a policy version, off (0, 0) by default; set on a
  draft (setTierPolicyHoldout, audited with the draft), in force once the policy is active.
- benefit_holdouts: one row per upgrade decided while a holdout was in force, written by the tier engine in the
  statement that moves the tier (infra/tiering.py): ``held`` says which group the customer fell in (a
  deterministic draw on customer, policy version and tier: domain/holdout.py), ``from_tier`` which benefits
  it keeps, [starts_at, ends_at) how long the new ones are withheld. Both groups are recorded: the report
  (benefitHoldout) compares them.
- Grants: the report and the holdout of the catalogue are read by analysts (admins hold '*'); setting a
  holdout is an admin's (no grant).

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import add_policy_rules, execute_script, remove_policy_rules

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICIES: list[tuple[str, str, str, str]] = [
    ("role:analyst", o, "read", "allow")
    for o in (
        "BenefitCatalogue.holdout",
        "BenefitHoldout.*",
        "Query.benefitHoldout",
        "BenefitHoldoutReport.*",
        "BenefitHoldoutGroup.*",
        "BenefitHoldoutOutcome.*",
    )
]

_DDL = """
        ALTER TABLE tier_policies
            ADD COLUMN holdout_share numeric(5, 4) DEFAULT 0 NOT NULL,
            ADD COLUMN holdout_days integer DEFAULT 0 NOT NULL,
            ADD CONSTRAINT ck_tier_policies_holdout CHECK (
                holdout_share >= 0 AND holdout_share <= 0.5 AND holdout_days BETWEEN 0 AND 365
                AND (holdout_share = 0) = (holdout_days = 0));

        CREATE TABLE benefit_holdouts (
            id uuid DEFAULT gen_random_uuid() NOT NULL,
            customer_id uuid NOT NULL,
            policy_version integer NOT NULL,
            from_tier text,
            to_tier text NOT NULL,
            held boolean NOT NULL,
            share numeric(5, 4) NOT NULL,
            starts_at timestamptz NOT NULL,
            ends_at timestamptz NOT NULL,
            actor text,
            created_at timestamptz DEFAULT now() NOT NULL,
            CONSTRAINT pk_benefit_holdouts PRIMARY KEY (id),
            CONSTRAINT fk_benefit_holdouts_customer_id_customers FOREIGN KEY (customer_id) REFERENCES customers (id),
            CONSTRAINT ck_benefit_holdouts_window CHECK (ends_at > starts_at)
        );
        CREATE INDEX ix_benefit_holdouts_customer_id ON benefit_holdouts (customer_id, ends_at);
        CREATE INDEX ix_benefit_holdouts_to_tier_starts_at ON benefit_holdouts (to_tier, starts_at);
        CREATE INDEX ix_benefit_holdouts_held ON benefit_holdouts (customer_id) WHERE held
"""


def upgrade() -> None:
    execute_script(_DDL)
    conn = op.get_bind()
    add_policy_rules(conn, POLICIES)


def downgrade() -> None:
    conn = op.get_bind()
    remove_policy_rules(conn, POLICIES)
    op.execute("DROP TABLE benefit_holdouts")
    op.execute("ALTER TABLE tier_policies DROP CONSTRAINT ck_tier_policies_holdout")
    op.execute("ALTER TABLE tier_policies DROP COLUMN holdout_days, DROP COLUMN holdout_share")
