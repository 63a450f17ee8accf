from tests.conftest import Api


async def test_admin_creates_and_reads_a_customer(api: Api) -> None:
    token = await api.user("alice", "admin")
    created = await api.gql(
        token,
        'mutation { createCustomer(input: {name: "  Ann   Lee ", email: "Ann@Example.com", phone: "030 1234567"}) '
        "{ customer { id name email phone version } userErrors { field code message } } }",
    )
    payload = created["data"]["createCustomer"]
    assert payload["userErrors"] == []
    assert payload["customer"]["name"] == "Ann Lee"
    assert payload["customer"]["email"] == "ann@example.com"
    assert payload["customer"]["phone"] == "+49301234567"
    page = await api.gql(token, "{ customers(first: 5) { totalCount edges { node { name } } } }")
    assert page["data"]["customers"]["totalCount"] == 1


async def test_no_token_is_unauthenticated(api: Api) -> None:
    body = await api.gql(None, "{ viewer { subject } }")
    assert body["_status"] == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in body
