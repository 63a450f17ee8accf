"""Closed sets of values shared by the domain, the database constraints and the API."""

from __future__ import annotations

LIFECYCLE_STAGES = ("prospect", "new", "active", "at_risk", "churned")
POLICY_STATUSES = ("draft", "active", "retired")
TIER_CHANGE_TYPES = ("initial", "upgrade", "downgrade", "grace", "manual_override")
COMPLAINT_STATUSES = ("new", "open", "pending_customer", "on_hold", "resolved", "closed")
SEVERITIES = ("low", "medium", "high", "critical")
CHANNELS = ("email", "phone", "web", "chat", "in_store", "social")
SURVEY_STATUSES = ("draft", "active", "closed")
SURVEY_TRIGGERS = ("manual", "complaint_resolved", "purchase", "periodic")
SURVEY_CHANNELS = ("email", "sms", "web", "in_app", "phone")
QUESTION_KINDS = ("nps", "csat", "ces", "single_choice", "multiple_choice", "text")
CHURN_LEVELS = ("green", "yellow", "red")

SCORE_RANGES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
