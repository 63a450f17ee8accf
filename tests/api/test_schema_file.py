"""The public contract: schema.graphql at the repository root is the schema the code builds, and every
field of every object type is classified in the field catalogue (authz/catalogue.py)."""

from __future__ import annotations

import difflib
from pathlib import Path

from graphql import GraphQLInterfaceType, GraphQLObjectType

from api.graphql.schema import build_schema
from authz.catalogue import CATALOGUE, Sensitivity, classification
from authz.masking import MASKS

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
REGENERATE = ".venv/bin/tierwise schema > schema.graphql"


def _normalised(sdl: str) -> str:
    return "\n".join(line.rstrip() for line in sdl.strip().splitlines())


def test_schema_file_is_the_schema_the_code_builds() -> None:
    assert SCHEMA_FILE.exists(), f"schema.graphql is missing: run `{REGENERATE}` at the repository root"
    built = _normalised(str(build_schema()))
    stored = _normalised(SCHEMA_FILE.read_text(encoding="utf-8"))
    if built != stored:
        diff = "\n".join(
            difflib.unified_diff(
                stored.splitlines(), built.splitlines(), "schema.graphql", "build_schema()", lineterm="", n=2
            )
        )
        raise AssertionError(
            "schema.graphql is out of date with the code. If the change is intended (API.md: add freely, "
            f"deprecate before removing or renaming), regenerate it with `{REGENERATE}` and commit it.\n{diff}"
        )


def _object_types() -> dict[str, GraphQLObjectType]:
    schema = build_schema()._schema
    return {
        name: t for name, t in schema.type_map.items() if not name.startswith("__") and isinstance(t, GraphQLObjectType)
    }


def test_every_field_of_every_object_type_is_classified() -> None:
    types = _object_types()
    assert {"Query", "Mutation", "Customer", "CustomerMetrics", "Complaint", "SurveyAnswer"} <= set(types)
    missing = [
        f"{name}.{field}" for name, t in types.items() for field in t.fields if classification(name, field) is None
    ]
    assert not missing, f"add these fields to authz/catalogue.py with a sensitivity: {missing}"


def test_every_sensitive_field_has_a_mask_and_customer_contact_data_is_sensitive() -> None:
    for key, spec in CATALOGUE.items():
        if spec.sensitivity is Sensitivity.SENSITIVE:
            assert spec.mask in MASKS, f"{key}: sensitive fields need a mask from authz.masking.MASKS"
        else:
            assert spec.mask is None, key
    for key in (
        "Customer.email",
        "Customer.phone",
        "Customer.nationalId",
        "Customer.birthDate",
        "Customer.address",
        "CustomerMetrics.lifetimeSpend",
        "Complaint.description",
    ):
        assert CATALOGUE[key].sensitivity is Sensitivity.SENSITIVE, key


def test_the_catalogue_names_only_fields_that_exist() -> None:
    schema = build_schema()._schema
    stale = []
    for key in CATALOGUE:
        type_name, field = key.split(".", 1)
        t = schema.type_map.get(type_name)
        if not isinstance(t, GraphQLObjectType | GraphQLInterfaceType) or field not in t.fields:
            stale.append(key)
    assert not stale, f"the catalogue classifies fields the schema does not have: {stale}"


def test_the_tiers_plain_benefit_labels_are_deprecated_for_the_catalogue() -> None:
    """Issue 15: the benefit catalogue replaces the tiers' plain strings; they stay, deprecated with a reason."""
    schema = build_schema()._schema
    fields = [
        schema.type_map["Tier"].fields["benefits"],  # type: ignore[attr-defined]
        schema.type_map["TierRule"].fields["benefits"],  # type: ignore[attr-defined]
        schema.type_map["TierInput"].fields["benefits"],  # type: ignore[attr-defined]
    ]
    assert all("benefitCatalogue" in (f.deprecation_reason or "") for f in fields)
