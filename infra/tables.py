"""The whole data model as SQLAlchemy Core tables. SQL lives in infra/ only.

Enumerations are ``text`` columns with CHECK constraints (easier to extend in a
migration than PostgreSQL enum types); their allowed values come from domain/.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB, TIMESTAMP, UUID

from domain import enums
from domain.complaints import COMPLAINT_EVENT_KINDS
from infra.crypto import EncryptedDate, EncryptedJSON, EncryptedText

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

TS = TIMESTAMP(timezone=True)
MONEY = Numeric(14, 2)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _pk() -> Column[object]:
    return Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _created() -> Column[object]:
    return Column("created_at", TS, nullable=False, server_default=func.now())


partners = Table(
    "partners",
    metadata,
    _pk(),
    Column("name", Text, nullable=False, unique=True),
    _created(),
)

customers = Table(
    "customers",
    metadata,
    _pk(),
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True),
    Column("external_ref", Text, nullable=True),
    Column("name", Text, nullable=False),
    # Sensitive contact data (API.md †), encrypted at rest (infra/crypto.py, migration 0007).
    Column("email", EncryptedText("customers.email"), nullable=True),
    Column("phone", EncryptedText("customers.phone"), nullable=True),
    Column("national_id", EncryptedText("customers.national_id"), nullable=True),
    Column("birth_date", EncryptedDate("customers.birth_date"), nullable=True),
    Column("address", EncryptedJSON("customers.address"), nullable=True),  # {line1, line2, postalCode, city, country}
    # Blind indexes (keyed HMAC of the normalised value): equality lookups and duplicate matching.
    Column("email_bidx", Text, nullable=True),
    Column("phone_bidx", Text, nullable=True),
    Column("national_id_bidx", Text, nullable=True),
    Column("name_dob_bidx", Text, nullable=True),
    Column("locale", String(16), nullable=True),
    Column("lifecycle_stage", Text, nullable=False, server_default="prospect"),
    # Current tier, kept by the tier engine.
    Column("tier_code", Text, nullable=True),
    Column("tier_since", TS, nullable=True),
    Column("tier_policy_version", Integer, nullable=True),
    Column("tier_grace_since", TS, nullable=True),
    Column("tier_override_code", Text, nullable=True),
    Column("tier_override_reason", Text, nullable=True),
    Column("tier_override_expires_at", TS, nullable=True),
    Column("tier_override_by", Text, nullable=True),
    # Consent per channel: when given (null = not given).
    Column("consent_email_at", TS, nullable=True),
    Column("consent_sms_at", TS, nullable=True),
    Column("consent_phone_at", TS, nullable=True),
    # Data quality: a merged duplicate points at its survivor.
    Column("merged_into_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=True),
    Column("merged_at", TS, nullable=True),  # 0008
    Column("erased_at", TS, nullable=True),  # 0008: every sensitive value removed, irreversibly
    Column("version", Integer, nullable=False, server_default="1"),
    _created(),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    Column("deleted_at", TS, nullable=True),
    CheckConstraint(_in("lifecycle_stage", enums.LIFECYCLE_STAGES), name="lifecycle_stage"),
    CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
    CheckConstraint("version > 0", name="version_positive"),
)
Index("ix_customers_created_id", customers.c.created_at, customers.c.id)
Index("ix_customers_name_id", customers.c.name, customers.c.id)
Index("ix_customers_tier", customers.c.tier_code, customers.c.id)
Index("ix_customers_email_bidx", customers.c.email_bidx)  # 0007
Index("ix_customers_phone_bidx", customers.c.phone_bidx)  # 0007
Index("ix_customers_national_id_bidx", customers.c.national_id_bidx)  # 0007
Index("ix_customers_name_dob_bidx", customers.c.name_dob_bidx)  # 0007
Index("ix_customers_partner", customers.c.partner_id, customers.c.created_at, customers.c.id)
Index(
    "ix_customers_tier_override_expires",
    customers.c.tier_override_expires_at,
    postgresql_where=text("tier_override_code IS NOT NULL"),
)
Index(  # 0009: the reports' live customers per tier, index-only
    "ix_customers_live_tier",
    customers.c.id,
    postgresql_include=["tier_code"],
    postgresql_where=text("deleted_at IS NULL AND merged_into_id IS NULL"),
)

for _kind in ("email", "phone", "national_id", "name_dob"):  # 0008: duplicate candidates, index-only
    Index(
        f"ix_customers_dup_{_kind}",
        customers.c.partner_id,
        customers.c[f"{_kind}_bidx"],
        customers.c.id,
        postgresql_where=text(
            f"{_kind}_bidx IS NOT NULL AND deleted_at IS NULL AND merged_into_id IS NULL AND erased_at IS NULL"
        ),
    )

customer_metrics = Table(
    "customer_metrics",
    metadata,
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("lifetime_spend", MONEY, nullable=False, server_default="0"),
    Column("order_count", Integer, nullable=False, server_default="0"),
    Column("spend_12m", MONEY, nullable=False, server_default="0"),
    Column("orders_12m", Integer, nullable=False, server_default="0"),
    Column("first_purchase_at", TS, nullable=True),
    Column("last_purchase_at", TS, nullable=True),
    Column("open_complaints", Integer, nullable=False, server_default="0"),
    Column("complaints_12m", Integer, nullable=False, server_default="0"),
    Column("latest_nps", SmallInteger, nullable=True),
    Column("latest_csat", SmallInteger, nullable=True),
    Column("computed_at", TS, nullable=False, server_default=func.now()),
)
Index("ix_customer_metrics_spend", customer_metrics.c.customer_id, postgresql_include=["spend_12m"])  # 0009

purchases = Table(
    "purchases",
    metadata,
    _pk(),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True),
    Column("external_id", Text, nullable=True),
    Column("amount", MONEY, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("channel", Text, nullable=True),
    Column("purchased_at", TS, nullable=False),
    _created(),
    CheckConstraint("amount > 0", name="amount_positive"),
)
# Covering (0004): metrics are recomputed from this index alone (index-only scans by customer or id range).
Index(
    "ix_purchases_customer_at",
    purchases.c.customer_id,
    purchases.c.purchased_at.desc(),
    postgresql_include=["amount"],
)

tier_policies = Table(
    "tier_policies",
    metadata,
    _pk(),
    Column("version", Integer, Identity(start=1), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="draft"),
    Column("grace_days", Integer, nullable=False, server_default="30"),
    Column("min_stay_days", Integer, nullable=False, server_default="30"),
    Column("spend_window_days", Integer, nullable=False, server_default="365"),
    Column("created_by", Text, nullable=True),
    _created(),
    Column("activated_by", Text, nullable=True),
    Column("activated_at", TS, nullable=True),
    Column("retired_at", TS, nullable=True),
    # Tier engine (migration 0004): edits of a draft, who changed and retired it.
    Column("description", Text, nullable=True),
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    Column("updated_by", Text, nullable=True),
    Column("retired_by", Text, nullable=True),
    # Benefit holdout (migration 0020): the share of upgraded customers whose new benefits are withheld, and for
    # how many days; off (0, 0) by default.
    Column("holdout_share", Numeric(5, 4), nullable=False, server_default="0"),
    Column("holdout_days", Integer, nullable=False, server_default="0"),
    CheckConstraint(_in("status", enums.POLICY_STATUSES), name="status"),
    CheckConstraint(
        "grace_days BETWEEN 0 AND 3650 AND min_stay_days BETWEEN 0 AND 3650 AND spend_window_days BETWEEN 1 AND 3650",
        name="days",
    ),
    CheckConstraint(
        "holdout_share >= 0 AND holdout_share <= 0.5 AND holdout_days BETWEEN 0 AND 365"
        " AND (holdout_share = 0) = (holdout_days = 0)",
        name="holdout",
    ),
)
Index("uq_tier_policies_one_active", tier_policies.c.status, unique=True, postgresql_where=text("status = 'active'"))

tiers = Table(
    "tiers",
    metadata,
    _pk(),
    Column("policy_id", UUID(as_uuid=True), ForeignKey("tier_policies.id", ondelete="CASCADE"), nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("entry_rule", JSONB, nullable=False),
    Column("retain_rule", JSONB, nullable=False),
    Column("benefits", ARRAY(Text), nullable=False, server_default="{}"),
    UniqueConstraint("policy_id", "code"),
    UniqueConstraint("policy_id", "rank"),
)

tier_changes = Table(
    "tier_changes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("from_tier", Text, nullable=True),
    Column("to_tier", Text, nullable=False),
    Column("policy_version", Integer, nullable=True),
    Column("change_type", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("metrics", JSONB, nullable=False, server_default="{}"),
    Column("actor", Text, nullable=True),
    Column("changed_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint(_in("change_type", enums.TIER_CHANGE_TYPES), name="change_type"),
)
Index("ix_tier_changes_customer_at", tier_changes.c.customer_id, tier_changes.c.changed_at.desc())
Index("ix_tier_changes_at", tier_changes.c.changed_at)
Index(  # 0009
    "ix_tier_changes_latest",
    tier_changes.c.customer_id,
    tier_changes.c.changed_at.desc(),
    tier_changes.c.id.desc(),
    postgresql_include=["to_tier"],
)

# Full re-tiers with their checkpoint (migration 0004): an interrupted run resumes after ``after_id``.
tier_runs = Table(
    "tier_runs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", Text, nullable=False, server_default="full"),
    Column("policy_version", Integer, nullable=False),
    Column("status", Text, nullable=False, server_default="running"),
    Column("actor", Text, nullable=True),
    Column("batch_size", Integer, nullable=False),
    Column("after_id", UUID(as_uuid=True), nullable=True),
    Column("customers_total", BigInteger, nullable=False, server_default="0"),
    Column("customers_done", BigInteger, nullable=False, server_default="0"),
    Column("batches", Integer, nullable=False, server_default="0"),
    Column("changed", BigInteger, nullable=False, server_default="0"),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS, nullable=True),
    CheckConstraint("status IN ('running', 'done', 'superseded')", name="status"),
    CheckConstraint("batch_size > 0", name="batch_size_positive"),
)
Index("uq_tier_runs_one_running", tier_runs.c.kind, unique=True, postgresql_where=text("status = 'running'"))
Index("ix_tier_runs_started", tier_runs.c.started_at.desc())

complaint_categories = Table(
    "complaint_categories",
    metadata,
    Column("code", Text, primary_key=True),
    Column("label", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default="true"),
)

root_causes = Table(
    "root_causes",
    metadata,
    Column("code", Text, primary_key=True),
    Column("label", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default="true"),
)

sla_policies = Table(
    "sla_policies",
    metadata,
    _pk(),
    Column("version", Integer, Identity(start=1), nullable=False, unique=True),
    Column("status", Text, nullable=False, server_default="draft"),
    _created(),
    Column("activated_at", TS, nullable=True),
    Column("name", Text, nullable=False, server_default=""),  # 0005
    Column("created_by", Text, nullable=True),  # 0005
    Column("activated_by", Text, nullable=True),  # 0005
    Column("retired_at", TS, nullable=True),  # 0005
    CheckConstraint(_in("status", enums.POLICY_STATUSES), name="status"),
)
Index("uq_sla_policies_one_active", sla_policies.c.status, unique=True, postgresql_where=text("status = 'active'"))

sla_targets = Table(
    "sla_targets",
    metadata,
    Column("policy_id", UUID(as_uuid=True), ForeignKey("sla_policies.id", ondelete="CASCADE"), primary_key=True),
    Column("tier_code", Text, primary_key=True),  # '*' = any tier
    Column("severity", Text, primary_key=True),
    Column("first_response_minutes", Integer, nullable=False),
    Column("resolution_minutes", Integer, nullable=False),
    CheckConstraint("first_response_minutes > 0 AND resolution_minutes >= first_response_minutes", name="targets"),
)

# Teams of staff (0022): a complaint may be assigned to one; "my teams" are those the caller is a member of.
teams = Table(
    "teams",
    metadata,
    _pk(),
    Column("name", Text, nullable=False, unique=True),
    _created(),
    Column("archived_at", TS, nullable=True),  # 0026: retired, takes no new complaints
    CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", UUID(as_uuid=True), ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Text, primary_key=True),  # the staff user's id (a token's sub), as in complaints.assignee
    Column("added_by", Text, nullable=True),
    _created(),
)
Index("ix_team_members_user_id", team_members.c.user_id)

complaints = Table(
    "complaints",
    metadata,
    _pk(),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True),
    Column("external_id", Text, nullable=True),
    Column("follow_up_of_id", UUID(as_uuid=True), ForeignKey("complaints.id"), nullable=True),
    Column("subject", Text, nullable=False),
    Column("description", EncryptedText("complaints.description"), nullable=False),  # free text: encrypted
    Column("category_code", Text, ForeignKey("complaint_categories.code"), nullable=False),
    Column("root_cause_code", Text, ForeignKey("root_causes.code"), nullable=True),
    Column("severity", Text, nullable=False, server_default="medium"),
    Column("channel", Text, nullable=False, server_default="web"),
    Column("status", Text, nullable=False, server_default="new"),
    Column("assignee", Text, nullable=True),
    Column("team_id", UUID(as_uuid=True), ForeignKey("teams.id"), nullable=True),  # 0022
    Column("resolution_code", Text, nullable=True),
    Column("tier_at_open", Text, nullable=True),
    Column("sla_policy_version", Integer, nullable=True),
    Column("first_response_due_at", TS, nullable=True),
    Column("resolution_due_at", TS, nullable=True),
    Column("first_responded_at", TS, nullable=True),
    Column("resolved_at", TS, nullable=True),
    Column("closed_at", TS, nullable=True),
    Column("paused_since", TS, nullable=True),
    Column("paused_seconds", Integer, nullable=False, server_default="0"),
    Column("reopen_count", Integer, nullable=False, server_default="0"),
    Column("first_response_breached", Boolean, nullable=False, server_default="false"),
    Column("resolution_breached", Boolean, nullable=False, server_default="false"),
    Column("escalated_at", TS, nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("opened_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint(_in("status", enums.COMPLAINT_STATUSES), name="status"),
    CheckConstraint(_in("severity", enums.SEVERITIES), name="severity"),
    CheckConstraint(_in("channel", enums.CHANNELS), name="channel"),
    CheckConstraint("length(btrim(subject)) > 0", name="subject_not_blank"),
)
Index("ix_complaints_customer_opened", complaints.c.customer_id, complaints.c.opened_at.desc(), complaints.c.id)
Index("ix_complaints_opened_id", complaints.c.opened_at, complaints.c.id)
Index("ix_complaints_status", complaints.c.status)
Index("ix_complaints_escalated", complaints.c.escalated_at)  # 0005
Index("ix_complaints_team_id", complaints.c.team_id)  # 0022

complaint_events = Table(
    "complaint_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("complaint_id", UUID(as_uuid=True), ForeignKey("complaints.id"), nullable=False),
    Column("from_status", Text, nullable=True),
    Column("to_status", Text, nullable=False),
    Column("actor", Text, nullable=True),
    Column("note", EncryptedText("complaint_events.note"), nullable=True),  # free text: encrypted
    Column("at", TS, nullable=False, server_default=func.now()),
    Column("kind", Text, nullable=False, server_default="transition"),  # 0005
    CheckConstraint(_in("kind", COMPLAINT_EVENT_KINDS), name="kind"),
)
Index("ix_complaint_events_complaint", complaint_events.c.complaint_id, complaint_events.c.id)

surveys = Table(
    "surveys",
    metadata,
    _pk(),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("status", Text, nullable=False, server_default="draft"),
    Column("trigger", Text, nullable=False, server_default="manual"),
    Column("channels", ARRAY(Text), nullable=False),
    Column("per_complaint", Boolean, nullable=False, server_default="false"),
    Column("version", Integer, nullable=False, server_default="1"),
    _created(),
    CheckConstraint(_in("status", enums.SURVEY_STATUSES), name="status"),
    CheckConstraint(_in("trigger", enums.SURVEY_TRIGGERS), name="trigger"),
    CheckConstraint("cardinality(channels) > 0", name="channels_not_empty"),
)
Index("ix_surveys_created_id", surveys.c.created_at, surveys.c.id)

survey_questions = Table(
    "survey_questions",
    metadata,
    _pk(),
    Column("survey_id", UUID(as_uuid=True), ForeignKey("surveys.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("dimension", Text, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("options", ARRAY(Text), nullable=False, server_default="{}"),
    Column("required", Boolean, nullable=False, server_default="true"),
    CheckConstraint(_in("kind", enums.QUESTION_KINDS), name="kind"),
    UniqueConstraint("survey_id", "position"),
)

survey_invitations = Table(
    "survey_invitations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("survey_id", UUID(as_uuid=True), ForeignKey("surveys.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("complaint_id", UUID(as_uuid=True), ForeignKey("complaints.id"), nullable=True),
    Column("channel", Text, nullable=False),
    Column("sent_at", TS, nullable=False, server_default=func.now()),
    Column("trigger", Text, nullable=False, server_default="manual"),  # 0005
    Column("tier_at_invitation", Text, nullable=True),  # 0005
    Column("purchase_id", UUID(as_uuid=True), ForeignKey("purchases.id"), nullable=True),  # 0005
    CheckConstraint(_in("channel", enums.SURVEY_CHANNELS), name="channel"),
    CheckConstraint(_in("trigger", enums.SURVEY_TRIGGERS), name="trigger"),
)
Index("ix_survey_invitations_customer", survey_invitations.c.customer_id, survey_invitations.c.sent_at.desc())
Index("ix_survey_invitations_survey", survey_invitations.c.survey_id)
Index("ix_survey_invitations_complaint", survey_invitations.c.survey_id, survey_invitations.c.complaint_id)  # 0005
Index("ix_survey_invitations_purchase", survey_invitations.c.purchase_id)  # 0005
Index(  # 0009: the first invitation per (survey, customer, complaint), in the reports' DISTINCT ON order
    "ix_survey_invitations_target",
    *(survey_invitations.c[n] for n in ("survey_id", "customer_id", "complaint_id", "sent_at", "id")),
    postgresql_include=["channel", "tier_at_invitation"],
)

survey_responses = Table(
    "survey_responses",
    metadata,
    _pk(),
    Column("survey_id", UUID(as_uuid=True), ForeignKey("surveys.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("complaint_id", UUID(as_uuid=True), ForeignKey("complaints.id"), nullable=True),
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True),
    Column("external_id", Text, nullable=True),
    Column("channel", Text, nullable=False),
    Column("tier_at_response", Text, nullable=True),
    Column("submitted_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint(_in("channel", enums.SURVEY_CHANNELS), name="channel"),
)
Index(
    "uq_survey_responses_once",
    survey_responses.c.survey_id,
    survey_responses.c.customer_id,
    text("coalesce(complaint_id, '00000000-0000-0000-0000-000000000000'::uuid)"),
    unique=True,
)
Index("ix_survey_responses_customer", survey_responses.c.customer_id, survey_responses.c.submitted_at.desc())
Index("ix_survey_responses_survey", survey_responses.c.survey_id, survey_responses.c.submitted_at)

survey_answers = Table(
    "survey_answers",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("response_id", UUID(as_uuid=True), ForeignKey("survey_responses.id", ondelete="CASCADE"), nullable=False),
    Column("question_id", UUID(as_uuid=True), ForeignKey("survey_questions.id"), nullable=False),
    Column("score", SmallInteger, nullable=True),
    Column("choices", ARRAY(Text), nullable=True),
    Column("text", EncryptedText("survey_answers.text"), nullable=True),  # free text: encrypted
    UniqueConstraint("response_id", "question_id"),
)
Index("ix_survey_answers_question", survey_answers.c.question_id)

churn_scores = Table(
    "churn_scores",
    metadata,
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("level", Text, nullable=False),
    Column("score", Integer, nullable=False),
    Column("signals", JSONB, nullable=False, server_default="[]"),
    Column("model_version", Integer, nullable=False),
    Column("computed_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint(_in("level", enums.CHURN_LEVELS), name="level"),
)
Index("ix_churn_scores_level", churn_scores.c.level)  # 0005

# Data quality and rights of the data subject (migration 0008).
customer_merges = Table(
    "customer_merges",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("survivor_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("duplicate_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False, unique=True),
    Column("reasons", ARRAY(Text), nullable=False, server_default="{}"),
    Column("filled_fields", ARRAY(Text), nullable=False, server_default="{}"),
    Column("moved", JSONB, nullable=False, server_default="{}"),  # rows moved per table
    Column("actor", Text, nullable=False),
    Column("merged_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("survivor_id <> duplicate_id", name="not_self"),
)
Index("ix_customer_merges_survivor", customer_merges.c.survivor_id)
Index("ix_customer_merges_at", customer_merges.c.merged_at)

consent_events = Table(
    "consent_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("given", Boolean, nullable=False),
    Column("actor", Text, nullable=False),
    Column("at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("channel IN ('email', 'sms', 'phone')", name="channel"),
)
Index("ix_consent_events_customer", consent_events.c.customer_id, consent_events.c.at)

# A candidate pair a data steward marked "not a duplicate" (migration 0011): stored once (a < b), with a
# short reason code (not free text), left out of customerDuplicates and the data-quality report.
duplicate_dismissals = Table(
    "duplicate_dismissals",
    metadata,
    Column("customer_a_id", UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_b_id", UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("reason", Text, nullable=True),
    # the criteria the pair matched on when dismissed: matching on another one makes it a candidate again
    Column("criteria", ARRAY(Text), nullable=False, server_default="{}"),
    Column("dismissed_by", Text, nullable=False),
    Column("dismissed_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("customer_a_id < customer_b_id", name="ordered"),
)
Index("ix_duplicate_dismissals_customer_b_id", duplicate_dismissals.c.customer_b_id)

api_tokens = Table(
    "api_tokens",
    metadata,
    _pk(),
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("role", Text, nullable=False, server_default="partner"),
    Column("scopes", ARRAY(Text), nullable=False, server_default="{}"),
    Column("rate_limit_per_minute", Integer, nullable=True),
    # in trusted-documents mode, this token may still send documents that are not registered
    Column("allow_arbitrary_documents", Boolean, nullable=False, server_default=text("false")),
    Column("created_by", Text, nullable=True),
    _created(),
    Column("expires_at", TS, nullable=True),
    Column("revoked_at", TS, nullable=True),
    Column("last_used_at", TS, nullable=True),
)

casbin_rules = Table(
    "casbin_rules",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("ptype", String(8), nullable=False),
    Column("v0", Text, nullable=False, server_default=""),
    Column("v1", Text, nullable=False, server_default=""),
    Column("v2", Text, nullable=False, server_default=""),
    Column("v3", Text, nullable=False, server_default=""),
    Column("v4", Text, nullable=False, server_default=""),
    Column("v5", Text, nullable=False, server_default=""),
    UniqueConstraint("ptype", "v0", "v1", "v2", "v3", "v4", "v5"),
)

# Trusted documents (docs/sec-edge.md): registered GraphQL documents by the SHA-256 (hex) of their
# text; every change bumps the version in trusted_document_state and notifies every instance.
trusted_documents = Table(
    "trusted_documents",
    metadata,
    Column("hash", Text, primary_key=True),
    Column("document", Text, nullable=False),
    Column("operation_names", ARRAY(Text), nullable=False, server_default="{}"),
    Column("source", Text, nullable=True),  # the file it was registered from
    Column("registered_by", Text, nullable=False),
    Column("registered_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("hash ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
)

trusted_document_state = Table(
    "trusted_document_state",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default="1"),
    Column("version", BigInteger, nullable=False, server_default="1"),
    CheckConstraint("id = 1", name="singleton"),
)

authz_state = Table(
    "authz_state",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default="1"),
    Column("policy_version", BigInteger, nullable=False, server_default="1"),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("id = 1", name="singleton"),
)

roles = Table(
    "roles",
    metadata,
    Column("name", Text, primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    _created(),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", TS, nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("request_id", Text, nullable=True),
    Column("target_type", Text, nullable=True),
    Column("target_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("fields", ARRAY(Text), nullable=False, server_default="{}"),
    Column("before", JSONB, nullable=True),
    Column("after", JSONB, nullable=True),
)
Index("ix_audit_log_at", audit_log.c.at.desc(), audit_log.c.id.desc())
Index("ix_audit_log_actor", audit_log.c.actor, audit_log.c.at.desc())
Index(
    "uq_customers_partner_external_ref",
    customers.c.partner_id,
    customers.c.external_ref,
    unique=True,
    postgresql_nulls_not_distinct=True,
    postgresql_where=customers.c.external_ref.isnot(None),
)
Index(
    "uq_purchases_partner_external_id",
    purchases.c.partner_id,
    purchases.c.external_id,
    unique=True,
    postgresql_nulls_not_distinct=True,
    postgresql_where=purchases.c.external_id.isnot(None),
)
Index(
    "uq_complaints_partner_external_id",
    complaints.c.partner_id,
    complaints.c.external_id,
    unique=True,
    postgresql_nulls_not_distinct=True,
    postgresql_where=complaints.c.external_id.isnot(None),
)
Index(
    "uq_survey_responses_partner_external_id",
    survey_responses.c.partner_id,
    survey_responses.c.external_id,
    unique=True,
    postgresql_nulls_not_distinct=True,
    postgresql_where=survey_responses.c.external_id.isnot(None),
)

# ---------------------------------------------------------------- report summaries (0010)
# Kept current by triggers in PostgreSQL (see the migration); report_summaries_rebuild() refills them.

report_score_days = Table(
    "report_score_days",
    metadata,
    Column("day", TS, nullable=False),  # UTC day of submission
    Column("kind", Text, nullable=False),
    Column("survey_id", UUID(as_uuid=True), nullable=False),
    Column("tier", Text, nullable=True),
    Column("channel", Text, nullable=False),
    Column("responses", BigInteger, nullable=False, server_default="0"),
    Column("answers", BigInteger, nullable=False, server_default="0"),
    Column("positive", BigInteger, nullable=False, server_default="0"),
    Column("negative", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint(
        "day", "kind", "survey_id", "tier", "channel", name="uq_report_score_days", postgresql_nulls_not_distinct=True
    ),
)

report_invitation_targets = Table(
    "report_invitation_targets",
    metadata,
    Column("survey_id", UUID(as_uuid=True), primary_key=True),
    Column("customer_id", UUID(as_uuid=True), primary_key=True),
    Column("complaint_key", UUID(as_uuid=True), primary_key=True),  # the complaint, or the nil uuid
    Column("day", TS, nullable=False),  # UTC day of the first invitation
    Column("tier", Text, nullable=True),
    Column("channel", Text, nullable=False),
    Column("answered", Boolean, nullable=False),
)

report_invitation_days = Table(
    "report_invitation_days",
    metadata,
    Column("day", TS, nullable=False),
    Column("survey_id", UUID(as_uuid=True), nullable=False),
    Column("tier", Text, nullable=True),
    Column("channel", Text, nullable=False),
    Column("invitations", BigInteger, nullable=False, server_default="0"),
    Column("answered", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint(
        "day", "survey_id", "tier", "channel", name="uq_report_invitation_days", postgresql_nulls_not_distinct=True
    ),
)

report_complaint_clocks = Table(
    "report_complaint_clocks",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),  # the complaint's
    Column("tier_at_open", Text, nullable=True),
    Column("opened_at", TS, nullable=False),
    Column("first_response_due_at", TS, nullable=True),
    Column("resolution_due_at", TS, nullable=True),
    Column("first_responded_at", TS, nullable=True),
    Column("resolved_at", TS, nullable=True),
    Column("paused_since", TS, nullable=True),
    Column("paused_seconds", Integer, nullable=False),
    Column("first_response_breached", Boolean, nullable=False),
    Column("resolution_breached", Boolean, nullable=False),
    Column("first_response_s", DOUBLE_PRECISION, nullable=True),
    Column("resolution_s", DOUBLE_PRECISION, nullable=True),
    Column("running", Boolean),  # generated (stored): a clock runs, so its breach depends on the time
)
Index(
    "ix_report_complaint_clocks_running",
    report_complaint_clocks.c.tier_at_open,
    postgresql_where=report_complaint_clocks.c.running,
)

report_complaint_tiers = Table(
    "report_complaint_tiers",
    metadata,
    Column("tier", Text, nullable=True),  # complaints with settled clocks by tier at opening
    Column("complaints", BigInteger, nullable=False, server_default="0"),
    Column("with_sla", BigInteger, nullable=False, server_default="0"),
    Column("breached", BigInteger, nullable=False, server_default="0"),
    Column("responded", BigInteger, nullable=False, server_default="0"),
    Column("resolved", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("tier", name="uq_report_complaint_tiers", postgresql_nulls_not_distinct=True),
)

report_tier_reach = Table(
    "report_tier_reach",
    metadata,
    Column("tier", Text, nullable=True),  # live customers by their tier now
    Column("customers", BigInteger, nullable=False, server_default="0"),
    Column("invited", BigInteger, nullable=False, server_default="0"),
    Column("answered", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("tier", name="uq_report_tier_reach", postgresql_nulls_not_distinct=True),
)

# Events out (migration 0016, infra/repos/events.py): the outbox, webhook endpoints and their delivery log.
events = Table(
    "events",
    metadata,
    _pk(),
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("type", Text, nullable=False),
    Column("customer_id", UUID(as_uuid=True), nullable=True),
    Column("partner_id", UUID(as_uuid=True), nullable=True),  # the customer's partner when it happened
    Column("data", JSONB, nullable=False, server_default="{}"),  # ids and non-sensitive facts only
    Column("occurred_at", TS, nullable=False, server_default=func.now()),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    _pk(),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("secret", Text, nullable=False),  # whsec_…, encrypted bound to the row (infra/repos/events.py)
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True),
    Column("description", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text, nullable=True),
    Column("disabled_at", TS, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    # payload keys (``<event type>:<key>``) its receiver may not read (migration 0021; api/usecases/events.py)
    Column("withheld", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("created_by", Text, nullable=False),
    _created(),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    Column("version", Integer, nullable=False, server_default="1"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _pk(),
    Column("endpoint_id", UUID(as_uuid=True), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", UUID(as_uuid=True), ForeignKey("events.id"), nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_attempt_at", TS, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", TS, nullable=True, server_default=func.now()),
    Column("delivered_at", TS, nullable=True),
    _created(),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_id"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
)

# Refunds, benefits and their uses (migration 0019, issue 15). Money is numeric(14, 2).
refunds = Table(
    "refunds",
    metadata,
    _pk(),
    Column("purchase_id", UUID(as_uuid=True), ForeignKey("purchases.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True),
    Column("external_id", Text, nullable=True),
    Column("amount", MONEY, nullable=False),
    Column("reason", Text, nullable=True),
    Column("refunded_at", TS, nullable=False),
    # the purchase's own time: spend windows count a refund with the purchase it gives back
    Column("purchased_at", TS, nullable=False),
    # this refund brought the purchase to zero: it no longer counts as an order
    Column("closes_purchase", Boolean, nullable=False, server_default="false"),
    Column("actor", Text, nullable=True),
    _created(),
    CheckConstraint("amount > 0", name="amount_positive"),
)
Index(
    "uq_refunds_partner_external_id",
    refunds.c.partner_id,
    refunds.c.external_id,
    unique=True,
    postgresql_nulls_not_distinct=True,
    postgresql_where=text("external_id IS NOT NULL"),
)
Index("ix_refunds_purchase_id", refunds.c.purchase_id)
Index("ix_refunds_customer_id", refunds.c.customer_id)
Index("ix_refunds_refunded_at", refunds.c.refunded_at)

benefits = Table(
    "benefits",
    metadata,
    _pk(),
    Column("policy_id", UUID(as_uuid=True), ForeignKey("tier_policies.id", ondelete="CASCADE"), nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("cost_model", Text, nullable=False),
    Column("cost_value", Numeric(14, 4), nullable=False),
    Column("tiers", ARRAY(Text), nullable=False, server_default="{}"),
    Column("budget", MONEY, nullable=True),
    Column("budget_period", Text, nullable=True),
    Column("description", Text, nullable=True),
    _created(),
    UniqueConstraint("policy_id", "code"),
)

benefit_redemptions = Table(
    "benefit_redemptions",
    metadata,
    _pk(),
    Column("benefit_id", UUID(as_uuid=True), ForeignKey("benefits.id"), nullable=False),
    Column("benefit_code", Text, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("partner_id", UUID(as_uuid=True), ForeignKey("partners.id"), nullable=True),
    Column("external_id", Text, nullable=True),
    Column("tier_code", Text, nullable=False),  # the customer's tier when it used the benefit
    Column("order_amount", MONEY, nullable=True),
    Column("cost", MONEY, nullable=False),
    Column("redeemed_at", TS, nullable=False),
    Column("actor", Text, nullable=True),
    _created(),
    CheckConstraint("cost >= 0", name="cost_not_negative"),
)
Index(
    "uq_benefit_redemptions_partner_external_id",
    benefit_redemptions.c.partner_id,
    benefit_redemptions.c.external_id,
    unique=True,
    postgresql_nulls_not_distinct=True,
    postgresql_where=text("external_id IS NOT NULL"),
)
Index("ix_benefit_redemptions_customer_at", benefit_redemptions.c.customer_id, benefit_redemptions.c.redeemed_at)
Index("ix_benefit_redemptions_at", benefit_redemptions.c.redeemed_at)
Index(
    "ix_benefit_redemptions_benefit_tier_at",
    benefit_redemptions.c.benefit_code,
    benefit_redemptions.c.tier_code,
    benefit_redemptions.c.redeemed_at,
)

# One upgrade decided while a holdout was in force (migration 0020): which group the customer fell in and how
# long the new tier's benefits are withheld from it (held) or not (treated).
benefit_holdouts = Table(
    "benefit_holdouts",
    metadata,
    _pk(),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("from_tier", Text, nullable=True),  # the benefits a held customer keeps: those of this tier
    Column("to_tier", Text, nullable=False),
    Column("held", Boolean, nullable=False),
    Column("share", Numeric(5, 4), nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),
    Column("actor", Text, nullable=True),
    _created(),
    CheckConstraint("ends_at > starts_at", name="window"),
)
Index("ix_benefit_holdouts_customer_id", benefit_holdouts.c.customer_id, benefit_holdouts.c.ends_at)
Index("ix_benefit_holdouts_to_tier_starts_at", benefit_holdouts.c.to_tier, benefit_holdouts.c.starts_at)
Index("ix_benefit_holdouts_held", benefit_holdouts.c.customer_id, postgresql_where=text("held"))
