"""What the web console (issue 14) needed of the API, over GraphQL on a real database: a CONSENTED grant
(``READ_IF_CONSENTED``) set and explained like the others; the audit log's end time (``until``); a partner
token's last use; and "view as role" (``X-Tierwise-View-As``): an admin reads as the role reads — masked
where it is masked, refused where it is refused — changes nothing through it, and nobody sees more
through another role than they see themselves."""

from __future__ import annotations

import datetime as dt

from tests.api.helpers import create_customer, error_codes, ok, payload
from tests.conftest import Api

MATRIX = "{ accessMatrix { roles rows { field decisions consentChannel } } }"
AUDIT = """query($f: AuditFilter) { auditLog(first: 50, filter: $f) { edges { node { at action after } } } }"""
TOKENS = "{ apiTokens { id name lastUsedAt revokedAt expiresAt scopes } }"


def _cell(matrix: dict, field: str, role: str) -> str:  # type: ignore[type-arg]
    row = next(r for r in matrix["rows"] if r["field"] == field)
    return str(row["decisions"][matrix["roles"].index(role)])


async def test_a_consented_read_is_granted_explained_and_revoked_over_graphql(api: Api) -> None:
    admin = await api.user("alice", "admin")
    grant = """mutation($a: AccessAction!) { grantAccess(role: "support_agent", object: "Customer.phone",
      action: $a) { ok userErrors { message } } }"""
    assert _cell((await api.gql(admin, MATRIX))["data"]["accessMatrix"], "Customer.phone", "support_agent") == "MASKED"
    assert ok(await api.gql(admin, grant, {"a": "READ_IF_CONSENTED"}), "grantAccess")["ok"] is True
    matrix = (await api.gql(admin, MATRIX))["data"]["accessMatrix"]
    assert _cell(matrix, "Customer.phone", "support_agent") == "CONSENTED"
    channels = {r["field"]: r["consentChannel"] for r in matrix["rows"]}
    assert (channels["Customer.phone"], channels["Customer.email"], channels["Customer.name"]) == (
        "phone",
        "email",
        None,
    )

    explained = await api.gql(
        admin,
        '{ explainAccess(subject: "role:support_agent", field: "Customer.phone", action: READ_IF_CONSENTED) '
        "{ allowed decision rules action } }",
    )
    e = explained["data"]["explainAccess"]
    assert (e["allowed"], e["decision"], e["action"]) == (True, "CONSENTED", "read_if_consented")
    assert e["rules"] == ["role:support_agent, Customer.phone, read_if_consented, allow"]

    # the agent reads the phone of a customer who consented to phone contact, and no other
    bob = await api.user("bob", "support_agent")
    yes = await create_customer(api, admin, name="Ada Yes", phone="+4930111222")
    no = await create_customer(api, admin, name="Bo No", phone="+4930333444")
    consent = """mutation($c: ID!) { setCustomerConsent(customerId: $c, channel: PHONE, given: true) {
      changed userErrors { message } } }"""
    assert ok(await api.gql(admin, consent, {"c": yes["id"]}), "setCustomerConsent")["changed"] is True
    read = "query($id: ID!) { customer(id: $id) { name phone } }"
    assert (await api.gql(bob, read, {"id": yes["id"]}))["data"]["customer"]["phone"] == "+4930111222"
    refused = await api.gql(bob, read, {"id": no["id"]})
    assert refused["data"]["customer"] == {"name": "Bo No", "phone": None}
    assert error_codes(refused) == ["FORBIDDEN_FIELD"]

    revoke = """mutation { revokeAccess(role: "support_agent", object: "Customer.phone", action: READ_IF_CONSENTED)
      { ok } }"""
    assert payload(await api.gql(admin, revoke), "revokeAccess")["ok"] is True
    assert _cell((await api.gql(admin, MATRIX))["data"]["accessMatrix"], "Customer.phone", "support_agent") == "MASKED"


async def test_the_audit_log_ends_at_until(api: Api) -> None:
    admin = await api.user("alice", "admin")
    for role in ("first_role", "second_role"):
        assert ok(
            await api.gql(admin, f'mutation {{ createRole(name: "{role}") {{ ok userErrors {{ message }} }} }}'),
            "createRole",
        )
    created = [
        e["node"] for e in (await api.gql(admin, AUDIT, {"f": {"action": "role.create"}}))["data"]["auditLog"]["edges"]
    ]
    assert [n["after"]["role"] for n in created] == ["second_role", "first_role"]  # newest first
    second_at = created[0]["at"]
    until = await api.gql(admin, AUDIT, {"f": {"action": "role.create", "until": second_at}})
    assert [e["node"]["after"]["role"] for e in until["data"]["auditLog"]["edges"]] == ["first_role"]
    window = await api.gql(admin, AUDIT, {"f": {"action": "role.create", "since": second_at, "until": second_at}})
    assert window["data"]["auditLog"]["edges"] == []  # since inclusive, until exclusive
    later = (dt.datetime.fromisoformat(second_at) + dt.timedelta(microseconds=1)).isoformat()
    both = await api.gql(admin, AUDIT, {"f": {"action": "role.create", "since": second_at, "until": later}})
    assert [e["node"]["after"]["role"] for e in both["data"]["auditLog"]["edges"]] == ["second_role"]


async def test_a_partner_token_shows_when_it_was_last_used(api: Api) -> None:
    admin = await api.user("alice", "admin")
    created = ok(
        await api.gql(
            admin,
            """mutation { createPartnerToken(partner: "Northwind Shop", name: "sync", scopes: ["read:Customer.*"],
              expiresAt: "2099-01-01T00:00:00Z") { token apiToken { id lastUsedAt scopes expiresAt } userErrors { message } } }""",
        ),
        "createPartnerToken",
    )
    token, token_id = created["token"], created["apiToken"]["id"]
    assert created["apiToken"]["lastUsedAt"] is None
    assert created["apiToken"]["scopes"] == ["read:Customer.*"]

    def listed(body: dict) -> dict:  # type: ignore[type-arg]
        return next(t for t in body["data"]["apiTokens"] if t["id"] == token_id)

    assert listed(await api.gql(admin, TOKENS))["lastUsedAt"] is None
    before = dt.datetime.now(dt.UTC)
    assert (await api.gql(token, "{ customers(first: 1) { edges { node { id } } } }"))["_status"] == 200
    used = listed(await api.gql(admin, TOKENS))["lastUsedAt"]
    assert used is not None
    assert before - dt.timedelta(seconds=5) <= dt.datetime.fromisoformat(used) <= dt.datetime.now(dt.UTC)
    # within the minute another use writes nothing; a wrong secret never counts as a use
    await api.gql(token, "{ customers(first: 1) { edges { node { id } } } }")
    assert listed(await api.gql(admin, TOKENS))["lastUsedAt"] == used
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    assert (await api.gql(forged, "{ viewer { subject } }"))["_status"] == 401

    revoked = await api.gql(admin, "mutation($id: ID!) { revokePartnerToken(id: $id) { ok } }", {"id": token_id})
    assert revoked["data"]["revokePartnerToken"]["ok"] is True
    assert listed(await api.gql(admin, TOKENS))["revokedAt"] is not None
    assert (await api.gql(token, "{ viewer { subject } }"))["_status"] == 401


VIEW_AS = {"X-Tierwise-View-As": "support_agent"}


async def test_view_as_a_role_reads_as_the_role_and_changes_nothing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    await create_customer(api, admin, name="Ivo Cole", email="ivo@cole.example", phone="+4930111222")
    viewer = await api.gql(admin, "{ viewer { subject roles viewingAs } }", **VIEW_AS)
    assert viewer["data"]["viewer"] == {
        "subject": "user:alice",
        "roles": ["support_agent"],
        "viewingAs": "support_agent",
    }
    own = await api.gql(admin, "{ viewer { roles viewingAs } }")
    assert own["data"]["viewer"] == {"roles": ["admin"], "viewingAs": None}

    # the same query, the role's answer: masked where the role reads masked, refused where it is refused
    query = "{ customers(first: 5) { edges { node { name email phone nationalId } } } }"
    full = (await api.gql(admin, query))["data"]["customers"]["edges"][0]["node"]
    assert full["email"] == "ivo@cole.example"
    seen = await api.gql(admin, query, **VIEW_AS)
    node = seen["data"]["customers"]["edges"][0]["node"]
    assert node["name"] == "Ivo Cole"
    assert node["email"] == "***@***.example"
    assert node["phone"] == "+49******22"
    assert node["nationalId"] is None
    assert set(error_codes(seen)) == {"FORBIDDEN_FIELD"}
    fields = await api.gql(admin, '{ viewer { fieldAccess(type: "Customer") { field access } } }', **VIEW_AS)
    access = {f["field"]: f["access"] for f in fields["data"]["viewer"]["fieldAccess"]}
    assert (access["Customer.email"], access["Customer.nationalId"]) == ("MASKED", "DENIED")

    # read-only: a change the role (and the admin) could make is refused through the view
    change = await api.gql(admin, 'mutation { createRole(name: "through_view") { ok } }', **VIEW_AS)
    assert error_codes(change) == ["FORBIDDEN"]
    open_complaint = await api.gql(
        admin, 'mutation { addComplaintNote(input: {id: "x", note: "n"}) { userErrors { message } } }', **VIEW_AS
    )
    assert error_codes(open_complaint) == ["FORBIDDEN"]
    roles = (await api.gql(admin, "{ roles { name } }"))["data"]["roles"]
    assert "through_view" not in [r["name"] for r in roles]


async def test_view_as_is_refused_to_whoever_would_see_more_through_it(api: Api) -> None:
    admin = await api.user("alice", "admin")
    bob = await api.user("bob", "support_agent")
    refused = await api.gql(bob, "{ viewer { roles } }", **VIEW_AS)
    assert refused["_status"] == 401
    assert "Query.accessMatrix" in refused["errors"][0]["message"]

    # carol may read the matrix but not e-mails: viewing as a support agent would show her masked e-mails
    assert ok(
        await api.gql(admin, 'mutation { createRole(name: "matrix_reader") { ok userErrors { message } } }'),
        "createRole",
    )
    grant = 'mutation { grantAccess(role: "matrix_reader", object: "Query.accessMatrix", action: READ) { ok } }'
    assert payload(await api.gql(admin, grant), "grantAccess")["ok"] is True
    carol = await api.user("carol", "matrix_reader")
    assert "FORBIDDEN" not in error_codes(await api.gql(carol, "{ accessMatrix { policyVersion } }"))
    wider = await api.gql(carol, "{ viewer { roles } }", **VIEW_AS)
    assert wider["_status"] == 401
    assert "reads what you may not" in wider["errors"][0]["message"]
    # a role that reads less than she does is fine
    assert (await api.gql(carol, "{ viewer { roles viewingAs } }", **{"X-Tierwise-View-As": "matrix_reader"}))["data"][
        "viewer"
    ] == {"roles": ["matrix_reader"], "viewingAs": "matrix_reader"}

    partner, _ = await api.partner_token()
    assert (await api.gql(partner, "{ viewer { roles } }", **VIEW_AS))["_status"] == 401
    assert (await api.gql(admin, "{ viewer { roles } }", **{"X-Tierwise-View-As": "Not A Role"}))["_status"] == 401
