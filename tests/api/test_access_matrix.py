"""Role x field matrix (issue 3): every default role and a partner token get exactly what API.md's role
table promises — FULL, MASKED or DENIED — through every path of the schema that reaches a customer
or a complaint: lists, single objects, ``node``, nested relations both ways, aliases, named and inline
fragments and mutation payloads. Masked and denied values never appear in plaintext anywhere in the
raw response. ``viewer.fieldAccess`` says the same as what the queries return.

The expected levels below are written from API.md, not read from the policy: a change of the default
grants that widens what a role sees fails here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.api.security_helpers import (
    ADA,
    DENIED,
    FULL,
    MASKED,
    PAULA,
    READ_PATHS,
    SURVEY_TEXT,
    Seed,
    World,
    assert_denied_at,
    assert_forbidden_operation,
    assert_no_plaintext,
    at,
    codes,
    errors_at,
    index_of,
    ok,
    world_on_read_path,
)

ROLES = ("admin", "support_agent", "analyst", "marketing", "partner")

_ALL_KEYS = (
    "Query.customers",
    "Query.customer",
    "Query.complaints",
    "Query.complaint",
    "Query.survey",
    "Customer.name",
    "Customer.email",
    "Customer.phone",
    "Customer.nationalId",
    "Customer.birthDate",
    "Customer.address",
    "Customer.tier",
    "Customer.metrics",
    "Customer.complaints",
    "Customer.purchases",
    "Customer.surveyResponses",
    "Customer.tierHistory",
    "CustomerMetrics.spend12m",
    "CustomerMetrics.lifetimeSpend",
    "CustomerMetrics.orders12m",
    "Complaint.customer",
    "Complaint.description",
    "Purchase.customer",
    "SurveyResponse.customer",
    "SurveyAnswer.text",
)


CONSENTED = "CONSENTED"  # in full where the customer consented on the field's channel (only Ada did)


def levels_for(who: str, seed: Seed) -> dict[str, str]:
    """The expected levels for reading ``seed``'s customer: CONSENTED resolves per customer."""
    consented = seed is ADA
    return {k: (FULL if consented else DENIED) if v == CONSENTED else v for k, v in EXPECTED[who].items()}


def _levels(default: str, **given: str) -> dict[str, str]:
    out = dict.fromkeys(_ALL_KEYS, default)
    out.update({k.replace("__", "."): v for k, v in given.items()})
    return out


# API.md, "Roles shipped by default".
EXPECTED: dict[str, dict[str, str]] = {
    # everything
    "admin": _levels(FULL),
    # name, tier, contact fields masked, no national id, no spend figures; complaints / surveys in full
    "support_agent": _levels(
        FULL,
        Customer__email=MASKED,
        Customer__phone=MASKED,
        Customer__birthDate=MASKED,
        Customer__address=MASKED,
        Customer__nationalId=DENIED,
        CustomerMetrics__spend12m=DENIED,
        CustomerMetrics__lifetimeSpend=DENIED,
    ),
    # tier, metrics, aggregates; no name, no contact fields, no national id; complaints without free text
    "analyst": _levels(
        FULL,
        Customer__name=DENIED,
        Customer__email=DENIED,
        Customer__phone=DENIED,
        Customer__nationalId=DENIED,
        Customer__birthDate=DENIED,
        Customer__address=DENIED,
        Complaint__description=DENIED,
        SurveyAnswer__text=DENIED,
    ),
    # name, tier, metrics, e-mail (where consented: Ada consented), survey results; no complaints
    "marketing": _levels(
        DENIED,
        Query__customers=FULL,
        Query__customer=FULL,
        Query__survey=FULL,
        Customer__name=FULL,
        Customer__email=CONSENTED,
        Customer__tier=FULL,
        Customer__metrics=FULL,
        CustomerMetrics__spend12m=FULL,
        CustomerMetrics__lifetimeSpend=FULL,
        CustomerMetrics__orders12m=FULL,
        Customer__surveyResponses=FULL,
        SurveyResponse__customer=FULL,
        SurveyAnswer__text=FULL,
    ),
    # only its own customers: name and tier; the complaints it opens
    "partner": _levels(
        DENIED,
        Query__customers=FULL,
        Query__customer=FULL,
        Query__complaints=FULL,
        Query__complaint=FULL,
        Query__survey=FULL,
        Customer__name=FULL,
        Customer__tier=FULL,
        Customer__complaints=FULL,
        Complaint__customer=FULL,
        Customer__purchases=FULL,
        Purchase__customer=FULL,
        Complaint__description=FULL,
    ),
}

SEL = """id name email phone nationalId birthDate address { line1 line2 postalCode city }
         tier { code } metrics { spend12m lifetimeSpend orders12m }"""


def with_sel(query: str) -> str:
    """The query with ``<SEL>`` replaced by the customer selection."""
    return query.replace("<SEL>", SEL)


CUSTOMER_FIELDS = ("name", "email", "phone", "nationalId", "birthDate", "address", "tier", "metrics")
METRIC_FIELDS = ("spend12m", "lifetimeSpend", "orders12m")


@pytest.fixture(scope="module", params=READ_PATHS)
async def world(template_db: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Every test on both read paths: the compiled one and strawberry's."""
    async with world_on_read_path(template_db, request.param) as w:
        yield w


def target(w: World, who: str) -> str:
    """The customer each caller reads: the unowned Ada for staff, its own Paula for partner A."""
    return w.paula if who == "partner" else w.ada


# ---------------------------------------------------------------- value checks


def check_value(name: str, level: str, value: Any, seed: Seed) -> None:
    assert level in (FULL, MASKED), (name, level)
    inp = seed.input
    if name == "name":
        assert level == FULL
        assert value == seed.name
    elif name == "email":
        tld = seed.email.rpartition(".")[2]  # masked (issue 17): only the shape and the top-level domain
        assert value == (seed.email if level == FULL else f"***@***.{tld}"), value
    elif name == "phone":
        if level == FULL:
            assert value == seed.phone_e164
        else:  # same length, country code and last two kept, the rest starred (issue 17)
            assert value != seed.phone_e164, value
            assert len(value) == len(seed.phone_e164), value
            assert value[-2:] == seed.phone_e164[-2:], value
            assert set(value[3:-2]) == {"*"}, value
    elif name == "nationalId":
        if level == FULL:
            assert value == inp["nationalId"]
        else:  # its layout only (issue 17)
            assert value == "".join("*" if ch.isalnum() else ch for ch in inp["nationalId"]), value
    elif name == "birthDate":
        assert value == (inp["birthDate"] if level == FULL else inp["birthDate"][:4]), value
    elif name == "address":
        a = seed.address
        if level == FULL:
            assert value == {
                "line1": a["line1"],
                "line2": a.get("line2"),
                "postalCode": a["postalCode"],
                "city": a["city"],
            }
        else:  # reduced to its city
            assert value == {"line1": None, "line2": None, "postalCode": None, "city": a["city"]}, value
    elif name == "tier":
        assert level == FULL
        assert value == {"code": seed.tier}
    elif name in ("spend12m", "lifetimeSpend"):
        assert level == FULL
        assert value == seed.spend
    elif name == "orders12m":
        assert level == FULL
        assert value == 1
    else:  # pragma: no cover
        raise AssertionError(name)


def check_customer(body: dict[str, Any], base: list[Any], levels: dict[str, str], seed: Seed) -> None:
    """Every field of the customer at ``base`` is as ``levels`` say; the rest of the object is intact."""
    node = at(body, base)
    assert isinstance(node, dict), (base, body)
    assert node["id"]
    for name in CUSTOMER_FIELDS:
        level = levels[f"Customer.{name}"]
        path = [*base, name]
        if level == DENIED:
            assert_denied_at(body, path)
        elif name == "metrics":
            assert not errors_at(body, path)
            for metric in METRIC_FIELDS:
                mlevel = levels[f"CustomerMetrics.{metric}"]
                if mlevel == DENIED:
                    assert_denied_at(body, [*path, metric])
                else:
                    check_value(metric, mlevel, node["metrics"][metric], seed)
        else:
            assert not errors_at(body, path), body["errors"]
            check_value(name, level, node[name], seed)


def forbidden_plaintexts(seed: Seed, levels: dict[str, str]) -> list[str]:
    """Plaintext values of every field the caller may not read in full (and no field it may)."""
    texts = seed.plaintexts()
    spend_full = levels["Customer.metrics"] == FULL and FULL in (
        levels["CustomerMetrics.spend12m"],
        levels["CustomerMetrics.lifetimeSpend"],
    )
    full = {"spend": spend_full, **{f: levels[f"Customer.{f}"] == FULL for f in texts if f != "spend"}}
    allowed = {t for f, ts in texts.items() if full[f] for t in ts}
    return [t for f, ts in texts.items() if not full[f] for t in ts if t not in allowed]


def check_gates(body: dict[str, Any], gates: list[tuple[str, Callable[[], list[Any]]]], levels: dict[str, str]) -> bool:
    """Walk the guarded fields on the way to the object; the first denied one must stop the path with
    its error. True when every gate is open."""
    for gate, path in gates:
        # "node:Query.x": node(id) opens a type only with the grant of its root query, else NOT_FOUND
        via_node, key = gate.startswith("node:"), gate.removeprefix("node:")
        if levels[key] == DENIED:
            if via_node:
                assert at(body, path()) is None, body
                assert codes(body) == ["NOT_FOUND"], body
            elif key.startswith("Query."):
                assert_forbidden_operation(body, path()[0])
            else:
                assert_denied_at(body, path())
            return False
        assert not errors_at(body, path()), (key, body.get("errors"))
    return True


# ---------------------------------------------------------------- every path to a customer

Gates = list[tuple[str, Callable[[], list[Any]]]]
PathResult = tuple[dict[str, Any], Gates, Callable[[], list[Any]]]


async def p_customers(w: World, who: str, cid: str) -> PathResult:
    body = await w.gql(who, with_sel("{ customers(first: 50) { edges { node { <SEL> } } } }"))
    return (
        body,
        [("Query.customers", lambda: ["customers"])],
        (lambda: ["customers", "edges", index_of(at(body, ["customers", "edges"]), cid), "node"]),
    )


async def p_customers_inline_fragment(w: World, who: str, cid: str) -> PathResult:
    query = with_sel("{ customers(first: 50) { edges { node { id ... on Customer { <SEL> } } } } }")
    body = await w.gql(who, query)
    return (
        body,
        [("Query.customers", lambda: ["customers"])],
        (lambda: ["customers", "edges", index_of(at(body, ["customers", "edges"]), cid), "node"]),
    )


async def p_customer(w: World, who: str, cid: str) -> PathResult:
    body = await w.gql(who, with_sel("query($id: ID!) { customer(id: $id) { <SEL> } }"), {"id": cid})
    return body, [("Query.customer", lambda: ["customer"])], lambda: ["customer"]


async def p_customer_named_fragment(w: World, who: str, cid: str) -> PathResult:
    query = with_sel("query($id: ID!) { customer(id: $id) { ...C } } fragment C on Customer { <SEL> }")
    body = await w.gql(who, query, {"id": cid})
    return body, [("Query.customer", lambda: ["customer"])], lambda: ["customer"]


async def p_node(w: World, who: str, cid: str) -> PathResult:
    query = with_sel("query($id: ID!) { node(id: $id) { id ... on Customer { <SEL> } } }")
    body = await w.gql(who, query, {"id": cid})
    return body, [("node:Query.customer", lambda: ["node"])], lambda: ["node"]


async def p_complaint_customer(w: World, who: str, cid: str) -> PathResult:
    complaint, _ = w.complaint_of(cid)
    query = with_sel("query($id: ID!) { complaint(id: $id) { id customer { <SEL> } } }")
    body = await w.gql(who, query, {"id": complaint})
    return (
        body,
        [("Query.complaint", lambda: ["complaint"]), ("Complaint.customer", lambda: ["complaint", "customer"])],
        (lambda: ["complaint", "customer"]),
    )


async def p_complaints_customer(w: World, who: str, cid: str) -> PathResult:
    complaint, _ = w.complaint_of(cid)
    body = await w.gql(who, with_sel("{ complaints(first: 50) { edges { node { id customer { <SEL> } } } } }"))

    def node() -> list[Any]:
        return ["complaints", "edges", index_of(at(body, ["complaints", "edges"]), complaint), "node"]

    return (
        body,
        [("Query.complaints", lambda: ["complaints"]), ("Complaint.customer", lambda: [*node(), "customer"])],
        (lambda: [*node(), "customer"]),
    )


async def p_node_complaint_customer(w: World, who: str, cid: str) -> PathResult:
    complaint, _ = w.complaint_of(cid)
    query = with_sel("query($id: ID!) { node(id: $id) { id ... on Complaint { customer { <SEL> } } } }")
    body = await w.gql(who, query, {"id": complaint})
    return (
        body,
        [("node:Query.complaint", lambda: ["node"]), ("Complaint.customer", lambda: ["node", "customer"])],
        (lambda: ["node", "customer"]),
    )


async def p_customer_complaints_customer(w: World, who: str, cid: str) -> PathResult:
    query = with_sel(
        "query($id: ID!) { customer(id: $id) { id complaints { edges { node { id customer { <SEL> } } } } } }"
    )
    body = await w.gql(who, query, {"id": cid})
    inner = ["customer", "complaints", "edges", 0, "node", "customer"]
    return (
        body,
        [
            ("Query.customer", lambda: ["customer"]),
            ("Customer.complaints", lambda: ["customer", "complaints"]),
            ("Complaint.customer", lambda: inner),
        ],
        lambda: inner,
    )


async def p_purchase_customer(w: World, who: str, cid: str) -> PathResult:
    query = with_sel(
        "query($id: ID!) { customer(id: $id) { id purchases { edges { node { id customer { <SEL> } } } } } }"
    )
    body = await w.gql(who, query, {"id": cid})
    inner = ["customer", "purchases", "edges", 0, "node", "customer"]
    return (
        body,
        [
            ("Query.customer", lambda: ["customer"]),
            ("Customer.purchases", lambda: ["customer", "purchases"]),
            ("Purchase.customer", lambda: inner),
        ],
        lambda: inner,
    )


async def p_survey_response_node(w: World, who: str, cid: str) -> PathResult:
    query = with_sel("query($id: ID!) { node(id: $id) { id ... on SurveyResponse { customer { <SEL> } } } }")
    body = await w.gql(who, query, {"id": w.paula_response})
    return (
        body,
        [("node:Query.survey", lambda: ["node"]), ("SurveyResponse.customer", lambda: ["node", "customer"])],
        (lambda: ["node", "customer"]),
    )


async def p_customer_survey_responses(w: World, who: str, cid: str) -> PathResult:
    query = with_sel(
        "query($id: ID!) { customer(id: $id) { id surveyResponses { edges { node { id customer { <SEL> } } } } } }"
    )
    body = await w.gql(who, query, {"id": w.paula})
    inner = ["customer", "surveyResponses", "edges", 0, "node", "customer"]
    return (
        body,
        [
            ("Query.customer", lambda: ["customer"]),
            ("Customer.surveyResponses", lambda: ["customer", "surveyResponses"]),
            ("SurveyResponse.customer", lambda: inner),
        ],
        lambda: inner,
    )


PATHS: dict[str, tuple[Callable[[World, str, str], Awaitable[PathResult]], bool]] = {
    # name: (path, reads Paula (the only survey response) instead of the caller's target)
    "customers": (p_customers, False),
    "customers/inline-fragment": (p_customers_inline_fragment, False),
    "customer(id)": (p_customer, False),
    "customer(id)/named-fragment": (p_customer_named_fragment, False),
    "node(id)": (p_node, False),
    "complaint(id).customer": (p_complaint_customer, False),
    "complaints.customer": (p_complaints_customer, False),
    "node(complaint).customer": (p_node_complaint_customer, False),
    "customer.complaints.customer": (p_customer_complaints_customer, False),
    "customer.purchases.customer": (p_purchase_customer, False),
    "node(surveyResponse).customer": (p_survey_response_node, True),
    "customer.surveyResponses.customer": (p_customer_survey_responses, True),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("who", ROLES)
async def test_customer_fields_through_every_path(world: World, who: str, path: str) -> None:
    run, reads_paula = PATHS[path]
    cid = world.paula if reads_paula else target(world, who)
    seed = world.seed_of(cid)
    levels = levels_for(who, seed)
    body, gates, base = await run(world, who, cid)
    assert body["_status"] == 200, body
    if check_gates(body, gates, levels):
        check_customer(body, base(), levels, seed)
        assert_no_plaintext(body, *forbidden_plaintexts(seed, levels))
    else:  # the path is closed before the customer: nothing of it comes back
        assert_no_plaintext(body, *[t for ts in seed.plaintexts().values() for t in ts])
    # no other code than the field/operation refusals (no INTERNAL, no NOT_FOUND for a visible object)
    assert set(codes(body)) <= {"FORBIDDEN_FIELD", "FORBIDDEN", "NOT_FOUND" if path.startswith("node") else ""}, body


@pytest.mark.parametrize("who", ROLES)
async def test_aliases_each_meet_the_same_decision(world: World, who: str) -> None:
    cid = target(world, who)
    seed = world.seed_of(cid)
    levels = levels_for(who, seed)
    query = """query($id: ID!) { customer(id: $id) { id a: phone b: phone x: email y: email n1: nationalId
               n2: nationalId who: name d1: birthDate } }"""
    body = await world.gql(who, query, {"id": cid})
    for alias, name in (
        ("a", "phone"),
        ("b", "phone"),
        ("x", "email"),
        ("y", "email"),
        ("n1", "nationalId"),
        ("n2", "nationalId"),
        ("who", "name"),
        ("d1", "birthDate"),
    ):
        level = levels[f"Customer.{name}"]
        if level == DENIED:
            assert_denied_at(body, ["customer", alias])
        else:
            check_value(name, level, body["data"]["customer"][alias], seed)
    assert_no_plaintext(body, *forbidden_plaintexts(seed, levels))


# ---------------------------------------------------------------- complaint free text

DESCRIPTION_PATHS = {
    "complaint(id)": (
        "query($c: ID!) { complaint(id: $c) { id description } }",
        [("Query.complaint", ["complaint"])],
        ["complaint", "description"],
    ),
    "complaint(id)/named-fragment": (
        "query($c: ID!) { complaint(id: $c) { ...K } } fragment K on Complaint { id description }",
        [("Query.complaint", ["complaint"])],
        ["complaint", "description"],
    ),
    "node(complaint)": (
        "query($c: ID!) { node(id: $c) { id ... on Complaint { description } } }",
        [("node:Query.complaint", ["node"])],
        ["node", "description"],
    ),
    "customer.complaints": (
        "query($id: ID!) { customer(id: $id) { id complaints { edges { node { id description } } } } }",
        [("Query.customer", ["customer"]), ("Customer.complaints", ["customer", "complaints"])],
        ["customer", "complaints", "edges", 0, "node", "description"],
    ),
}


@pytest.mark.parametrize("path", [*DESCRIPTION_PATHS, "complaints"])
@pytest.mark.parametrize("who", ROLES)
async def test_complaint_description_through_every_path(world: World, who: str, path: str) -> None:
    cid = target(world, who)
    complaint, text = world.complaint_of(cid)
    levels = levels_for(who, world.seed_of(cid))
    if path == "complaints":
        body = await world.gql(who, "{ complaints(first: 50) { edges { node { id description } } } }")
        gates: list[tuple[str, list[Any]]] = [("Query.complaints", ["complaints"])]
        edges = at(body, ["complaints", "edges"])
        field_path = ["complaints", "edges", index_of(edges, complaint), "node", "description"] if edges else []
    else:
        query, gates, field_path = DESCRIPTION_PATHS[path]
        body = await world.gql(who, query, {"c": complaint, "id": cid})
    opened = check_gates(body, [(k, lambda p=p: p) for k, p in gates], levels)  # type: ignore[misc]
    if opened and levels["Complaint.description"] == FULL:
        assert at(body, field_path) == text
    else:
        if opened:
            assert_denied_at(body, field_path)
        assert_no_plaintext(body, text)


async def test_survey_free_text_follows_the_role_table(world: World) -> None:
    query = "query($id: ID!) { node(id: $id) { id ... on SurveyResponse { answers { score text } } } }"
    for who in ("admin", "support_agent", "marketing"):
        body = await world.gql(who, query, {"id": world.paula_response})
        assert SURVEY_TEXT in [a["text"] for a in body["data"]["node"]["answers"]], (who, body)
    body = await world.gql("analyst", query, {"id": world.paula_response})
    assert body["data"]["node"]["answers"][0]["score"] == 9
    assert_denied_at(body, ["node", "answers", 1, "text"])
    assert_no_plaintext(body, SURVEY_TEXT)
    body = await world.gql("partner", query, {"id": world.paula_response})
    assert_denied_at(body, ["node", "answers"])
    assert_no_plaintext(body, SURVEY_TEXT)


# ---------------------------------------------------------------- spend figures embedded elsewhere


@pytest.mark.parametrize("who", ROLES)
async def test_tier_history_snapshot_carries_no_figure_the_role_may_not_read(world: World, who: str) -> None:
    """A tier change keeps the metrics that decided it (a JSON snapshot): a figure the caller may not read
    in full (support agents: no spend figures) must not come back through it."""
    cid = target(world, who)
    seed = world.seed_of(cid)
    levels = levels_for(who, seed)
    body = await world.gql(
        who,
        "query($id: ID!) { customer(id: $id) { id tierHistory { edges { node { toTier reason metrics } } } } }",
        {"id": cid},
    )
    if levels["Customer.tierHistory"] == DENIED:
        assert_denied_at(body, ["customer", "tierHistory"])
        return
    edges = body["data"]["customer"]["tierHistory"]["edges"]
    assert edges, body
    assert edges[0]["node"]["toTier"] == seed.tier  # newest first
    for edge in edges:  # the initial tier (at creation) and any change the purchase made
        metrics = edge["node"]["metrics"]
        assert metrics["orders_12m"] in (0, 1)
        if levels["CustomerMetrics.spend12m"] == FULL:
            assert metrics["spend_12m"] in (0, float(seed.spend))
        else:
            assert "spend_12m" not in metrics
        if levels["CustomerMetrics.lifetimeSpend"] != FULL:
            assert "lifetime_spend" not in metrics
    if levels["CustomerMetrics.spend12m"] != FULL and levels["CustomerMetrics.lifetimeSpend"] != FULL:
        assert_no_plaintext(body, *seed.plaintexts()["spend"])


# ---------------------------------------------------------------- mutation payloads

MUTABLE = {
    "name": "Max Mutabilis",
    "email": "max.mutabilis@example.org",
    "phone": "+49 30 99887766",
    "nationalId": "MX-ID-1234567890",
    "birthDate": "1970-01-31",
    "address": {"line1": "Kurfuerstendamm 200", "postalCode": "10719", "city": "Berlin", "country": "DE"},
}
MUTABLE_SECRETS = (
    "max.mutabilis@example.org",
    "+493099887766",
    "MX-ID-1234567890",
    "1970-01-31",
    "Kurfuerstendamm 200",
    "10719",
)


async def _mutable_customer(world: World) -> dict[str, Any]:
    created = await world.gql(
        "admin",
        """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
        customer { id version name email phone nationalId } userErrors { field code message } } }""",
        {"input": MUTABLE},
    )
    customer = ok(created, "createCustomer")["customer"]
    assert customer["phone"] == "+493099887766"
    assert customer["nationalId"] == "MX-ID-1234567890"
    return customer


async def test_update_payload_is_guarded_like_a_query(world: World) -> None:
    customer = await _mutable_customer(world)
    body = await world.gql(
        "support_agent",
        """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
        customer { id name email phone nationalId birthDate address { line1 postalCode city } }
        userErrors { field code message } } }""",
        {"input": {"id": customer["id"], "expectedVersion": customer["version"], "name": "Max M. Mutabilis"}},
    )
    payload = body["data"]["updateCustomer"]
    assert payload["userErrors"] == []
    got = payload["customer"]
    assert got["name"] == "Max M. Mutabilis"
    assert got["email"] == "***@***.org"
    assert got["phone"] == "+49********66"
    assert "*" in got["phone"]
    assert got["birthDate"] == "1970"
    assert got["address"] == {"line1": None, "postalCode": None, "city": "Berlin"}
    assert_denied_at(body, ["updateCustomer", "customer", "nationalId"])
    assert_no_plaintext(body, *MUTABLE_SECRETS)


async def test_open_complaint_payload_is_guarded_like_a_query(world: World) -> None:
    customer = await _mutable_customer(world)
    body = await world.gql(
        "support_agent",
        """mutation($input: OpenComplaintInput!) { openComplaint(input: $input) {
        complaint { id description customer { id name phone nationalId metrics { spend12m orders12m } } }
        userErrors { field code message } } }""",
        {
            "input": {
                "customerId": customer["id"],
                "subject": "Call back",
                "description": "Call me",
                "category": "service",
                "severity": "LOW",
                "channel": "PHONE",
            }
        },
    )
    complaint = body["data"]["openComplaint"]["complaint"]
    assert complaint["description"] == "Call me"
    assert complaint["customer"]["name"] == "Max Mutabilis"
    assert complaint["customer"]["phone"] == "+49********66"
    assert "*" in complaint["customer"]["phone"]
    assert_denied_at(body, ["openComplaint", "complaint", "customer", "nationalId"])
    assert_denied_at(body, ["openComplaint", "complaint", "customer", "metrics", "spend12m"])
    assert_no_plaintext(body, *MUTABLE_SECRETS)


async def test_partner_create_payload_gives_back_only_name_and_tier(world: World) -> None:
    inp = {**MUTABLE, "externalRef": "nw-payload-1"}
    body = await world.gql(
        "partner",
        """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
        customer { id name email phone nationalId birthDate address { city } metrics { orders12m } }
        userErrors { field code message } } }""",
        {"input": inp},
    )
    payload = body["data"]["createCustomer"]
    assert payload["userErrors"] == []
    assert payload["customer"]["name"] == "Max Mutabilis"
    for name in ("email", "phone", "nationalId", "birthDate", "address", "metrics"):
        assert_denied_at(body, ["createCustomer", "customer", name])
    assert_no_plaintext(body, *MUTABLE_SECRETS)


# ---------------------------------------------------------------- FORBIDDEN_ARGUMENT


@pytest.mark.parametrize(
    ("who", "args"),
    [
        ("support_agent", 'filter: {email: "ada.quintessa@example.org"}'),
        ("support_agent", 'filter: {email: "nobody@example.org"}'),
        ("support_agent", 'filter: {phone: "+49 30 12345678"}'),
        ("support_agent", "orderBy: LIFETIME_SPEND_DESC"),
        ("support_agent", "orderBy: SPEND_12M_DESC"),
        ("support_agent", 'filter: {minSpend12m: "1000"}'),
        ("analyst", 'filter: {nameContains: "Ada"}'),
        ("analyst", "orderBy: NAME"),
        ("analyst", 'filter: {email: "ada.quintessa@example.org"}'),
        ("marketing", 'filter: {phone: "+49 30 12345678"}'),
        ("partner", 'filter: {email: "paula.kundin@example.net"}'),
        ("partner", "orderBy: SPEND_12M_DESC"),
    ],
)
async def test_filter_or_sort_on_a_field_not_readable_in_full_is_refused(world: World, who: str, args: str) -> None:
    body = await world.gql(who, "{ customers(first: 10, " + args + ") { totalCount edges { cursor node { id } } } }")
    assert body["_status"] == 200
    assert codes(body) == ["FORBIDDEN_ARGUMENT"], body
    assert (body.get("data") or {}).get("customers") is None, body
    # the answer is the same whether anything matches: no oracle on the hidden value
    assert "ada" not in str(body.get("data")).lower()


@pytest.mark.parametrize(
    ("args", "first_name"),
    [
        ('filter: {email: "Ada.Quintessa@example.org"}', ADA.name),
        ('filter: {phone: "+49 30 12345678"}', ADA.name),
        ("orderBy: LIFETIME_SPEND_DESC", ADA.name),
        ("orderBy: SPEND_12M_DESC", ADA.name),
        ('filter: {nameContains: "Northwind"}', PAULA.name),
    ],
)
async def test_admin_may_filter_and_sort_on_sensitive_fields(world: World, args: str, first_name: str) -> None:
    body = await world.gql("admin", "{ customers(first: 10, " + args + ") { edges { node { name } } } }")
    assert not body.get("errors"), body
    assert body["data"]["customers"]["edges"][0]["node"]["name"] == first_name


# ---------------------------------------------------------------- viewer.fieldAccess


@pytest.mark.parametrize("who", ROLES)
async def test_viewer_field_access_agrees_with_what_queries_return(world: World, who: str) -> None:
    levels = EXPECTED[who]
    viewer = await world.gql(who, "{ viewer { subject fieldAccess { field access } } }")
    access = {a["field"]: a["access"] for a in viewer["data"]["viewer"]["fieldAccess"]}
    # 1. what API.md promises
    for key, level in levels.items():
        if not key.startswith("Query."):
            assert access[key] == level, (who, key, access[key], level)
    # 2. what a query actually returns, field by field
    cid = target(world, who)
    seed = world.seed_of(cid)
    body = await world.gql(who, with_sel("query($id: ID!) { customer(id: $id) { <SEL> } }"), {"id": cid})
    plain = {
        "name": seed.name,
        "email": seed.email,
        "phone": seed.phone_e164,
        "nationalId": seed.input["nationalId"],
        "birthDate": seed.input["birthDate"],
    }
    for name, plaintext in plain.items():
        value = body["data"]["customer"][name]
        if errors_at(body, ["customer", name]):
            observed = DENIED
        else:
            observed = FULL if value == plaintext else MASKED
            assert value is not None
        promised = access[f"Customer.{name}"]
        if promised == CONSENTED:  # what the reader gets depends on the customer's consent
            promised = levels_for(who, seed)[f"Customer.{name}"]
        assert promised == observed, (who, name, value)
    if access["Customer.metrics"] == DENIED:
        assert_denied_at(body, ["customer", "metrics"])
    else:
        for metric in ("spend12m", "lifetimeSpend"):
            denied = bool(errors_at(body, ["customer", "metrics", metric]))
            assert (access[f"CustomerMetrics.{metric}"] == DENIED) == denied, (who, metric)


# ---------------------------------------------------------------- known gaps (strict: fixing them turns these red)


async def test_marketing_gets_no_email_of_a_customer_without_consent(world: World) -> None:
    body = await world.gql(
        "marketing", "query($id: ID!) { customer(id: $id) { id name email } }", {"id": world.paula}
    )  # Paula never consented
    assert body["data"]["customer"]["name"] == PAULA.name
    assert body["data"]["customer"]["email"] is None
    assert_no_plaintext(body, PAULA.email)


async def test_masked_phone_hides_at_least_four_digits(world: World) -> None:
    body = await world.gql("support_agent", "query($id: ID!) { customer(id: $id) { phone } }", {"id": world.ada})
    assert body["data"]["customer"]["phone"].count("*") >= 4, body


@pytest.mark.parametrize(("who", "kind"), [("marketing", "Complaint"), ("nobody", "Customer"), ("nobody", "Complaint")])
async def test_node_does_not_open_a_type_whose_query_the_caller_may_not_use(world: World, who: str, kind: str) -> None:
    if who not in world.tokens:
        world.tokens[who] = await world.api.user("eve")  # a valid staff JWT, no role assigned
    object_id = world.ada if kind == "Customer" else world.ada_complaint
    single = kind[0].lower() + kind[1:]
    denied = await world.gql(who, "query($id: ID!) { " + single + "(id: $id) { id } }", {"id": object_id})
    assert_forbidden_operation(denied, single)
    body = await world.gql(
        who, "query($id: ID!) { node(id: $id) { id ... on " + kind + " { version } } }", {"id": object_id}
    )
    assert body["data"] is None or body["data"]["node"] is None, body
    assert codes(body) in (["NOT_FOUND"], ["FORBIDDEN"]), body


async def test_analysts_get_no_complaint_free_text_not_even_the_subject(world: World) -> None:
    body = await world.gql(
        "analyst",
        "query($c: ID!) { complaint(id: $c) { id severity subject description } }",
        {"c": world.ada_complaint},
    )
    assert body["data"]["complaint"]["severity"]
    assert_denied_at(body, ["complaint", "subject"])
    assert_denied_at(body, ["complaint", "description"])
