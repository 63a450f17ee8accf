"""The strawberry enums several slices share (their values come from domain/enums.py)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from domain import enums
from domain.complaints import COMPLAINT_EVENT_KINDS


def _enum(name: str, values: tuple[str, ...], description: str) -> Any:
    # mypy types a functional Enum only under a literal name; these are named by the caller
    members: type[Enum] = Enum(name, {v.upper(): v for v in values})  # type: ignore[misc]
    return strawberry.enum(members, description=description)


LifecycleStage = _enum("LifecycleStage", enums.LIFECYCLE_STAGES, "Where a customer is in its relationship")


ComplaintStatus = _enum("ComplaintStatus", enums.COMPLAINT_STATUSES, "Complaint lifecycle state")


Severity = _enum("Severity", enums.SEVERITIES, "How bad a complaint is")


ContactChannel = _enum("ContactChannel", enums.CHANNELS, "Where a complaint came in")


SurveyChannel = _enum("SurveyChannel", enums.SURVEY_CHANNELS, "Where a survey is answered")


SurveyStatus = _enum("SurveyStatus", enums.SURVEY_STATUSES, "Survey state")


SurveyTrigger = _enum("SurveyTrigger", enums.SURVEY_TRIGGERS, "What sends a survey")


QuestionKind = _enum("QuestionKind", enums.QUESTION_KINDS, "Kind of survey question")


ChangeType = _enum("TierChangeType", enums.TIER_CHANGE_TYPES, "Why a tier changed")


PolicyStatus = _enum("PolicyStatus", enums.POLICY_STATUSES, "Tier policy state")


ComplaintEventKind = _enum(
    "ComplaintEventKind", COMPLAINT_EVENT_KINDS, "A transition, or what the SLA sweep saw: a breach, an escalation"
)
