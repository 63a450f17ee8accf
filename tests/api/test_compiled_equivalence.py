"""The compiled read path (api/graphql/compiler.py, issue 12) against strawberry: two apps on one database, one
with ``compiled_queries`` on, answer every query below, as every role, with byte-identical responses
(data in the same key order; errors with the same messages, paths, locations and codes) and status
codes, and write identical sensitive-read audit rows. The order of the errors may differ: strawberry's
follows the event loop (which loader answered first), the compiled path's follows the document, item by
item; the GraphQL spec gives errors no order. Queries the compiler covers must really run compiled; the
others (mutations, introspection, unsupported fields, bad variables) fall back to strawberry."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from authz import catalogue
from infra.db import StatementCounter
from tests.api.security_helpers import World, build_world, gid, own_database, sql
from tests.conftest import Api, running_api, test_settings

WHO = ("admin", "support_agent", "analyst", "marketing", "partner", "partner_b")

CUSTOMER_SCALARS = (
    "id __typename version createdAt updatedAt externalRef name email phone nationalId birthDate locale "
    "lifecycleStage tierSince address { line1 line2 postalCode city country }"
)
COMPLAINT_FIELDS = (
    "id version externalId subject description severity channel status assignee resolutionCode tierAtOpen "
    "firstResponseDueAt firstRespondedAt resolvedAt closedAt reopenCount openedAt slaPolicyVersion "
    "category { code label active } rootCause { code label } customer { id name email nationalId } "
    "events { fromStatus toStatus actor note kind }"
)
METRICS = "metrics { lifetimeSpend orderCount spend12m orders12m firstPurchaseAt lastPurchaseAt openComplaints latestNps latestCsat }"

PAGE = (
    "query Page($first: Int!, $after: String) { customers(first: $first, after: $after) { totalCount "
    "edges { cursor node { " + CUSTOMER_SCALARS + " tier { code name rank benefits } "
    "complaints(first: 3) { totalCount edges { cursor node { "
    + COMPLAINT_FIELDS
    + " } } pageInfo { hasNextPage endCursor } } "
    + METRICS
    + " } } pageInfo { hasNextPage endCursor } } }"
)
BENCH_PAGE = (
    "query($first: Int!, $after: String) { customers(first: $first, after: $after) { edges { cursor node { "
    "name email phone lifecycleStage tier { code name } "
    "complaints(first: 3) { edges { node { subject status severity openedAt } } } } } "
    "pageInfo { hasNextPage endCursor } } }"
)
ONE = (
    "query One($id: ID!) { customer(id: $id) { " + CUSTOMER_SCALARS + " tier { code } " + METRICS + " "
    "consent { email sms phone } partner { id name } churnRisk { level score signals computedAt modelVersion } "
    "purchases(first: 5) { totalCount edges { node { id externalId amount currency channel purchasedAt "
    "customer { id name phone } } } } "
    "complaints(first: 5) { edges { node { subject description status openedAt } } } } }"
)
FRAGMENTS = """
query Fragments($id: ID!, $n: Int = 2) {
  __typename
  first: customers(first: $n, orderBy: CREATED_AT) {
    edges { node { ...Contact who: name ... on Node { id } ... on Customer { address { city } } } }
  }
  again: customers(first: $n) { edges { node { ...Contact ...Contact mail: email } } }
  one: customer(id: $id) { ...Contact tier { ...TierBits } complaints(first: 1) { edges { node { ...Bits } } } }
  other: customer(id: $id) { nationalId phone }
}
fragment Contact on Customer { email phone name tier { ...TierBits } }
fragment TierBits on Tier { code name __typename }
fragment Bits on Complaint { subject description status customer { ...Contact } }
"""


@dataclass
class Case:
    name: str
    query: str
    variables: dict[str, Any]
    compiled: bool | None  # whether a compiled path must answer it (else: strawberry does; None: per role)


def cases(w: World) -> list[Case]:
    unknown = gid("Customer", "00000000-0000-4000-8000-000000000000")
    out = [
        Case("page", PAGE, {"first": 50}, True),
        Case("page of 1", PAGE, {"first": 1}, True),
        Case("bench page", BENCH_PAGE, {"first": 50, "after": None}, True),
        Case("ada", ONE, {"id": w.ada}, True),
        Case("paula", ONE, {"id": w.paula}, True),
        Case("bruno", ONE, {"id": w.bruno}, True),
        Case("unknown id", ONE, {"id": unknown}, True),
        Case("malformed id", ONE, {"id": "not-a-global-id"}, True),
        Case("complaint id as customer", ONE, {"id": w.ada_complaint}, True),
        Case("fragments, aliases, variables", FRAGMENTS, {"id": w.ada}, True),
        Case("fragments for paula", FRAGMENTS, {"id": w.paula, "n": 3}, True),
        Case("first 0", PAGE, {"first": 0}, True),
        Case("first too large", PAGE, {"first": 1000}, True),
        Case(
            "nested first too large",
            "{ customers(first: 3) { edges { node { name complaints(first: 51) { totalCount } } } } }",
            {},
            True,
        ),
        Case("filter on e-mail", '{ customers(filter: {email: "ada@example.com"}) { totalCount } }', {}, True),
        Case(
            "filter on tiers and name",
            '{ customers(filter: {tiers: ["bronze"], nameContains: "a"}, orderBy: NAME) { totalCount edges { node { name } } } }',
            {},
            True,
        ),
        Case("order by spend", "{ customers(orderBy: SPEND_12M_DESC) { edges { node { id name } } } }", {}, True),
        Case(
            "filter and sort refused or not by role (authz.catalogue.ARGUMENTS)",
            "query($f: CustomerFilter) { customers(filter: $f, orderBy: LIFETIME_SPEND_DESC) { totalCount } }",
            {"f": {"lifecycleStages": ["ACTIVE"], "createdAfter": "2000-01-01T00:00:00+00:00"}},
            True,
        ),
        Case("bad cursor", PAGE, {"first": 2, "after": "garbage"}, True),
        Case("typename only", "{ __typename }", {}, True),
        Case(
            "complaints",
            "query($n: Int!) { complaints(first: $n) { totalCount edges { cursor node { " + COMPLAINT_FIELDS + " } } "
            "pageInfo { hasNextPage endCursor } } }",
            {"n": 10},
            None,  # the default order reveals Complaint.openedAt: refused (by the older path) where not readable
        ),
        Case(
            "complaints oldest first",
            "{ complaints(first: 2, orderBy: OPENED_AT) { edges { cursor node { id subject } } pageInfo { endCursor } } }",
            {},
            None,
        ),
        Case(
            "complaint",
            "query($id: ID!) { complaint(id: $id) { " + COMPLAINT_FIELDS + " } }",
            {"id": w.ada_complaint},
            None,  # compiled where Query.complaint is granted
        ),
        Case(
            "complaint of another partner",
            "query($id: ID!) { complaint(id: $id) { subject } }",
            {"id": w.bruno_complaint},
            None,
        ),
        Case(
            "node",
            "query($id: ID!, $k: ID!) { a: node(id: $id) { id __typename ... on Customer { name email tier { code } } "
            "... on Complaint { subject } } b: node(id: $k) { id ... on Complaint { subject description customer { name } } } }",
            {"id": w.paula, "k": w.paula_complaint},
            True,
        ),
        Case(
            "customer's lists",
            "query($id: ID!) { customer(id: $id) { partner { id name } consent { email sms phone } "
            "purchases(first: 5) { totalCount edges { cursor node { id externalId amount currency channel purchasedAt "
            "createdAt customer { id name phone } } } pageInfo { hasNextPage endCursor } } "
            "tierHistory(first: 3) { edges { cursor node { id fromTier toTier policyVersion changeType reason actor "
            "changedAt } } pageInfo { hasNextPage endCursor } } } }",
            {"id": w.ada},
            True,
        ),
        Case("operation name", FRAGMENTS + " query Other { __typename }", {"id": w.ada}, True),
        # not compiled: strawberry answers, identically
        Case("viewer", '{ viewer { subject roles fieldAccess(type: "Customer") { field access } } }', {}, False),
        Case(
            "mixed with an unsupported root field",
            "{ __typename viewer { subject } customers { totalCount } }",
            {},
            False,
        ),
        Case(
            "directive",
            "query($x: Boolean!) { customers { edges { node { name @include(if: $x) } } } }",
            {"x": True},
            True,
        ),
        Case("introspection", "{ __schema { queryType { name } } }", {}, False),
        Case(
            "tier explanation",
            "query($id: ID!) { customer(id: $id) { tierExplanation { summary } } }",
            {"id": w.ada},
            False,
        ),
        # compiled where the caller may not read tier history (null, FORBIDDEN_FIELD): nothing else to run
        Case(
            "tier history",
            "query($id: ID!) { customer(id: $id) { tierHistory(first: 2) { edges { node { metrics } } } } }",
            {"id": w.ada},
            None,
        ),
        Case("bad variable", PAGE, {"first": "many"}, False),
        Case("missing variable", PAGE, {}, False),
        Case("syntax error", "{ customers(first: 2) { edges { node { name } }", {}, False),
        Case("unknown field", "{ customers { edges { node { shoeSize } } } }", {}, False),
        Case("mutation", 'mutation { deleteCustomer(input: {id: "x"}) { deletedId } }', {}, False),
    ]
    return out


@dataclass
class Pair:
    world: World
    compiled: Api


@pytest.fixture(scope="module")
async def pair(template_db: str) -> AsyncIterator[Pair]:
    # rate limits off in both: the two apps share the callers' buckets, and this test sends a lot
    reference = test_settings(rate_limit_enabled=False, compiled_queries=False)  # strawberry only
    async with own_database(template_db) as url, running_api(url, reference) as api:
        w = await build_world(api)
        settings = test_settings(compiled_queries=True, rate_limit_enabled=False)
        async with running_api(url, settings) as compiled:
            yield Pair(w, compiled)


def reads_of(api: Api) -> Any:
    """The app's compiled reads (api/graphql/compiler.CompiledReads), None when ``compiled_queries`` is off."""
    route = next(r for r in api.app.routes if getattr(r, "path", None) == "/graphql")
    graphql_app = route.endpoint._app  # built by the first request (see api/edge/app.py, _LazyGraphQL)
    return graphql_app.app.reads


_ids = itertools.count()


async def post(api: Api, token: str, case: Case, tag: str) -> tuple[int, bytes, str]:
    request_id = f"compiled-{tag}-{next(_ids)}"
    response = await api.client.post(
        "/graphql",
        json={"query": case.query, "variables": case.variables},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
    )
    return response.status_code, response.content, request_id


def canonical(body: bytes) -> bytes:
    """The response re-serialised with its errors sorted (key order kept: orjson keeps it)."""
    parsed = orjson.loads(body)
    if isinstance(parsed, dict) and parsed.get("errors"):
        parsed["errors"] = sorted(parsed["errors"], key=orjson.dumps)
    return orjson.dumps(parsed)


async def audit_of(w: World, request_id: str) -> list[tuple[Any, ...]]:
    rows = await sql(
        w.url,
        "SELECT actor, action, target_type, target_ids, fields FROM audit_log WHERE request_id = $1 ORDER BY id",
        request_id,
    )
    return [tuple(r.values()) for r in rows]


@pytest.mark.parametrize("who", WHO)
async def test_compiled_and_strawberry_answer_alike(pair: Pair, who: str) -> None:
    w = pair.world
    token = w.tokens[who]
    await post(pair.compiled, token, Case("warm", "{ __typename }", {}, True), "warm")
    reads = reads_of(pair.compiled)
    assert reads is not None
    assert reads_of(w.api) is None  # the reference answers through strawberry alone
    compared = 0
    for case in cases(w):
        before = reads.executed
        status_s, body_s, rid_s = await post(w.api, token, case, "strawberry")
        status_c, body_c, rid_c = await post(pair.compiled, token, case, "compiled")
        ran_compiled = reads.executed - before
        assert (case.name, status_c, canonical(body_c).decode()) == (case.name, status_s, canonical(body_s).decode())
        if case.compiled is not None:
            assert ran_compiled == (1 if case.compiled else 0), case.name
        assert await audit_of(w, rid_c) == await audit_of(w, rid_s), case.name
        compared += 1
    assert compared == len(cases(w))


async def test_second_page_by_cursor_and_masking_are_the_same(pair: Pair) -> None:
    w = pair.world
    first = await w.gql("admin", PAGE, {"first": 1})
    cursor = first["data"]["customers"]["pageInfo"]["endCursor"]
    assert cursor
    for who in WHO:
        case = Case("second page", PAGE, {"first": 1, "after": cursor}, True)
        status_s, body_s, rid_s = await post(w.api, w.tokens[who], case, "s")
        status_c, body_c, rid_c = await post(pair.compiled, w.tokens[who], case, "c")
        assert (status_c, canonical(body_c)) == (status_s, canonical(body_s)), who
        assert await audit_of(w, rid_c) == await audit_of(w, rid_s)


async def test_the_compiled_path_masks_denies_and_audits(pair: Pair) -> None:
    """Not only equal: right. The support agent sees masked contact data, no national id (an error at
    its path), and writes no audit row; the admin sees it all and writes exactly one."""
    w = pair.world
    query = "query($id: ID!) { customer(id: $id) { name email phone nationalId } }"
    case = Case("agent", query, {"id": w.ada}, True)
    status, body, rid = await post(pair.compiled, w.tokens["support_agent"], case, "agent")
    assert status == 200
    parsed = orjson.loads(body)
    customer = parsed["data"]["customer"]
    assert "***" in customer["email"]
    assert "*" in customer["phone"]
    assert customer["nationalId"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in parsed["errors"]] == [
        (["customer", "nationalId"], "FORBIDDEN_FIELD")
    ]
    assert await audit_of(w, rid) == []
    status, body, rid = await post(pair.compiled, w.tokens["admin"], case, "admin")
    customer = orjson.loads(body)["data"]["customer"]
    assert customer["nationalId"]
    assert "*" not in customer["email"]
    (row,) = await audit_of(w, rid)
    assert row[0] == "user:alice"
    assert sorted(row[4]) == ["Customer.email", "Customer.nationalId", "Customer.phone"]


async def test_documents_are_parsed_and_validated_once_per_query_text_and_failures_never_kept(pair: Pair) -> None:
    """The per-app document cache (api/edge/limits.py): a valid query text is kept, an invalid one is not and
    is refused with the same error every time, and the limits still apply to a kept document."""
    w = pair.world
    route = next(r for r in pair.compiled.app.routes if getattr(r, "path", None) == "/graphql")
    await pair.compiled.gql(w.tokens["admin"], "{ __typename }")
    graphql_app = route.endpoint._app.app
    cache = next(
        e.keywords["documents"] for e in graphql_app.schema.extensions if getattr(e, "keywords", {}).get("documents")
    )
    valid = "{ customers(first: 1) { totalCount } }"
    invalid = "{ customers(first: 1) { shoeSize } }"
    assert cache.get(valid) is None
    first = await pair.compiled.gql(w.tokens["admin"], valid)
    assert cache.get(valid) is not None
    again = await pair.compiled.gql(w.tokens["admin"], valid)
    assert first == again
    assert first["data"]["customers"]["totalCount"] == 3
    refusals = [await pair.compiled.gql(w.tokens["admin"], invalid) for _ in range(2)]
    assert cache.get(invalid) is None
    assert refusals[0] == refusals[1]
    assert refusals[0]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "shoeSize" in refusals[0]["errors"][0]["message"]
    # a kept document is still held to the cost limit with the variables of each request
    deep = (
        "query($n: Int!) { customers(first: $n) { edges { node { complaints(first: 50) { edges { node { "
        "customer { complaints(first: 50) { totalCount } } } } } } } } }"
    )
    assert not (await pair.compiled.gql(w.tokens["admin"], deep, {"n": 1})).get("errors")
    assert cache.get(deep) is not None
    refused = await pair.compiled.gql(w.tokens["admin"], deep, {"n": 100})
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert refused["data"] is None


async def test_a_page_of_three_customers_makes_no_more_tasks_than_a_page_of_one(pair: Pair) -> None:
    """The compiled path answers a page with one statement and finishes it in one pass: no asyncio task per
    customer or per field. Strawberry makes tasks in proportion to the page."""
    w = pair.world
    loop = asyncio.get_running_loop()
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        # the tasks of executing the operation (graphql-core's and strawberry's gathers and loaders, the
        # plan's): not the app's background work (pool resets, policy listeners) that may run meanwhile
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        where = code.co_filename if code is not None else ""
        if any(part in where for part in ("/graphql/", "/strawberry/", "asyncio/tasks.py")):
            made.append(code.co_name)
        return asyncio.Task(coro, loop=loop, **kwargs)

    counts: dict[tuple[str, int], int] = {}
    loop.set_task_factory(factory)
    try:
        for name, api in (("compiled", pair.compiled), ("strawberry", w.api)):
            for n in (1, 3):
                await api.gql(w.tokens["admin"], BENCH_PAGE, {"first": n, "after": None})  # warm: plan, caches
                made.clear()
                result = await api.gql(w.tokens["admin"], BENCH_PAGE, {"first": n, "after": None})
                counts[name, n] = len(made)
                edges = result["data"]["customers"]["edges"]
                assert len(edges) == n
                assert all(e["node"]["complaints"]["edges"] and e["node"]["tier"] for e in edges)
    finally:
        loop.set_task_factory(None)
    assert counts["compiled", 3] == counts["compiled", 1], counts
    assert counts["strawberry", 3] > counts["strawberry", 1]
    assert counts["compiled", 3] < counts["strawberry", 3]


_SEALED = re.compile(r"\.(email|phone|national_id|birth_date|address|description)\b")


def _sealed_columns(statements: list[str]) -> set[str]:
    return {column for statement in _reads(statements) for column in _SEALED.findall(statement)}


def _reads(statements: list[str]) -> list[str]:
    """The statements but the sensitive-read audit insert (one when the admin sees e-mails in full)."""
    return [s for s in statements if not s.lstrip().upper().startswith("INSERT INTO AUDIT_LOG")]


async def test_one_statement_per_root_field_carrying_only_the_encrypted_columns_selected(pair: Pair) -> None:
    """The compiled page is one statement, whatever the page size and depth, and it reads only the encrypted
    columns of the fields the operation selects (Python decrypts those, nothing else). Same answer."""
    w = pair.world
    for first in (1, 3):
        variables = {"first": first, "after": None}
        with StatementCounter(pair.compiled.services.engine) as compiled:
            narrow = await pair.compiled.gql(w.tokens["admin"], BENCH_PAGE, variables)
        assert narrow == await w.api.gql(w.tokens["admin"], BENCH_PAGE, variables)
        assert len(_reads(compiled.statements)) == 1, compiled.statements
        assert _sealed_columns(compiled.statements) == {"email", "phone"}
    # a field reached only through a nested object counts: the customer of a complaint
    nested = BENCH_PAGE.replace("severity openedAt", "severity openedAt description customer { birthDate }")
    variables = {"first": 3, "after": None}
    with StatementCounter(pair.compiled.services.engine) as compiled:
        assert await pair.compiled.gql(w.tokens["admin"], nested, variables) == await w.api.gql(
            w.tokens["admin"], nested, variables
        )
    assert len(_reads(compiled.statements)) == 1
    assert _sealed_columns(compiled.statements) == {"email", "phone", "birth_date", "description"}
    # two root fields: two statements
    two = "query($id: ID!) { a: customer(id: $id) { name } b: customers(first: 2) { totalCount } }"
    with StatementCounter(pair.compiled.services.engine) as compiled:
        assert await pair.compiled.gql(w.tokens["admin"], two, {"id": w.ada}) == await w.api.gql(
            w.tokens["admin"], two, {"id": w.ada}
        )
    assert len(_reads(compiled.statements)) == 2


NESTED = "{ customers(first: 3) { edges { node { name complaints(first: 2) { totalCount edges { node { id } } } } } } }"


async def test_an_argument_of_a_nested_field_is_checked_alike_on_both_paths(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No nested field has an argument that reveals a guarded field today; declare one (as if
    ``Customer.complaints(first)`` selected by the customer's phone) and both paths refuse it alike, per
    item, for the support agent (phone masked), and answer the admin."""
    monkeypatch.setitem(
        catalogue.ARGUMENTS,
        "Customer.complaints(first)",
        catalogue.ArgumentSpec("Customer.complaints(first)", ("Customer.phone",)),
    )
    w = pair.world
    reference = test_settings(rate_limit_enabled=False, compiled_queries=False)
    compiled_settings = test_settings(rate_limit_enabled=False, compiled_queries=True)
    async with running_api(w.url, reference) as plain, running_api(w.url, compiled_settings) as compiled:
        case = Case("nested argument", NESTED, {}, True)
        await post(compiled, w.tokens["admin"], Case("warm", "{ __typename }", {}, True), "warm")
        reads = reads_of(compiled)
        for who in ("support_agent", "admin"):
            before = reads.executed
            status_s, body_s, _ = await post(plain, w.tokens[who], case, "s")
            status_c, body_c, _ = await post(compiled, w.tokens[who], case, "c")
            assert reads.executed == before + 1  # answered by the compiled plan, not handed to strawberry
            assert (status_c, canonical(body_c)) == (status_s, canonical(body_s)), who
            body = orjson.loads(body_c)
            nodes = [e["node"] for e in body["data"]["customers"]["edges"]]
            assert len(nodes) == 3
            if who == "admin":
                assert "errors" not in body
                assert all(n["complaints"] is not None for n in nodes)
            else:
                assert all(n["complaints"] is None for n in nodes)
                assert {(e["extensions"]["code"], e["message"]) for e in body["errors"]} == {
                    ("FORBIDDEN_ARGUMENT", "filtering or sorting on Customer.phone is not allowed")
                }
                assert len(body["errors"]) == 3
