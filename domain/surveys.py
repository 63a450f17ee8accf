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
