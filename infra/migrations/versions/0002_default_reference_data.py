"""Default reference data: the first tier policy, complaint taxonomy, SLA targets,
the default roles and their field grants (Casbin policies).

Everything here is data an admin can change at runtime; it ships as a migration,
not as code. Frozen once landed: later changes go into new migrations.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCORE = {"spend_12m": 0.01, "orders_12m": 1.5, "tenure_days": 0.02, "latest_nps": 2}
TIERS = [
    ("bronze", "Bronze", 0, {"always": True}, {"always": True}, ["Standard support"]),
    (
        "silver",
        "Silver",
        1,
        {"any": [{"metric": "spend_12m", "op": ">=", "value": 500}, {"metric": "orders_12m", "op": ">=", "value": 6}]},
        {"any": [{"metric": "spend_12m", "op": ">=", "value": 400}, {"metric": "orders_12m", "op": ">=", "value": 5}]},
        ["Free returns"],
    ),
    (
        "gold",
        "Gold",
        2,
        {
            "all": [
                {"metric": "spend_12m", "op": ">=", "value": 2000},
                {"metric": "orders_12m", "op": ">=", "value": 8},
                {"metric": "days_since_last_purchase", "op": "<=", "value": 120},
            ]
        },
        {
            "all": [
                {"metric": "spend_12m", "op": ">=", "value": 1600},
                {"metric": "days_since_last_purchase", "op": "<=", "value": 180},
            ]
        },
        ["Free returns", "Priority support"],
    ),
    (
        "platinum",
        "Platinum",
        3,
        {"score": {"weights": SCORE, "min": 95}},
        {"score": {"weights": SCORE, "min": 80}},
        ["Free returns", "Priority support", "Dedicated account manager"],
    ),
]

CATEGORIES = [
    ("billing", "Billing and payments"),
    ("delivery", "Delivery and shipping"),
    ("product_quality", "Product quality"),
    ("service", "Customer service"),
    ("website", "Website and app"),
    ("other", "Other"),
]
ROOT_CAUSES = [
    ("process", "Process gap"),
    ("people", "Staff error or training"),
    ("product", "Product defect"),
    ("partner", "Partner or carrier"),
    ("system", "System or IT fault"),
    ("unknown", "Unknown"),
]
# (tier, severity) -> (first response minutes, resolution minutes); lower tiers get fair, not neglectful, targets.
SLA = {
    "bronze": {"low": (1440, 10080), "medium": (480, 4320), "high": (240, 1440), "critical": (60, 480)},
    "silver": {"low": (960, 7200), "medium": (360, 2880), "high": (180, 1200), "critical": (60, 480)},
    "gold": {"low": (480, 4320), "medium": (240, 1440), "high": (120, 720), "critical": (30, 240)},
    "platinum": {"low": (240, 2880), "medium": (120, 960), "high": (60, 480), "critical": (15, 180)},
}

ROLES = [
    ("admin", "Everything: customer data, roles, grants, tokens, tier policies, audit log"),
    ("support_agent", "Support desk: names and tiers, contact fields masked, complaints in full"),
    ("analyst", "Tiers, metrics and aggregates; no contact fields, no free text"),
    ("marketing", "Names, tiers, metrics, e-mail where consented, survey results"),
    ("partner", "Partner integrations: their own customers' names and tiers; pushes purchases and complaints"),
]

_SUPPORT_READ = [
    "Query.customers", "Query.customer", "Query.complaints", "Query.complaint", "Query.surveys", "Query.survey",
    "Query.tierPolicies", "Query.activeTierPolicy", "Query.complaintCategories", "Query.rootCauses",
    "Customer.name", "Customer.externalRef", "Customer.locale", "Customer.lifecycleStage", "Customer.tier",
    "Customer.tierSince", "Customer.metrics", "Customer.complaints", "Customer.surveyResponses",
    "Customer.tierHistory", "Customer.purchases", "Customer.churnRisk", "Customer.consent", "Customer.partner",
    "CustomerMetrics.*", "Purchase.*", "Complaint.*", "ComplaintEvent.*", "Survey.*", "SurveyQuestion.*",
    "SurveyResponse.*", "SurveyAnswer.*", "TierChange.*", "TierPolicy.*", "Partner.*", "ChurnRisk.*",
]
_ANALYST_READ = [
    "Query.customers", "Query.customer", "Query.complaints", "Query.complaint", "Query.surveys", "Query.survey",
    "Query.tierPolicies", "Query.activeTierPolicy", "Query.complaintCategories", "Query.rootCauses", "Query.reports",
    "Customer.locale", "Customer.lifecycleStage", "Customer.tier", "Customer.tierSince", "Customer.metrics",
    "Customer.tierHistory", "Customer.churnRisk", "Customer.purchases", "Customer.complaints",
    "Customer.surveyResponses", "Customer.partner",
    "CustomerMetrics.*", "Purchase.*", "Complaint.*", "ComplaintEvent.*", "Survey.*", "SurveyQuestion.*",
    "SurveyResponse.*", "SurveyAnswer.*", "TierChange.*", "TierPolicy.*", "Partner.*", "ChurnRisk.*", "Reports.*",
]
_MARKETING_READ = [
    "Query.customers", "Query.customer", "Query.surveys", "Query.survey", "Query.tierPolicies",
    "Query.activeTierPolicy", "Query.reports",
    "Customer.name", "Customer.locale", "Customer.lifecycleStage", "Customer.tier", "Customer.tierSince",
    "Customer.metrics", "Customer.churnRisk", "Customer.consent", "Customer.surveyResponses",
    "CustomerMetrics.*", "Survey.*", "SurveyQuestion.*", "SurveyResponse.*", "SurveyAnswer.*", "TierPolicy.*",
    "ChurnRisk.*", "Reports.*",
]
_PARTNER_READ = [
    "Query.customers", "Query.customer", "Query.complaints", "Query.complaint", "Query.surveys", "Query.survey",
    "Query.complaintCategories", "Query.rootCauses",
    "Customer.name", "Customer.externalRef", "Customer.tier", "Customer.complaints", "Customer.purchases",
    "Complaint.*", "Purchase.*", "Survey.*", "SurveyQuestion.*",
]
_CUSTOMER_CONTACT = ["Customer.name", "Customer.email", "Customer.phone", "Customer.address", "Customer.locale"]
POLICIES: list[tuple[str, str, str, str]] = [
    ("role:admin", "*", "read", "allow"),
    ("role:admin", "*", "write", "allow"),
    *[("role:support_agent", o, "read", "allow") for o in _SUPPORT_READ],
    *[
        ("role:support_agent", o, "read_masked", "allow")
        for o in ("Customer.email", "Customer.phone", "Customer.birthDate", "Customer.address")
    ],
    ("role:support_agent", "CustomerMetrics.lifetimeSpend", "read", "deny"),
    ("role:support_agent", "CustomerMetrics.spend12m", "read", "deny"),
    ("role:support_agent", "Purchase.amount", "read", "deny"),
    *[
        ("role:support_agent", o, "write", "allow")
        for o in (
            "Mutation.updateCustomer", "Mutation.openComplaint", "Mutation.transitionComplaint",
            *_CUSTOMER_CONTACT,
        )
    ],
    *[("role:analyst", o, "read", "allow") for o in _ANALYST_READ],
    ("role:analyst", "Complaint.description", "read", "deny"),
    ("role:analyst", "Complaint.subject", "read", "deny"),  # free text too: analysts work on aggregates
    ("role:analyst", "ComplaintEvent.note", "read", "deny"),
    ("role:analyst", "SurveyAnswer.text", "read", "deny"),
    *[("role:marketing", o, "read", "allow") for o in _MARKETING_READ],
    ("role:marketing", "Customer.email", "read_if_consented", "allow"),
    *[("role:partner", o, "read", "allow") for o in _PARTNER_READ],
    *[
        ("role:partner", o, "write", "allow")
        for o in (
            "Mutation.createCustomer", "Mutation.recordPurchases", "Mutation.openComplaint",
            "Mutation.submitSurveyResponse", *_CUSTOMER_CONTACT, "Customer.externalRef", "Customer.birthDate",
            "Customer.nationalId",
        )
    ],
]


def upgrade() -> None:
    conn = op.get_bind()
    policy_id = conn.execute(
        sa.text(
            "INSERT INTO tier_policies (name, status, grace_days, min_stay_days, created_by, activated_by, activated_at)"
            " VALUES ('Default standard', 'active', 30, 30, 'migration', 'migration', now()) RETURNING id"
        )
    ).scalar_one()
    for code, name, rank, entry, retain, benefits in TIERS:
        conn.execute(
            sa.text(
                "INSERT INTO tiers (policy_id, code, name, rank, entry_rule, retain_rule, benefits)"
                " VALUES (:p, :c, :n, :r, CAST(:e AS jsonb), CAST(:t AS jsonb), :b)"
            ),
            {"p": policy_id, "c": code, "n": name, "r": rank, "e": json.dumps(entry), "t": json.dumps(retain),
             "b": benefits},
        )
    for table, rows in (("complaint_categories", CATEGORIES), ("root_causes", ROOT_CAUSES)):
        for code, label in rows:
            conn.execute(sa.text(f"INSERT INTO {table} (code, label) VALUES (:c, :l)"), {"c": code, "l": label})
    sla_id = conn.execute(
        sa.text("INSERT INTO sla_policies (status, activated_at) VALUES ('active', now()) RETURNING id")
    ).scalar_one()
    for tier, by_severity in SLA.items():
        for severity, (first, resolution) in by_severity.items():
            conn.execute(
                sa.text(
                    "INSERT INTO sla_targets (policy_id, tier_code, severity, first_response_minutes,"
                    " resolution_minutes) VALUES (:p, :t, :s, :f, :r)"
                ),
                {"p": sla_id, "t": tier, "s": severity, "f": first, "r": resolution},
            )
    conn.execute(sa.text("INSERT INTO authz_state (id, policy_version) VALUES (1, 1)"))
    for name, description in ROLES:
        conn.execute(sa.text("INSERT INTO roles (name, description) VALUES (:n, :d)"), {"n": name, "d": description})
    for sub, obj, act, eft in POLICIES:
        conn.execute(
            sa.text("INSERT INTO casbin_rules (ptype, v0, v1, v2, v3) VALUES ('p', :s, :o, :a, :e)"),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )


def downgrade() -> None:
    for table in (
        "casbin_rules", "roles", "authz_state", "sla_targets", "sla_policies", "root_causes",
        "complaint_categories", "tiers", "tier_policies",
    ):
        op.execute(f"DELETE FROM {table}")
