"""``accessMatrix`` (the console's role x field matrix, issue 14): one row for every field of the catalogue,
one decision for every role, each the decision ``explainAccess`` gives for ``role:<name>`` (the same engine,
after inheritance and deny-overrides); a grant changes its cell at once; anyone but an admin is refused,
partner tokens whatever their scopes or role."""

from __future__ import annotations

from authz.catalogue import CATALOGUE
from tests.conftest import Api

MATRIX = "{ accessMatrix { roles policyVersion rows { field typeName fieldName sensitivity decisions } } }"


def _cell(matrix: dict, field: str, role: str) -> str:  # type: ignore[type-arg]
    row = next(r for r in matrix["rows"] if r["field"] == field)
    return str(row["decisions"][matrix["roles"].index(role)])


async def test_every_catalogue_field_and_role_as_explain_access_decides(api: Api) -> None:
    admin = await api.user("alice", "admin")
    matrix = (await api.gql(admin, MATRIX))["data"]["accessMatrix"]
    assert {"admin", "support_agent", "analyst", "marketing", "partner"} <= set(matrix["roles"])
    assert sorted(r["field"] for r in matrix["rows"]) == sorted(CATALOGUE)
    for row in matrix["rows"]:
        spec = CATALOGUE[row["field"]]
        assert (row["typeName"], row["fieldName"], row["sensitivity"]) == (
            spec.type_name,
            spec.field_name,
            spec.sensitivity.value,
        )
        assert len(row["decisions"]) == len(matrix["roles"])
        assert set(row["decisions"]) <= {"FULL", "CONSENTED", "MASKED", "DENIED"}
    # grouped: by type, then sensitive before internal before public
    keys = [(r["typeName"], ["sensitive", "internal", "public"].index(r["sensitivity"])) for r in matrix["rows"]]
    assert keys == sorted(keys)

    # each cell is explainAccess's decision for the role alone (a sample across types and sensitivities)
    sample = ["Customer.email", "Customer.phone", "Customer.name", "Customer.nationalId", "Complaint.description"]
    for role in matrix["roles"]:
        for field in sample:
            explained = await api.gql(
                admin, f'{{ explainAccess(subject: "role:{role}", field: "{field}") {{ decision }} }}'
            )
            assert _cell(matrix, field, role) == explained["data"]["explainAccess"]["decision"], (role, field)
    assert _cell(matrix, "Customer.email", "support_agent") == "MASKED"
    assert _cell(matrix, "Customer.email", "admin") == "FULL"


async def test_a_grant_changes_the_cell_at_once(api: Api) -> None:
    admin = await api.user("alice", "admin")
    before = (await api.gql(admin, MATRIX))["data"]["accessMatrix"]
    assert _cell(before, "Customer.nationalId", "support_agent") == "DENIED"
    granted = await api.gql(
        admin,
        'mutation { grantAccess(role: "support_agent", object: "Customer.nationalId", action: READ) '
        "{ ok policyVersion } }",
    )
    assert granted["data"]["grantAccess"]["ok"] is True
    after = (await api.gql(admin, MATRIX))["data"]["accessMatrix"]
    assert after["policyVersion"] == granted["data"]["grantAccess"]["policyVersion"] > before["policyVersion"]
    assert _cell(after, "Customer.nationalId", "support_agent") == "FULL"


async def test_refused_to_other_roles_and_to_partner_tokens(api: Api) -> None:
    bob = await api.user("bob", "support_agent")
    carol = await api.user("carol", "analyst")
    partner, _ = await api.partner_token(scopes=("read:*", "write:*"))
    admin_partner, _ = await api.forced_partner_token("Admin Shop", "admin")  # (refused at creation otherwise)
    for token in (bob, carol, partner, admin_partner):
        body = await api.gql(token, MATRIX)
        assert body["data"]["accessMatrix"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
