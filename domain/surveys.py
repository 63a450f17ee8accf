"""Survey answers: what a valid answer to each kind of question is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.enums import SCORE_RANGES
from domain.errors import Invalid, ValidationFailed


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    options: Sequence[str]
    required: bool


@dataclass(frozen=True)
class Answer:
    question_id: str
    score: int | None = None
    choices: Sequence[str] | None = None
    text: str | None = None


MAX_TEXT = 5000


def validate_answers(questions: Sequence[Question], answers: Sequence[Answer]) -> None:
    """Raise ``Invalid`` listing every problem: unknown or repeated questions, out-of-range scores…"""
    by_id: Mapping[str, Question] = {q.id: q for q in questions}
    errors: list[ValidationFailed] = []
    seen: set[str] = set()
    for i, a in enumerate(answers):
        field = f"answers[{i}]"
        q = by_id.get(a.question_id)
        if q is None:
            errors.append(ValidationFailed("no such question in this survey", field=f"{field}.questionId"))
            continue
        if a.question_id in seen:
            errors.append(ValidationFailed("question answered twice", field=f"{field}.questionId"))
        seen.add(a.question_id)
        if q.kind in SCORE_RANGES:
            low, high = SCORE_RANGES[q.kind]
            if a.score is None or not low <= a.score <= high:
                errors.append(ValidationFailed(f"{q.kind} score must be {low}-{high}", field=f"{field}.score"))
        elif q.kind in ("single_choice", "multiple_choice"):
            picked = list(a.choices or [])
            if not picked or (q.kind == "single_choice" and len(picked) != 1):
                errors.append(
                    ValidationFailed(
                        "pick exactly one option" if q.kind == "single_choice" else "pick at least one option",
                        field=f"{field}.choices",
                    )
                )
            elif any(c not in q.options for c in picked) or len(set(picked)) != len(picked):
                errors.append(
                    ValidationFailed("choices must be distinct options of the question", field=f"{field}.choices")
                )
        elif q.kind == "text":
            if not a.text or not a.text.strip():
                errors.append(ValidationFailed("text answer is empty", field=f"{field}.text"))
            elif len(a.text) > MAX_TEXT:
                errors.append(ValidationFailed(f"text answer has at most {MAX_TEXT} characters", field=f"{field}.text"))
    for q in questions:
        if q.required and q.id not in seen:
            errors.append(ValidationFailed(f"question {q.id} is required", field="answers"))
    if errors:
        raise Invalid(errors)


# ---------------------------------------------------------------- scores
#
# Each score is a share of the scored answers, in percent (infra/repos/reports.py computes the same in
# SQL): NPS = % promoters (9-10) - % detractors (0-6); CSAT = % of 4-5; CES = % of 5-7.

SCORE_KINDS = ("nps", "csat", "ces")
# kind -> (lowest score counted as positive, highest score counted as negative or None)
SCORE_BANDS: dict[str, tuple[int, int | None]] = {"nps": (9, 6), "csat": (4, None), "ces": (5, None)}


def score_from_counts(kind: str, answers: int, positive: int, negative: int = 0) -> float | None:
    """The score of ``answers`` scored answers of which ``positive`` (and for NPS ``negative``) counted."""
    if answers == 0:
        return None
    if kind == "nps":
        return 100.0 * (positive - negative) / answers
    return 100.0 * positive / answers


def score(kind: str, scores: Sequence[int]) -> float | None:
    """NPS, CSAT or CES of a list of answers (None without answers)."""
    high, low = SCORE_BANDS[kind]
    positive = sum(1 for s in scores if s >= high)
    negative = sum(1 for s in scores if low is not None and s <= low)
    return score_from_counts(kind, len(scores), positive, negative)


def nps(scores: Sequence[int]) -> float | None:
    return score("nps", scores)


def csat(scores: Sequence[int]) -> float | None:
    return score("csat", scores)


def ces(scores: Sequence[int]) -> float | None:
    return score("ces", scores)


# ---------------------------------------------------------------- invitations
#
# An invitation goes out on one channel the survey is sent on and the customer can be reached on:
# e-mail, SMS and phone need the contact detail and the customer's consent on that channel; the web
# and in-app inboxes reach every customer. The channel the customer used (a complaint's) comes first,
# then this order.

INVITE_CHANNEL_ORDER = ("email", "sms", "in_app", "web", "phone")
ALWAYS_REACHABLE = frozenset({"web", "in_app"})
# The survey channel that answers a complaint channel best (none for a shop counter).
COMPLAINT_CHANNEL_TO_SURVEY = {"email": "email", "phone": "phone", "web": "web", "chat": "in_app", "social": "web"}
# Why a customer was not invited (stable codes).
SKIP_REASONS = ("not_found", "survey_inactive", "answered", "already_invited", "throttled", "no_channel")
# Why an invitation went out on another channel than the one asked for (stable codes): the survey is
# not sent on it, or the customer can't be reached on it (no address or number, or no consent).
CHANNEL_FALLBACK_REASONS = (
    "channel_not_offered",
    "no_email_address",
    "no_email_consent",
    "no_phone_number",
    "no_sms_consent",
    "no_phone_consent",
)


def reachable_channels(
    *, email: bool, email_consent: bool, phone: bool, sms_consent: bool, phone_consent: bool
) -> frozenset[str]:
    out = set(ALWAYS_REACHABLE)
    if email and email_consent:
        out.add("email")
    if phone and sms_consent:
        out.add("sms")
    if phone and phone_consent:
        out.add("phone")
    return frozenset(out)


def pick_channel(offered: Sequence[str], reachable: frozenset[str], preferred: str | None = None) -> str | None:
    """The channel to invite on: the preferred one if possible, else the first of INVITE_CHANNEL_ORDER."""
    usable = [c for c in INVITE_CHANNEL_ORDER if c in offered and c in reachable]
    if preferred in usable:
        return preferred
    return usable[0] if usable else None
