"""Pure tests of domain/ (and the masks of authz/masking.py): no database, no I/O."""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
from pathlib import Path
from typing import Any

import pytest

from authz.masking import mask_address, mask_birth_date, mask_email, mask_id, mask_phone, mask_text
from domain import tiers
from domain.complaints import TRANSITIONS, ComplaintState, Transition, check_transition
from domain.customers import normalize_customer, normalize_email, normalize_phone
from domain.errors import IllegalTransition, Invalid, ValidationFailed
from domain.surveys import Answer, Question, validate_answers

TODAY = dt.date(2024, 6, 15)


def _shipped_policy() -> list[tiers.TierSpec]:
    """The tier policy the 0002 migration ships: the rules are data, tested as the users get them."""
    path = Path(__file__).parents[2] / "infra/migrations/versions/0002_default_reference_data.py"
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [tiers.TierSpec(code, name, rank, entry, retain) for code, name, rank, entry, retain, _ in module.TIERS]


DEFAULT_POLICY = _shipped_policy()


def normalize(creating: bool = False, region: str = "DE", **fields: Any) -> dict[str, Any]:
    return normalize_customer(fields, default_region=region, today=TODAY, creating=creating)


def problems(exc: pytest.ExceptionInfo[Invalid]) -> dict[str, str]:
    return {e.field or "": e.message for e in exc.value.errors}


# ============================================================== customers


class TestCustomerNormalisation:
    def test_name_whitespace_is_collapsed_and_trimmed(self) -> None:
        assert normalize(name="  Ann \t  Lee\n ") == {"name": "Ann Lee"}

    @pytest.mark.parametrize("name", ["", "   ", "\t\n"])
    def test_blank_name_is_refused(self, name: str) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(name=name)
        assert "name" in problems(exc)

    def test_name_null_is_refused(self) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(name=None)
        assert list(problems(exc)) == ["name"]

    def test_name_over_200_characters_is_refused(self) -> None:
        assert normalize(name="x" * 200)["name"] == "x" * 200
        with pytest.raises(Invalid) as exc:
            normalize(name="x" * 201)
        assert "name" in problems(exc)

    def test_creating_needs_a_name_updating_does_not(self) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(creating=True, email="a@example.com")
        assert "name" in problems(exc)
        assert normalize(creating=False, email="a@example.com") == {"email": "a@example.com"}

    def test_email_is_trimmed_and_lower_cased(self) -> None:
        assert normalize(email="  Ann.Lee@Example.COM ") == {"email": "ann.lee@example.com"}
        assert normalize_email("BOB@EXAMPLE.ORG") == "bob@example.org"

    @pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", "a@@example.com"])
    def test_bad_email_is_refused(self, email: str) -> None:
        with pytest.raises(ValidationFailed) as exc:
            normalize_email(email)
        assert exc.value.field == "email"

    @pytest.mark.parametrize(
        ("raw", "region", "e164"),
        [
            ("030 1234567", "DE", "+49301234567"),
            ("(030) 123-4567", "DE", "+49301234567"),
            ("+49 30 1234567", "US", "+49301234567"),  # an explicit country code wins over the default
            ("0049 30 1234567", "DE", "+49301234567"),
            ("(201) 555-0123", "US", "+12015550123"),
            ("138 1234 5678", "CN", "+8613812345678"),
        ],
    )
    def test_phone_becomes_e164_with_the_default_region(self, raw: str, region: str, e164: str) -> None:
        assert normalize_phone(raw, region) == e164
        assert normalize(region=region, phone=raw) == {"phone": e164}

    @pytest.mark.parametrize("phone", ["hello", "12", "+49 1", "030 12", "+999 123456789"])
    def test_bad_phone_is_refused(self, phone: str) -> None:
        with pytest.raises(ValidationFailed) as exc:
            normalize_phone(phone, "DE")
        assert exc.value.field == "phone"

    def test_national_id_is_trimmed_and_upper_cased(self) -> None:
        assert normalize(national_id="  ab-123/45.6 ") == {"national_id": "AB-123/45.6"}

    @pytest.mark.parametrize("nid", ["abc", "-1234", "AB#1234", "x" * 33, "    "])
    def test_bad_national_id_is_refused(self, nid: str) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(national_id=nid)
        assert "national_id" in problems(exc)

    def test_national_id_length_bounds(self) -> None:
        assert normalize(national_id="ABCD")["national_id"] == "ABCD"
        assert normalize(national_id="A" * 32)["national_id"] == "A" * 32

    def test_birth_date_today_is_fine_tomorrow_is_future(self) -> None:
        assert normalize(birth_date=TODAY) == {"birth_date": TODAY}
        with pytest.raises(Invalid) as exc:
            normalize(birth_date=TODAY + dt.timedelta(days=1))
        assert "future" in problems(exc)["birth_date"]

    def test_birth_date_more_than_130_years_ago_is_not_plausible(self) -> None:
        oldest = dt.date(TODAY.year - 130, 1, 1)
        assert normalize(birth_date=oldest) == {"birth_date": oldest}
        with pytest.raises(Invalid) as exc:
            normalize(birth_date=dt.date(TODAY.year - 131, 12, 31))
        assert "130" in problems(exc)["birth_date"]

    def test_address_is_cleaned_and_country_upper_cased(self) -> None:
        got = normalize(
            address={
                "line1": "  Main   St 1 ",
                "city": " Berlin ",
                "country": "de",
                "line2": None,
                "postal_code": "   ",
                "planet": "Earth",
            }
        )
        assert got == {"address": {"line1": "Main St 1", "city": "Berlin", "country": "DE"}}

    @pytest.mark.parametrize("address", [{"city": "Berlin"}, {"country": "DE"}, {"line1": "Main St 1"}])
    def test_address_needs_city_and_country(self, address: dict[str, str]) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(address=address)
        assert "city and a country" in problems(exc)["address"]

    @pytest.mark.parametrize("country", ["DEU", "D", "1A"])
    def test_address_country_is_alpha2(self, country: str) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(address={"city": "Berlin", "country": country})
        assert "address.country" in problems(exc)

    def test_empty_address_clears_it(self) -> None:
        assert normalize(address={"city": " ", "country": None}) == {"address": None}
        assert normalize(address=None) == {"address": None}

    def test_null_optional_fields_clear_them(self) -> None:
        assert normalize(email=None, phone=None, national_id=None) == {
            "email": None,
            "phone": None,
            "national_id": None,
        }

    @pytest.mark.parametrize("field", ["tier_code", "version", "partner_id", "deleted_at", "id"])
    def test_unknown_or_system_field_is_refused(self, field: str) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(name="Ann", **{field: "x"})
        assert problems(exc) == {field: f"'{field}' cannot be set"}

    def test_locale_and_lifecycle_stage(self) -> None:
        assert normalize(locale="de_DE", lifecycle_stage="active") == {"locale": "de_DE", "lifecycle_stage": "active"}
        with pytest.raises(Invalid) as exc:
            normalize(locale="german", lifecycle_stage="vip")
        assert set(problems(exc)) == {"locale", "lifecycle_stage"}

    def test_external_ref_is_trimmed_and_bounded(self) -> None:
        assert normalize(external_ref="  ext-1 ") == {"external_ref": "ext-1"}
        with pytest.raises(Invalid):
            normalize(external_ref="   ")
        with pytest.raises(Invalid):
            normalize(external_ref="x" * 101)

    def test_several_errors_are_reported_at_once(self) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(
                creating=True,
                name="  ",
                email="nope",
                phone="12",
                national_id="#",
                tier="gold",
                birth_date=TODAY + dt.timedelta(days=3),
                address={"city": "Berlin"},
            )
        assert set(problems(exc)) == {"name", "email", "phone", "national_id", "tier", "birth_date", "address"}
        assert all(e.code == "INVALID" for e in exc.value.errors)

    def test_valid_values_are_not_reported_with_invalid_ones(self) -> None:
        with pytest.raises(Invalid) as exc:
            normalize(name="Ann", email="ann@example.com", phone="nope")
        assert list(problems(exc)) == ["phone"]


# ============================================================== complaints

STATUSES = ("new", "open", "pending_customer", "on_hold", "resolved", "closed")
# The lifecycle as specified (domain/complaints.py docstring), written out, not read from TRANSITIONS.
LEGAL = {
    ("new", "open"),
    ("new", "resolved"),
    ("open", "pending_customer"),
    ("open", "on_hold"),
    ("open", "resolved"),
    ("pending_customer", "open"),
    ("pending_customer", "resolved"),
    ("on_hold", "open"),
    ("on_hold", "resolved"),
    ("resolved", "open"),
    ("resolved", "closed"),
}
FULL_RESOLUTION = {"assignee": "agent-1", "resolution_code": "refund", "root_cause_code": "process"}


class TestComplaintLifecycle:
    def test_the_table_is_exactly_the_specified_lifecycle(self) -> None:
        assert {(a, b) for a, bs in TRANSITIONS.items() for b in bs} == LEGAL
        assert set(TRANSITIONS) == set(STATUSES)

    @pytest.mark.parametrize(("src", "dst"), sorted(LEGAL))
    def test_legal_transition(self, src: str, dst: str) -> None:
        out = check_transition(ComplaintState(src, None), Transition(to=dst, **FULL_RESOLUTION))
        assert (out.from_status, out.to_status) == (src, dst)

    @pytest.mark.parametrize(("src", "dst"), sorted(set(itertools.product(STATUSES, STATUSES)) - LEGAL))
    def test_illegal_transition(self, src: str, dst: str) -> None:
        with pytest.raises(IllegalTransition) as exc:
            check_transition(ComplaintState(src, "agent-1"), Transition(to=dst, **FULL_RESOLUTION))
        assert exc.value.code == "ILLEGAL_TRANSITION"
        assert exc.value.field == "to"
        assert f"cannot go from {src} to {dst}" in exc.value.message

    @pytest.mark.parametrize("dst", STATUSES)
    def test_closed_is_final(self, dst: str) -> None:
        with pytest.raises(IllegalTransition) as exc:
            check_transition(ComplaintState("closed", "agent-1"), Transition(to=dst, **FULL_RESOLUTION))
        assert "closed is final" in exc.value.message

    @pytest.mark.parametrize("src", STATUSES)
    def test_nothing_returns_to_new(self, src: str) -> None:
        with pytest.raises(IllegalTransition):
            check_transition(ComplaintState(src, "agent-1"), Transition(to="new"))

    def test_unknown_status_is_a_validation_error(self) -> None:
        with pytest.raises(ValidationFailed) as exc:
            check_transition(ComplaintState("open", None), Transition(to="escalated"))
        assert exc.value.field == "to"

    def test_resolving_needs_assignee_resolution_and_root_cause(self) -> None:
        with pytest.raises(Invalid) as exc:
            check_transition(ComplaintState("open", None), Transition(to="resolved"))
        assert set(problems(exc)) == {"assignee", "resolutionCode", "rootCauseCode"}

    @pytest.mark.parametrize("missing", ["assignee", "resolution_code", "root_cause_code"])
    def test_resolving_without_one_of_them_fails(self, missing: str) -> None:
        given = {k: v for k, v in FULL_RESOLUTION.items() if k != missing}
        with pytest.raises(Invalid) as exc:
            check_transition(ComplaintState("open", None), Transition(to="resolved", **given))
        assert len(exc.value.errors) == 1

    def test_existing_assignee_is_enough_for_resolving(self) -> None:
        out = check_transition(
            ComplaintState("open", "agent-7"),
            Transition(to="resolved", resolution_code="refund", root_cause_code="process"),
        )
        assert out.to_status == "resolved"

    def test_reopen_is_flagged_only_from_resolved_to_open(self) -> None:
        reopen = check_transition(ComplaintState("resolved", "a"), Transition(to="open"))
        assert reopen.is_reopen
        for src in ("new", "pending_customer", "on_hold"):
            assert not check_transition(ComplaintState(src, "a"), Transition(to="open")).is_reopen
        assert not check_transition(ComplaintState("resolved", "a"), Transition(to="closed")).is_reopen

    def test_first_response_pause_and_resume_flags(self) -> None:
        first = check_transition(ComplaintState("new", None), Transition(to="open"))
        assert first.is_first_response
        assert not first.pauses
        assert not first.resumes
        again = check_transition(ComplaintState("pending_customer", None), Transition(to="open"))
        assert not again.is_first_response
        assert again.resumes
        assert not again.pauses
        pause = check_transition(ComplaintState("open", None), Transition(to="pending_customer"))
        assert pause.pauses
        assert not pause.resumes
        hold = check_transition(ComplaintState("open", None), Transition(to="on_hold"))
        assert not hold.pauses  # on hold is our side: the SLA clock keeps running
        resolved_while_waiting = check_transition(
            ComplaintState("pending_customer", "a"), Transition(to="resolved", **FULL_RESOLUTION)
        )
        assert resolved_while_waiting.resumes


# ============================================================== surveys


def q(qid: str, kind: str, options: tuple[str, ...] = (), required: bool = True) -> Question:
    return Question(qid, kind, options, required)


class TestSurveyAnswers:
    @pytest.mark.parametrize(("kind", "low", "high"), [("nps", 0, 10), ("csat", 1, 5), ("ces", 1, 7)])
    def test_score_bounds_including_off_by_one(self, kind: str, low: int, high: int) -> None:
        questions = [q("q1", kind)]
        for ok in (low, high, (low + high) // 2):
            validate_answers(questions, [Answer("q1", score=ok)])
        for bad in (low - 1, high + 1, None):
            with pytest.raises(Invalid) as exc:
                validate_answers(questions, [Answer("q1", score=bad)])
            message = problems(exc)["answers[0].score"]
            assert message.startswith(f"{kind} score must be {low}")
            assert message.endswith(str(high))

    def test_single_choice_needs_exactly_one_known_option(self) -> None:
        questions = [q("q1", "single_choice", ("fast", "slow"))]
        validate_answers(questions, [Answer("q1", choices=["fast"])])
        for bad in ([], None, ["fast", "slow"], ["medium"]):
            with pytest.raises(Invalid) as exc:
                validate_answers(questions, [Answer("q1", choices=bad)])
            assert list(problems(exc)) == ["answers[0].choices"]

    def test_multiple_choice_needs_distinct_known_options(self) -> None:
        questions = [q("q1", "multiple_choice", ("a", "b", "c"))]
        validate_answers(questions, [Answer("q1", choices=["a", "c"])])
        for bad in ([], ["a", "a"], ["a", "z"]):
            with pytest.raises(Invalid):
                validate_answers(questions, [Answer("q1", choices=bad)])

    def test_text_answers(self) -> None:
        questions = [q("q1", "text")]
        validate_answers(questions, [Answer("q1", text="fine")])
        validate_answers(questions, [Answer("q1", text="x" * 5000)])
        for bad in (None, "", "   ", "x" * 5001):
            with pytest.raises(Invalid):
                validate_answers(questions, [Answer("q1", text=bad)])

    def test_required_questions_must_be_answered_optional_need_not(self) -> None:
        questions = [q("q1", "nps"), q("q2", "text", required=False)]
        validate_answers(questions, [Answer("q1", score=9)])
        with pytest.raises(Invalid) as exc:
            validate_answers(questions, [Answer("q2", text="hi")])
        assert problems(exc) == {"answers": "question q1 is required"}

    def test_duplicate_answer_is_refused(self) -> None:
        with pytest.raises(Invalid) as exc:
            validate_answers([q("q1", "nps")], [Answer("q1", score=9), Answer("q1", score=3)])
        assert problems(exc) == {"answers[1].questionId": "question answered twice"}

    def test_unknown_question_is_refused(self) -> None:
        with pytest.raises(Invalid) as exc:
            validate_answers([q("q1", "nps", required=False)], [Answer("nope", score=9)])
        assert list(problems(exc)) == ["answers[0].questionId"]

    def test_every_problem_is_listed(self) -> None:
        questions = [q("q1", "nps"), q("q2", "csat"), q("q3", "single_choice", ("a", "b")), q("q4", "text")]
        with pytest.raises(Invalid) as exc:
            validate_answers(questions, [Answer("q1", score=11), Answer("q2", score=0), Answer("q3", choices=["z"])])
        assert set(problems(exc)) == {"answers[0].score", "answers[1].score", "answers[2].choices", "answers"}


# ============================================================== tiers


def rule_errors(rule: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as exc:
        tiers.validate_rule(rule)
    return problems(exc)


class TestTierRules:
    @pytest.mark.parametrize(
        "rule",
        [
            {"always": True},
            {"all": [{"metric": "spend_12m", "op": ">=", "value": 1000}]},
            {
                "any": [
                    {"metric": "orders_12m", "op": ">", "value": 3},
                    {
                        "all": [
                            {"metric": "latest_csat", "op": ">=", "value": 5},
                            {"metric": "latest_nps", "op": "<=", "value": 0},
                        ]
                    },
                ]
            },
            {"score": {"weights": {"spend_12m": 0.01, "orders_12m": 2}, "min": 40}},
            *[{"all": [{"metric": m, "op": "==", "value": 1}]} for m in tiers.METRICS],
        ],
    )
    def test_valid_rules_pass(self, rule: Any) -> None:
        tiers.validate_rule(rule)

    def test_default_policy_rules_are_valid(self) -> None:
        for spec in DEFAULT_POLICY:
            tiers.validate_rule(spec.entry_rule)
            tiers.validate_rule(spec.retain_rule)

    def test_unknown_metric(self) -> None:
        assert rule_errors({"all": [{"metric": "karma", "op": ">=", "value": 1}]}) == {
            "rule.all[0].metric": "unknown metric 'karma'"
        }
        assert "rule.score.weights" in rule_errors({"score": {"weights": {"karma": 1}, "min": 1}})

    @pytest.mark.parametrize(
        ("metric", "op", "value"),
        [
            ("latest_csat", ">=", 6),
            ("latest_csat", ">", 5),
            ("latest_csat", "==", 6),
            ("latest_csat", "<", 1),
            ("latest_csat", "<=", 0),
            ("latest_nps", ">=", 11),
            ("latest_nps", "<", 0),
            ("spend_12m", "<", 0),
            ("spend_12m", "<=", -1),
            ("orders_12m", "==", -2),
        ],
    )
    def test_impossible_threshold(self, metric: str, op: str, value: float) -> None:
        errors = rule_errors({"all": [{"metric": metric, "op": op, "value": value}]})
        assert errors == {"rule.all[0].value": f"{metric} {op} {value} can never hold"}

    @pytest.mark.parametrize(
        ("metric", "op", "value"),
        [
            ("latest_csat", ">=", 5),
            ("latest_csat", ">", 4),
            ("latest_csat", "<=", 1),
            ("latest_nps", "<", 1),
            ("spend_12m", "<=", 0),
            ("spend_12m", ">=", 10**9),
        ],
    )
    def test_edge_thresholds_that_can_hold(self, metric: str, op: str, value: float) -> None:
        tiers.validate_rule({"all": [{"metric": metric, "op": op, "value": value}]})

    @pytest.mark.parametrize(
        "rule",
        [
            None,
            [],
            "always",
            {},
            {"always": True, "all": []},
            {"always": False},
            {"always": 1},
            {"all": []},
            {"any": {}},
            {"all": "x"},
            {"sometimes": True},
            {"score": {"weights": {}}},
            {"score": {"min": 3}},
            {"score": {"weights": {}, "min": 1}},
            {"score": {"weights": {"spend_12m": "a"}, "min": 1}},
            {"score": {"weights": {"spend_12m": True}, "min": 1}},
            {"score": {"weights": {"spend_12m": 1}, "min": "9"}},
            {"all": [{"metric": "spend_12m", "op": "=>", "value": 1}]},
            {"all": [{"metric": "spend_12m", "op": ">=", "value": "100"}]},
            {"all": [{"metric": "spend_12m", "op": ">=", "value": True}]},
            {"all": [{"metric": "spend_12m", "op": ">="}]},
            {"all": [{"any": []}]},
            {"all": [42]},
        ],
    )
    def test_bad_shapes_are_refused(self, rule: Any) -> None:
        assert rule_errors(rule)

    def test_every_problem_is_listed(self) -> None:
        errors = rule_errors(
            {
                "all": [
                    {"metric": "karma", "op": ">=", "value": 1},
                    {"metric": "spend_12m", "op": "~", "value": 1},
                    {"metric": "latest_csat", "op": ">=", "value": 9},
                ]
            }
        )
        assert set(errors) == {"rule.all[0].metric", "rule.all[1].op", "rule.all[2].value"}

    def test_holds(self) -> None:
        rule = {
            "any": [{"metric": "spend_12m", "op": ">=", "value": 500}, {"metric": "orders_12m", "op": ">=", "value": 6}]
        }
        assert tiers.holds(rule, {"spend_12m": 500, "orders_12m": 0})
        assert tiers.holds(rule, {"spend_12m": 0, "orders_12m": 6})
        assert not tiers.holds(rule, {"spend_12m": 499.99, "orders_12m": 5})
        both = {"all": rule["any"]}
        assert not tiers.holds(both, {"spend_12m": 500, "orders_12m": 5})
        assert tiers.holds(both, {"spend_12m": 500, "orders_12m": 6})
        assert tiers.holds({"always": True}, {})

    @pytest.mark.parametrize(
        ("op", "value", "actual", "expected"),
        [
            (">=", 5, 5, True),
            (">", 5, 5, False),
            ("<=", 5, 5, True),
            ("<", 5, 5, False),
            ("==", 5, 5, True),
            ("==", 5, 4, False),
            (">", 5, 6, True),
            ("<", 5, 4, True),
        ],
    )
    def test_operators(self, op: str, value: float, actual: float, expected: bool) -> None:
        assert (
            tiers.holds({"all": [{"metric": "orders_12m", "op": op, "value": value}]}, {"orders_12m": actual})
            is expected
        )

    def test_missing_metric_never_satisfies_a_condition(self) -> None:
        assert not tiers.holds({"all": [{"metric": "latest_nps", "op": "<=", "value": 10}]}, {"latest_nps": None})
        assert not tiers.holds({"all": [{"metric": "latest_nps", "op": "<=", "value": 10}]}, {})

    def test_score(self) -> None:
        rule = {"score": {"weights": {"spend_12m": 0.01, "orders_12m": 2}, "min": 40}}
        assert tiers.holds(rule, {"spend_12m": 3000, "orders_12m": 5})  # 30 + 10
        assert not tiers.holds(rule, {"spend_12m": 2999, "orders_12m": 5})
        assert tiers.holds(rule, {"spend_12m": None, "orders_12m": 20})  # missing counts as 0

    @pytest.mark.parametrize(
        ("metrics", "tier"),
        [
            ({}, "bronze"),
            ({"spend_12m": 499.99, "orders_12m": 5}, "bronze"),
            ({"spend_12m": 500, "orders_12m": 1}, "silver"),
            ({"spend_12m": 0, "orders_12m": 6}, "silver"),
            ({"spend_12m": 2000, "orders_12m": 8, "days_since_last_purchase": 120}, "gold"),
            ({"spend_12m": 2000, "orders_12m": 8, "days_since_last_purchase": 121}, "silver"),
            ({"spend_12m": 2000, "orders_12m": 7, "days_since_last_purchase": 1}, "silver"),
            ({"spend_12m": 9500, "orders_12m": 0}, "platinum"),  # score 95
            ({"spend_12m": 5000, "orders_12m": 10, "tenure_days": 500, "latest_nps": 10}, "platinum"),  # 50+15+10+20
            (
                {
                    "spend_12m": 5000,
                    "orders_12m": 10,
                    "tenure_days": 500,
                    "latest_nps": 9,
                    "days_since_last_purchase": 3,
                },
                "gold",
            ),  # score 93
        ],
    )
    def test_entry_tier_of_the_default_policy(self, metrics: dict[str, float], tier: str) -> None:
        assert tiers.entry_tier(DEFAULT_POLICY, metrics).code == tier

    def test_entry_tier_falls_back_to_the_lowest_rank(self) -> None:
        never = {"all": [{"metric": "orders_12m", "op": ">=", "value": 10**6}]}
        specs = [tiers.TierSpec("b", "B", 0, never, never), tiers.TierSpec("a", "A", 1, never, never)]
        assert tiers.entry_tier(specs, {"orders_12m": 1}).code == "b"

    def test_conditions_are_listed_in_order(self) -> None:
        gold = DEFAULT_POLICY[2].entry_rule
        assert [c.describe() for c in tiers.conditions(gold)] == [
            "spend_12m >= 2000",
            "orders_12m >= 8",
            "days_since_last_purchase <= 120",
        ]


# ============================================================== masking


class TestMasking:
    # Issue 17 (F4): masks keep nothing the other fields a role sees could complete. The old forms
    # (first letter and domain of an e-mail, last four of a phone or national id) are gone.
    @pytest.mark.parametrize(
        ("raw", "masked"),
        [
            ("+8613812345678", "+86*********78"),
            ("+49301234567", "+49*******67"),
            ("+12015550123", "+1********23"),
            ("+493012345678", "+49********78"),
            ("13812345678", "*********78"),  # not E.164: no country code to keep
        ],
    )
    def test_phone_keeps_its_length_country_code_and_last_two(self, raw: str, masked: str) -> None:
        assert mask_phone(raw) == masked
        assert len(mask_phone(raw)) == len(raw)
        assert mask_phone(raw)[-2:] == raw[-2:]
        assert raw[-4:-2] not in mask_phone(raw)[-4:]

    def test_short_phone_is_hidden_entirely(self) -> None:
        assert mask_phone("1234567") == "*******"
        assert mask_phone("12345678") == "********"

    @pytest.mark.parametrize(
        ("raw", "masked"),
        [
            ("ann.lee@example.com", "***@***.com"),
            ("a@example.com", "***@***.com"),
            ("bob@mail.co.uk", "***@***.uk"),
            ("adam.burton84@gmail.example", "***@***.example"),
            ("user@localhost", "***@***"),
            ("not an address", "***"),
        ],
    )
    def test_email_keeps_only_its_shape_and_top_level_domain(self, raw: str, masked: str) -> None:
        assert mask_email(raw) == masked

    def test_email_mask_is_the_same_whatever_the_local_part_or_domain(self) -> None:
        locals_, domains = ("a", "adam.burton", "ab_1984"), ("gmail", "t-online", "web")
        shown = {mask_email(f"{local}@{domain}.example") for local in locals_ for domain in domains}
        assert shown == {"***@***.example"}

    @pytest.mark.parametrize(
        ("raw", "masked"),
        [("123-45-6789", "***-**-****"), ("AB 12 34 56 C", "** ** ** ** *"), ("110101199001011234", "*" * 18)],
    )
    def test_national_id_keeps_its_layout_and_no_character(self, raw: str, masked: str) -> None:
        assert mask_id(raw) == masked

    def test_address_is_reduced_to_its_city(self) -> None:
        full = {"line1": "Main St 1", "line2": "Flat 2", "postalCode": "10115", "city": "Berlin", "country": "DE"}
        assert mask_address(full) == {"city": "Berlin"}

    def test_address_object_is_reduced_to_its_city(self) -> None:
        from dataclasses import dataclass

        @dataclass
        class Address:
            line1: str | None = None
            postal_code: str | None = None
            city: str | None = None

        assert mask_address(Address("Main St 1", "10115", "Berlin")) == Address(city="Berlin")

    def test_amount_is_reduced_to_its_magnitude(self) -> None:
        from decimal import Decimal

        from authz.masking import mask_magnitude

        assert mask_magnitude(Decimal("12345.67")) == Decimal(10000)
        assert mask_magnitude(Decimal("999.99")) == Decimal(100)

    def test_birth_date_is_reduced_to_its_year(self) -> None:
        assert mask_birth_date(dt.date(1990, 5, 17)) == "1990"
        assert mask_birth_date("1990-05-17") == "1990"

    def test_free_text_is_redacted_with_its_length(self) -> None:
        assert mask_text("my card number is 1234") == "[redacted: 22 characters]"
