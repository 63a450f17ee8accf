"""Authentication edge cases (issue 3): every missing, malformed, forged, expired, misaddressed or revoked
credential is refused at the edge with 401, ``UNAUTHENTICATED`` and no ``data`` — for staff JWTs (HS256
and RS256, including the HS/RS algorithm confusion) and partner tokens. Valid tokens of each kind work
(so a refusal is never vacuous)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.edge.auth import issue_staff_token
from api.usecases.access import new_partner_token
from authz import admin
from infra.repos.base import ALL
from infra.settings import DEV_JWT_SECRET
from tests.api.security_helpers import own_database
from tests.conftest import Api, running_api, test_settings

VIEWER = "{ viewer { subject kind roles } }"
SECRET = DEV_JWT_SECRET  # the default HS256 secret of test_settings()


@pytest.fixture(scope="module")
async def db_url(template_db: str) -> AsyncIterator[str]:
    async with own_database(template_db) as url:
        yield url


# This module sends well over a hundred bad tokens from one address on purpose: the per-address
# limit of failed authentications (tests/api/test_http_edge.py) is raised out of its way.
NO_AUTH_LIMIT = {"auth_failure_limit": 100_000}


@pytest.fixture(scope="module")
async def hs_api(db_url: str) -> AsyncIterator[Api]:
    async with running_api(db_url, test_settings(**NO_AUTH_LIMIT)) as api:
        yield api


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


RS_PRIVATE, RS_PUBLIC = _pem_pair()
OTHER_PRIVATE, _ = _pem_pair()


@pytest.fixture(scope="module")
async def rs_api(db_url: str) -> AsyncIterator[Api]:
    settings = test_settings(
        jwt_algorithm="RS256", jwt_public_key=RS_PUBLIC, jwt_private_key=RS_PRIVATE, **NO_AUTH_LIMIT
    )
    async with running_api(db_url, settings) as api:
        yield api


@pytest.fixture(scope="module")
async def kid_api(db_url: str) -> AsyncIterator[Api]:
    settings = test_settings(
        jwt_algorithm="RS256",
        jwt_public_key=RS_PUBLIC,
        jwt_private_key=RS_PRIVATE,
        jwt_key_id="key-2024",
        **NO_AUTH_LIMIT,
    )
    async with running_api(db_url, settings) as api:
        yield api


# ---------------------------------------------------------------- building tokens by hand


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def hmac_token(claims: dict[str, Any], key: bytes, header: dict[str, Any] | None = None, digest: str = "sha256") -> str:
    """An HMAC-signed token with any bytes as the key (PyJWT refuses a PEM as HMAC secret; an attacker does not)."""
    signing_input = _segments(header or {"alg": "HS256", "typ": "JWT"}, claims)
    signature = hmac.new(key, signing_input.encode(), getattr(hashlib, digest)).digest()
    return signing_input + "." + _b64(signature)


def unsigned_token(claims: dict[str, Any], alg: str = "none") -> str:
    return _segments({"alg": alg, "typ": "JWT"}, claims) + "."


def claims(**changes: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    out: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 600, "iss": "tierwise", "aud": "tierwise-api"}
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def hs(**changes: Any) -> str:
    return jwt.encode(claims(**changes), SECRET, algorithm="HS256")


def _now() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


def _tampered() -> str:
    header, _payload, signature = hs().split(".")
    return ".".join((header, _b64(json.dumps(claims(sub="mallory")).encode()), signature))


# ---------------------------------------------------------------- assertions


async def assert_unauthenticated(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await api.client.post("/graphql", json={"query": VIEWER}, headers=headers)
    assert response.status_code == 401, response.text
    body = response.json()
    assert "data" not in body, body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], body
    assert response.headers["www-authenticate"].startswith("Bearer")


async def viewer(api: Api, token: str) -> dict[str, Any]:
    body = await api.gql(token, VIEWER)
    assert body["_status"] == 200, body
    assert not body.get("errors"), body
    return body["data"]["viewer"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- staff JWTs, HS256

STAFF_CASES: dict[str, Callable[[], str]] = {
    "alg none": lambda: unsigned_token(claims()),
    "alg None (case)": lambda: unsigned_token(claims(), alg="None"),
    "alg none with a signature kept": lambda: _segments({"alg": "none"}, claims()) + "." + hs().split(".")[2],
    "forged: other secret": lambda: jwt.encode(claims(), "another-secret-of-at-least-32-bytes!!", algorithm="HS256"),
    "forged: payload changed after signing": _tampered,
    "HS512 with the right secret": lambda: hmac_token(claims(), SECRET.encode(), {"alg": "HS512"}, "sha512"),
    "RS256 signed with some RSA key": lambda: jwt.encode(claims(), OTHER_PRIVATE, algorithm="RS256"),
    "expired": lambda: hs(iat=_now() - 7200, exp=_now() - 3600),
    "expired beyond the leeway": lambda: hs(iat=_now() - 600, exp=_now() - 120),
    "no exp": lambda: hs(exp=None),
    "no iat": lambda: hs(iat=None),
    "no sub": lambda: hs(sub=None),
    "empty sub": lambda: hs(sub=""),
    "sub not a string": lambda: hs(sub=12345),
    "no iss": lambda: hs(iss=None),
    "wrong issuer": lambda: hs(iss="someone-else"),
    "no aud": lambda: hs(aud=None),
    "wrong audience": lambda: hs(aud="another-api"),
    "not yet valid (nbf)": lambda: hs(nbf=_now() + 3600),
    "issued in the future (iat)": lambda: hs(iat=_now() + 3600, exp=_now() + 7200),
    "unknown kid": lambda: jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "rogue"}),
    "garbage": lambda: "garbage",
    "three garbage segments": lambda: "a.b.c",
    "header only": lambda: hs().split(".")[0],
}


@pytest.mark.parametrize("case", list(STAFF_CASES))
async def test_bad_staff_jwt_is_unauthenticated(hs_api: Api, case: str) -> None:
    await assert_unauthenticated(hs_api, f"Bearer {STAFF_CASES[case]()}")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Token {token}", "{token}"],
)
async def test_missing_or_misformatted_authorization_is_unauthenticated(hs_api: Api, authorization: str | None) -> None:
    value = authorization.format(token=hs()) if authorization is not None else None
    await assert_unauthenticated(hs_api, value)


async def test_a_valid_hs256_token_works(hs_api: Api) -> None:
    assert (await viewer(hs_api, hs()))["subject"] == "user:alice"
    assert (await viewer(hs_api, issue_staff_token(hs_api.settings, "bob")))["subject"] == "user:bob"


async def test_graphiql_exemption_cannot_be_used_to_skip_authentication(hs_api: Api) -> None:
    response = await hs_api.client.get(
        "/graphql?%71uery=%7B%20viewer%20%7B%20subject%20%7D%20%7D", headers={"Accept": "text/html"}
    )
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_get_query_needs_a_token_whatever_it_accepts(hs_api: Api) -> None:
    response = await hs_api.client.get("/graphql", params={"query": VIEWER}, headers={"Accept": "text/html"})
    assert response.status_code == 401
    response = await hs_api.client.get("/graphql", params={"query": VIEWER})
    assert response.status_code == 401


# ---------------------------------------------------------------- staff JWTs, RS256


async def test_rs256_valid_token_works(rs_api: Api) -> None:
    token = issue_staff_token(rs_api.settings, "alice")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert (await viewer(rs_api, token))["subject"] == "user:alice"


RS_CASES: dict[str, Callable[[], str]] = {
    # HS/RS confusion: the public key (which is public) used as an HMAC secret
    "HS256 signed with the public key PEM": lambda: hmac_token(claims(), RS_PUBLIC.encode()),
    "HS256 signed with the public key PEM, header says RS256": lambda: hmac_token(
        claims(), RS_PUBLIC.encode(), {"alg": "RS256", "typ": "JWT"}
    ),
    "HS256 signed with the development secret": lambda: hs(),
    "RS256 signed with another RSA key": lambda: jwt.encode(claims(), OTHER_PRIVATE, algorithm="RS256"),
    "RS256 expired": lambda: jwt.encode(claims(iat=_now() - 7200, exp=_now() - 3600), RS_PRIVATE, algorithm="RS256"),
    "RS256 wrong audience": lambda: jwt.encode(claims(aud="another-api"), RS_PRIVATE, algorithm="RS256"),
    "RS256 unknown kid": lambda: jwt.encode(claims(), RS_PRIVATE, algorithm="RS256", headers={"kid": "rogue"}),
    "alg none": lambda: unsigned_token(claims()),
}


@pytest.mark.parametrize("case", list(RS_CASES))
async def test_bad_token_is_unauthenticated_under_rs256(rs_api: Api, case: str) -> None:
    await assert_unauthenticated(rs_api, f"Bearer {RS_CASES[case]()}")


async def test_configured_key_id_is_required(kid_api: Api) -> None:
    assert (await viewer(kid_api, issue_staff_token(kid_api.settings, "alice")))["subject"] == "user:alice"
    await assert_unauthenticated(kid_api, "Bearer " + jwt.encode(claims(), RS_PRIVATE, algorithm="RS256"))
    await assert_unauthenticated(
        kid_api, "Bearer " + jwt.encode(claims(), RS_PRIVATE, algorithm="RS256", headers={"kid": "key-2023"})
    )


# ---------------------------------------------------------------- partner tokens


async def test_partner_token_works_and_a_wrong_secret_does_not(hs_api: Api) -> None:
    token, _partner_id = await hs_api.partner_token(partner="Token Test Shop")
    me = await viewer(hs_api, token)
    assert me["kind"] == "token"
    assert me["roles"] == ["partner"]
    prefix, _, secret = token.rpartition("_")
    assert prefix.startswith("tw_pat_")
    await assert_unauthenticated(hs_api, f"Bearer {prefix}_{'A' * len(secret)}")
    await assert_unauthenticated(hs_api, f"Bearer {prefix}_")
    await assert_unauthenticated(hs_api, f"Bearer {prefix}_{secret}x")
    await assert_unauthenticated(hs_api, f"Bearer tw_pat_{uuid.uuid4().hex}_{secret}")  # unknown id
    await assert_unauthenticated(hs_api, f"Bearer tw_pat_not-hex_{secret}")
    await assert_unauthenticated(hs_api, "Bearer tw_pat_")


def _token_id(token: str) -> uuid.UUID:
    return uuid.UUID(hex=token.removeprefix("tw_pat_").partition("_")[0])


async def test_revoked_partner_token_is_unauthenticated(hs_api: Api) -> None:
    token, _ = await hs_api.partner_token(partner="Revoked Shop")
    await viewer(hs_api, token)  # works before
    async with hs_api.services.engine.connect() as conn:
        await admin.revoke_partner_token(conn, _token_id(token), actor="user:alice", scope=ALL)
        await conn.commit()
    await assert_unauthenticated(hs_api, f"Bearer {token}")


async def test_expired_partner_token_is_unauthenticated(hs_api: Api) -> None:
    token_id, token, token_hash = new_partner_token()
    async with hs_api.services.engine.connect() as conn:
        await admin.create_partner_token(
            conn,
            partner_name="Expired Shop",
            name="expired",
            scopes=["read:*", "write:*"],
            role="partner",
            actor="test",
            token_id=token_id,
            token_hash=token_hash,
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
        )
        await conn.commit()
    await assert_unauthenticated(hs_api, f"Bearer {token}")


async def test_a_token_verified_once_is_refused_at_its_expiry_all_the_same(db_url: str) -> None:
    # the edge remembers tokens it verified (api/edge/auth.py VerifiedTokens): that must not outlive them
    async with running_api(db_url, test_settings(jwt_leeway_s=0, **NO_AUTH_LIMIT)) as api:
        expires = _now() + 2
        token = hs(exp=expires)
        assert (await viewer(api, token))["subject"] == "user:alice"
        assert (await viewer(api, token))["subject"] == "user:alice"  # from the remembered verification
        await asyncio.sleep(max(expires - time.time(), 0) + 0.2)
        await assert_unauthenticated(api, f"Bearer {token}")
        # and a forged twin of a remembered token is verified afresh, not taken from memory
        fresh = hs()
        assert (await viewer(api, fresh))["subject"] == "user:alice"
        header, payload, signature = fresh.split(".")
        await assert_unauthenticated(api, f"Bearer {header}.{payload}.{signature[:-4]}AAAA")
