"""The GraphQL over HTTP specification, audited as the ``graphql-http`` project audits servers (its
``src/audits/server.ts``: each audit's id and wording are kept below, so a failure names the rule).

Every audit of that list that can be run here is run, MUST, SHOULD and MAY alike, and all pass: no
errors, no warnings. Each request carries a staff token (tierwise answers nothing without one; the audits
assume an open server). Over GET as well, which development allows (``TIERWISE_ALLOW_GET_QUERIES``).
Beyond the list: Accept negotiation by q-value, the media type on the edge's own errors, and the
``application/json`` behaviour kept for clients that ask for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tests.api.helpers import module_api
from tests.conftest import Api

GQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
UNSET: Any = object()


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db, allow_get_queries=True) as running:
        yield running


@pytest.fixture(scope="module")
async def token(api: Api) -> str:
    return await api.user("audit", "admin")


@dataclass(frozen=True)
class Audit:
    id: str
    rule: str
    method: str = "POST"
    content_type: str | None = JSON
    accept: str | None = None
    body: Any = UNSET  # JSON-encoded unless bytes; UNSET: no body
    params: dict[str, str] = field(default_factory=dict)  # GET
    status: int | tuple[int, int] = 200  # exact, or an inclusive range
    response_type: str | None = None  # the Content-Type must contain it
    no_errors: bool = False
    no_data: bool = False


Q = {"query": "{ __typename }"}
TYPE_Q = "query Type($name: String!) { __type(name: $name) { name } }"
PARSE_FAIL = {"query": "{"}
INVALID = {"query": "{ 8f31403dfe404bccbb0e835f2629c6a7 }"}
COERCE_FAIL = {"query": "query CoerceFailure($id: ID!){ __typename }", "variables": {"id": None}}
BAD_VALUES = [("object", {"obj": "ect"}), ("number", 0), ("boolean", False), ("array", ["array"])]

AUDITS = [
    # Media types
    Audit(
        "22EB",
        "SHOULD accept application/graphql-response+json and match the content-type",
        accept=GQL_RESPONSE,
        body=Q,
        response_type=GQL_RESPONSE,
    ),
    Audit("4655", "MUST accept application/json and match the content-type", accept=JSON, body=Q, response_type=JSON),
    Audit(
        "47DE",
        "SHOULD accept */* and use application/json for the content-type",
        accept="*/*",
        body=Q,
        response_type=JSON,
    ),
    Audit("80D8", "SHOULD assume application/json content-type when accept is missing", body=Q, response_type=JSON),
    Audit("82A3", "MUST use utf-8 encoding when responding", body=Q),
    Audit(
        "BF61",
        "MUST accept utf-8 encoded request",
        content_type="application/json; charset=utf-8",
        body={"query": '{ __type(name: "Run🏃Swim🏊") { name } }'},
    ),
    Audit("78D5", "MUST assume utf-8 in request if encoding is unspecified", body=Q),
    # Request
    Audit("2C94", "MUST accept POST requests", body=Q),
    Audit(
        "5A70",
        "MAY accept application/x-www-form-urlencoded formatted GET requests",
        method="GET",
        content_type=None,
        params={"query": "{ __typename }"},
    ),
    Audit(
        "9C48",
        "MAY NOT allow executing mutations on GET requests",
        method="GET",
        content_type=None,
        accept=GQL_RESPONSE,
        params={"query": "mutation { __typename }"},
        status=(400, 499),
    ),
    Audit(
        "9ABE",
        "MAY respond with 4xx status code if content-type is not supplied on POST requests",
        content_type=None,
        status=(400, 499),
    ),
    Audit("03D4", "MUST accept application/json POST requests", body=Q),
    Audit("A5BF", "MAY use 400 status code when request body is missing on POST", status=400),
    # Request parameters
    Audit(
        "423L",
        "MAY use 400 status code on missing {query} parameter",
        accept=GQL_RESPONSE,
        body={"notquery": "{ __typename }"},
        status=400,
    ),
    *(
        Audit(f"LKJ{i}", f"MAY use 400 status code on {kind} {{query}} parameter", body={"query": bad}, status=400)
        for i, (kind, bad) in enumerate(BAD_VALUES)
    ),
    Audit(
        "34A2",
        "SHOULD allow string {query} parameter when accepting application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=Q,
    ),
    Audit(
        "13EE",
        "MUST allow string {query} parameter when accepting application/json",
        accept=JSON,
        body=Q,
        no_errors=True,
    ),
    *(
        Audit(
            f"6C0{i}",
            f"MAY use 400 status code on {kind} {{operationName}} parameter",
            body={"operationName": bad, "query": "{ __typename }"},
            status=400,
        )
        for i, (kind, bad) in enumerate(BAD_VALUES)
    ),
    Audit(
        "8161",
        "SHOULD allow string {operationName} parameter when accepting application/graphql-response+json",
        accept=GQL_RESPONSE,
        body={"operationName": "Query", "query": "query Query { __typename }"},
    ),
    Audit(
        "B8B3",
        "MUST allow string {operationName} parameter when accepting application/json",
        accept=JSON,
        body={"operationName": "Query", "query": "query Query { __typename }"},
        no_errors=True,
    ),
    *(
        audit
        for i, parameter in enumerate(("variables", "operationName", "extensions"))
        for audit in (
            Audit(
                f"94B{i}",
                f"SHOULD allow null {{{parameter}}} parameter when accepting application/graphql-response+json",
                accept=GQL_RESPONSE,
                body={"query": "{ __typename }", parameter: None},
                no_errors=True,
            ),
            Audit(
                f"022{i}",
                f"MUST allow null {{{parameter}}} parameter when accepting application/json",
                accept=JSON,
                body={"query": "{ __typename }", parameter: None},
                no_errors=True,
            ),
        )
    ),
    *(
        Audit(
            f"476{i}",
            f"MAY use 400 status code on {kind} {{variables}} parameter",
            body={"query": "{ __typename }", "variables": bad},
            status=400,
        )
        for i, (kind, bad) in enumerate([("string", "string"), *BAD_VALUES[1:]])
    ),
    Audit(
        "2EA1",
        "SHOULD allow map {variables} parameter when accepting application/graphql-response+json",
        accept=GQL_RESPONSE,
        body={"query": TYPE_Q, "variables": {"name": "sometype"}},
    ),
    Audit(
        "28B9",
        "MUST allow map {variables} parameter when accepting application/json",
        accept=JSON,
        body={"query": TYPE_Q, "variables": {"name": "sometype"}},
        no_errors=True,
    ),
    Audit(
        "D6D5",
        "MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting "
        "application/graphql-response+json",
        method="GET",
        content_type=None,
        accept=GQL_RESPONSE,
        params={"query": TYPE_Q, "variables": '{"name":"sometype"}'},
    ),
    Audit(
        "6A70",
        "MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/json",
        method="GET",
        content_type=None,
        accept=JSON,
        params={"query": TYPE_Q, "variables": '{"name":"sometype"}'},
        no_errors=True,
    ),
    *(
        Audit(
            f"58B{i}",
            f"MAY use 400 status code on {kind} {{extensions}} parameter",
            body={"query": "{ __typename }", "extensions": bad},
            status=400,
        )
        for i, (kind, bad) in enumerate([("string", "string"), *BAD_VALUES[1:]])
    ),
    Audit(
        "428F",
        "SHOULD allow map {extensions} parameter when accepting application/graphql-response+json",
        accept=GQL_RESPONSE,
        body={"query": "{ __typename }", "extensions": {"some": "value"}},
    ),
    Audit(
        "1B7A",
        "MUST allow map {extensions} parameter when accepting application/json",
        accept=JSON,
        body={"query": "{ __typename }", "extensions": {"some": "value"}},
        no_errors=True,
    ),
    Audit("B6DC", "MAY use 4xx or 5xx status codes on JSON parsing failure", body=b'{ "not a JSON', status=(400, 499)),
    Audit("BCF8", "MAY use 400 status code on JSON parsing failure", body=b'{ "not a JSON', status=400),
    Audit(
        "8764",
        "MAY use 4xx or 5xx status codes if parameters are invalid",
        body={"qeury": "{ __typename }"},
        status=(400, 599),
    ),
    Audit("3E3A", "MAY use 400 status code if parameters are invalid", body={"qeury": "{ __typename }"}, status=400),
    # Response application/json
    Audit(
        "572B",
        "SHOULD use 200 status code on document parsing failure when accepting application/json",
        accept=JSON,
        body=PARSE_FAIL,
    ),
    Audit(
        "FDE2",
        "SHOULD use 200 status code on document validation failure when accepting application/json",
        accept=JSON,
        body=INVALID,
    ),
    Audit(
        "7B9B",
        "SHOULD use a status code of 200 on variable coercion failure when accepting application/json",
        accept=JSON,
        body=COERCE_FAIL,
    ),
    # Response application/graphql-response+json
    Audit(
        "865D",
        "SHOULD use 4xx or 5xx status codes on document parsing failure when accepting "
        "application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=PARSE_FAIL,
        status=(400, 599),
    ),
    Audit(
        "556A",
        "SHOULD use 400 status code on document parsing failure when accepting application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=PARSE_FAIL,
        status=400,
    ),
    Audit(
        "D586",
        "SHOULD not contain the data entry on document parsing failure when accepting "
        "application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=PARSE_FAIL,
        status=400,
        no_data=True,
    ),
    Audit(
        "51FE",
        "SHOULD use 4xx or 5xx status codes on document validation failure when accepting "
        "application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=INVALID,
        status=(400, 599),
    ),
    Audit(
        "74FF",
        "SHOULD use 400 status code on document validation failure when accepting application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=INVALID,
        status=400,
    ),
    Audit(
        "5E5B",
        "SHOULD not contain the data entry on document validation failure when accepting "
        "application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=INVALID,
        status=400,
        no_data=True,
    ),
    Audit(
        "86EE",
        "SHOULD use a status code of 400 on variable coercion failure when accepting application/graphql-response+json",
        accept=GQL_RESPONSE,
        body=COERCE_FAIL,
        status=400,
        no_data=True,
    ),
]


@pytest.mark.parametrize("audit", AUDITS, ids=[a.id for a in AUDITS])
async def test_graphql_over_http_audit(api: Api, token: str, audit: Audit) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    if audit.content_type:
        headers["Content-Type"] = audit.content_type
    if audit.accept:
        headers["Accept"] = audit.accept
    content = None
    if audit.body is not UNSET:
        content = audit.body if isinstance(audit.body, bytes) else orjson.dumps(audit.body)
    response = await api.client.request(
        audit.method, "/graphql", headers=headers, content=content, params=audit.params or None
    )
    why = f"{audit.id} {audit.rule}: {response.status_code} {response.headers.get('content-type')} {response.text}"
    if isinstance(audit.status, tuple):
        assert audit.status[0] <= response.status_code <= audit.status[1], why
    else:
        assert response.status_code == audit.status, why
    response.content.decode("utf-8")  # every answer is UTF-8
    if audit.response_type:
        assert audit.response_type in response.headers["content-type"], why
    if audit.no_errors or audit.no_data:
        body = response.json()
        if audit.no_errors:
            assert "errors" not in body, why
        if audit.no_data:
            assert "data" not in body, why
            assert body["errors"], why


def test_every_audit_of_the_list_is_here() -> None:
    """The ids of graphql-http's server audits (src/audits/server.ts): none left out, none twice."""
    listed = {
        *"22EB 4655 47DE 80D8 82A3 BF61 78D5 2C94 5A70 9C48 9ABE 03D4 A5BF 423L 34A2 13EE 8161 B8B3".split(),
        *"2EA1 28B9 D6D5 6A70 428F 1B7A B6DC BCF8 8764 3E3A 572B FDE2 7B9B 865D 556A D586 51FE 74FF".split(),
        *"5E5B 86EE".split(),
        *(f"{prefix}{i}" for prefix in ("LKJ", "6C0", "476", "58B") for i in range(4)),
        *(f"{prefix}{i}" for prefix in ("94B", "022") for i in range(3)),
    }
    ids = [a.id for a in AUDITS]
    assert len(ids) == len(set(ids))
    assert set(ids) == listed


async def _post(api: Api, token: str, body: Any, accept: str | None, **extra: str) -> Any:
    headers = {"Authorization": f"Bearer {token}", **extra}
    if accept is not None:
        headers["Accept"] = accept
    return await api.client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (f"{GQL_RESPONSE}, {JSON}", GQL_RESPONSE),
        (f"{JSON}, {GQL_RESPONSE}", JSON),  # equal q: the first listed
        (f"{JSON};q=0.5, {GQL_RESPONSE}", GQL_RESPONSE),
        (f"{GQL_RESPONSE};q=0.4, {JSON};q=0.9", JSON),
        (f"{GQL_RESPONSE};q=0, */*", JSON),
        ("application/*", JSON),
        ("text/plain", JSON),
    ],
)
async def test_accept_is_negotiated_by_q_value_then_order(api: Api, token: str, accept: str, media: str) -> None:
    response = await _post(api, token, PARSE_FAIL, accept)
    assert response.headers["content-type"] == f"{media}; charset=utf-8" if media == GQL_RESPONSE else media
    assert response.status_code == (400 if media == GQL_RESPONSE else 200)


async def test_application_json_keeps_its_answers(api: Api, token: str) -> None:
    """Legacy clients: a request error is a 200 with ``data: null`` and the errors, as before."""
    body = (await _post(api, token, INVALID, JSON)).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_field_errors_keep_status_200_and_their_data(api: Api, token: str) -> None:
    """Executed with a field error (here a denied field): 200 and the data, in both media types."""
    agent = await api.user("agent-http", "support_agent")
    query = {"query": '{ customers(filter: {email: "a@b.example"}) { totalCount } }'}
    for accept in (GQL_RESPONSE, JSON):
        response = await _post(api, agent, query, accept)
        assert response.status_code == 200
        body = response.json()
        assert body["data"] == {"customers": None}
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN_ARGUMENT"


async def test_the_edge_answers_in_the_negotiated_media_type(api: Api) -> None:
    """Errors from before GraphQL (no token, a form body) carry the asked-for media type too."""
    response = await api.client.post("/graphql", json=Q, headers={"Accept": GQL_RESPONSE})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(GQL_RESPONSE)
    response = await api.client.post(
        "/graphql", content=b"query=x", headers={"Accept": GQL_RESPONSE, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith(GQL_RESPONSE)
    assert "data" not in response.json()


async def test_variables_that_fail_coercion_are_a_400_without_data(api: Api, token: str) -> None:
    """A used variable of the wrong type (the audit's own example is refused earlier, as unused)."""
    body = {"query": "query One($id: ID!) { customer(id: $id) { id } }", "variables": {"id": None}}
    response = await _post(api, token, body, GQL_RESPONSE)
    assert response.status_code == 400, response.text
    assert "data" not in response.json()
    assert "$id" in response.json()["errors"][0]["message"]
    legacy = await _post(api, token, body, JSON)
    assert legacy.status_code == 200
    assert legacy.json()["data"] is None
