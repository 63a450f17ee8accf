"""benefits with costs, their uses, refunds (issue 15).

- refunds: a refund of one purchase (full or partial), idempotent on the writer's (partner, external id)
  like purchases; the purchase's time is copied (spend windows count a refund with its purchase) and
  ``closes_purchase`` marks the refund that brought a purchase to zero (no longer an order). Metrics
  subtract refunds from spend (infra/metrics.py) without giving up the index-only scan of purchases.
- benefits: one row per benefit of a tier policy version (drafted, activated and retired with it), with a
  kind, a cost model, the eligible tiers and an optional budget per tier and period (domain/benefits.py).
- benefit_redemptions: one use of a benefit by a customer, idempotent like purchases, with the tier the
  customer had and the cost computed from the model when it was used.
- Grants: refunds and redemptions are written like purchases (partner; admin holds '*'), redemptions by
  support agents too; financial fields (costs, budgets, refund amounts for support) go to analysts and
  admins only; the economics report to analysts.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import add_policy_rules, execute_script, remove_policy_rules

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BENEFIT_PLAIN = (
    "Query.benefitCatalogue",
    "Benefit.code",
    "Benefit.name",
    "Benefit.kind",
    "Benefit.tiers",
    "Benefit.description",
    "BenefitChange.*",
)
_REDEMPTION_PLAIN = (
    "BenefitRedemption.externalId",
    "BenefitRedemption.benefitCode",
    "BenefitRedemption.policyVersion",
    "BenefitRedemption.tier",
    "BenefitRedemption.orderAmount",
    "BenefitRedemption.redeemedAt",
    "BenefitRedemption.customer",
    "BudgetWarning.benefit",
    "BudgetWarning.tier",
    "BudgetWarning.periodStart",
    "BudgetWarning.exceeded",
)
POLICIES: list[tuple[str, str, str, str]] = [
    # writes, like purchases
    ("role:partner", "Mutation.recordRefunds", "write", "allow"),
    ("role:partner", "Mutation.recordBenefitRedemptions", "write", "allow"),
    ("role:support_agent", "Mutation.recordBenefitRedemptions", "write", "allow"),
    # reads: refunds like purchases (support agents see no amounts), benefits without their costs
    *[("role:partner", o, "read", "allow") for o in ("Refund.*", *_BENEFIT_PLAIN, *_REDEMPTION_PLAIN)],
    *[("role:support_agent", o, "read", "allow") for o in ("Refund.*", *_BENEFIT_PLAIN, *_REDEMPTION_PLAIN)],
    ("role:support_agent", "Refund.amount", "read", "deny"),
    ("role:support_agent", "Purchase.refundedAmount", "read", "deny"),
    *[("role:marketing", o, "read", "allow") for o in _BENEFIT_PLAIN],
    # an export (access request) holds the customer's refunds: data stewards read them like purchases
    ("role:data_steward", "Refund.*", "read", "allow"),
    ("role:data_steward", "BenefitRedemption.*", "read", "allow"),
    # financial: analysts (admins hold '*')
    *[
        ("role:analyst", o, "read", "allow")
        for o in (
            "Query.benefitCatalogue",
            "Refund.*",
            "Benefit.*",
            "BenefitChange.*",
            "BenefitRedemption.*",
            "BudgetWarning.*",
            "Query.tierEconomics",
            "TierEconomics.*",
            "TierEconomicsRow.*",
            "Query.tierEffect",
            "TierEffect.*",
            "TierEffectOutcome.*",
        )
    ],
]


_DDL = """
        CREATE TABLE refunds (
            id uuid DEFAULT gen_random_uuid() NOT NULL,
            purchase_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            partner_id uuid,
            external_id text,
            amount numeric(14, 2) NOT NULL,
            reason text,
            refunded_at timestamptz NOT NULL,
            purchased_at timestamptz NOT NULL,
            closes_purchase boolean DEFAULT false NOT NULL,
            actor text,
            created_at timestamptz DEFAULT now() NOT NULL,
            CONSTRAINT pk_refunds PRIMARY KEY (id),
            CONSTRAINT fk_refunds_purchase_id_purchases FOREIGN KEY (purchase_id) REFERENCES purchases (id),
            CONSTRAINT fk_refunds_customer_id_customers FOREIGN KEY (customer_id) REFERENCES customers (id),
            CONSTRAINT fk_refunds_partner_id_partners FOREIGN KEY (partner_id) REFERENCES partners (id),
            CONSTRAINT ck_refunds_amount_positive CHECK (amount > 0)
        );
        CREATE UNIQUE INDEX uq_refunds_partner_external_id ON refunds (partner_id, external_id)
            NULLS NOT DISTINCT WHERE external_id IS NOT NULL;
        CREATE INDEX ix_refunds_purchase_id ON refunds (purchase_id);
        CREATE INDEX ix_refunds_customer_id ON refunds (customer_id);
        CREATE INDEX ix_refunds_refunded_at ON refunds (refunded_at);

        CREATE TABLE benefits (
            id uuid DEFAULT gen_random_uuid() NOT NULL,
            policy_id uuid NOT NULL,
            code text NOT NULL,
            name text NOT NULL,
            kind text NOT NULL,
            cost_model text NOT NULL,
            cost_value numeric(14, 4) NOT NULL,
            tiers text[] DEFAULT '{}' NOT NULL,
            budget numeric(14, 2),
            budget_period text,
            description text,
            created_at timestamptz DEFAULT now() NOT NULL,
            CONSTRAINT pk_benefits PRIMARY KEY (id),
            CONSTRAINT fk_benefits_policy_id_tier_policies FOREIGN KEY (policy_id)
                REFERENCES tier_policies (id) ON DELETE CASCADE,
            CONSTRAINT uq_benefits_policy_id_code UNIQUE (policy_id, code)
        );

        CREATE TABLE benefit_redemptions (
            id uuid DEFAULT gen_random_uuid() NOT NULL,
            benefit_id uuid NOT NULL,
            benefit_code text NOT NULL,
            policy_version integer NOT NULL,
            customer_id uuid NOT NULL,
            partner_id uuid,
            external_id text,
            tier_code text NOT NULL,
            order_amount numeric(14, 2),
            cost numeric(14, 2) NOT NULL,
            redeemed_at timestamptz NOT NULL,
            actor text,
            created_at timestamptz DEFAULT now() NOT NULL,
            CONSTRAINT pk_benefit_redemptions PRIMARY KEY (id),
            CONSTRAINT fk_benefit_redemptions_benefit_id_benefits FOREIGN KEY (benefit_id) REFERENCES benefits (id),
            CONSTRAINT fk_benefit_redemptions_customer_id_customers FOREIGN KEY (customer_id)
                REFERENCES customers (id),
            CONSTRAINT fk_benefit_redemptions_partner_id_partners FOREIGN KEY (partner_id) REFERENCES partners (id),
            CONSTRAINT ck_benefit_redemptions_cost_not_negative CHECK (cost >= 0)
        );
        CREATE UNIQUE INDEX uq_benefit_redemptions_partner_external_id ON benefit_redemptions
            (partner_id, external_id) NULLS NOT DISTINCT WHERE external_id IS NOT NULL;
        CREATE INDEX ix_benefit_redemptions_customer_at ON benefit_redemptions (customer_id, redeemed_at);
        CREATE INDEX ix_benefit_redemptions_at ON benefit_redemptions (redeemed_at);
        CREATE INDEX ix_benefit_redemptions_benefit_tier_at ON benefit_redemptions
            (benefit_code, tier_code, redeemed_at);
"""


def upgrade() -> None:
    execute_script(_DDL)
    conn = op.get_bind()
    add_policy_rules(conn, POLICIES)


def downgrade() -> None:
    conn = op.get_bind()
    remove_policy_rules(conn, POLICIES)
    for table in ("benefit_redemptions", "benefits", "refunds"):
        op.execute(f"DROP TABLE {table}")
