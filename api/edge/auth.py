"""Bearer tokens → Principal. Staff JWTs carry identity only; roles are assigned inside tierwise.
Partner tokens are ``tw_pat_<id>_<secret>``, stored as a SHA-256 of the secret."""

from __future__ import annotations

import datetime as dt
import hmac
import re
import time
import uuid
from collections import OrderedDict
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncEngine

from api.usecases.access import TOKEN_PREFIX, hash_secret
from authz.policy import Level, PolicyStore
from authz.principal import Principal, PrincipalKind
from infra.repos import partners as partners_repo
from infra.settings import Settings


class AuthError(Exception):
    """Missing, malformed, expired, forged or revoked credentials. The message is safe to show."""


def issue_staff_token(settings: Settings, sub: str, *, ttl_s: int | None = None) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": sub,
        "iat": int(now.timestamp()),
        "exp": int((now + dt.timedelta(seconds=ttl_s or settings.jwt_ttl_s)).timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    headers = {"kid": settings.jwt_key_id} if settings.jwt_key_id else None
    if settings.jwt_algorithm == "HS256":
        key: Any = settings.jwt_secret.get_secret_value()
    else:
        if not settings.jwt_private_key:
            raise AuthError("TIERWISE_JWT_PRIVATE_KEY is needed to issue RS256 tokens")
        key = settings.jwt_private_key
    return jwt.encode(claims, key, algorithm=settings.jwt_algorithm, headers=headers)


class VerifiedTokens:
    """Staff JWTs this instance verified, by their exact text: their subject and expiry, so the same
    token is not verified again on each request (a JWT carries identity only and is not revoked; its
    roles come from the policy snapshot). A cached token stops being accepted at its expiry (plus
    the configured leeway), as a verified one would. At most ``size`` tokens, the oldest dropped."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, token: str, leeway_s: float) -> str | None:
        found = self._tokens.get(token)
        if found is None:
            return None
        sub, exp = found
        if time.time() >= exp + leeway_s:
            self._tokens.pop(token, None)
            return None
        return sub

    def put(self, token: str, sub: str, exp: float) -> None:
        self._tokens[token] = (sub, exp)
        if len(self._tokens) > self.size:
            self._tokens.popitem(last=False)


def decode_staff_token(settings: Settings, token: str, verified: VerifiedTokens | None = None) -> str:
    """Verify a staff JWT and return its subject (from ``verified`` if this exact token was verified
    before and has not expired since)."""
    if verified is not None:
        sub = verified.get(token, settings.jwt_leeway_s)
        if sub is not None:
            return sub
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("malformed token") from None
    if header.get("alg") != settings.jwt_algorithm:
        raise AuthError("token algorithm not accepted")
    kid = header.get("kid")
    if kid is not None and kid != settings.jwt_key_id:
        raise AuthError("unknown key id")
    if settings.jwt_key_id and kid is None:
        raise AuthError("token has no key id")
    key = settings.jwt_secret.get_secret_value() if settings.jwt_algorithm == "HS256" else settings.jwt_public_key
    if key is None:  # refused at startup already (Settings: RS256 needs TIERWISE_JWT_PUBLIC_KEY)
        raise AuthError("no key to verify tokens with")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": ["sub", "exp", "iat", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.PyJWTError:
        raise AuthError("invalid token") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 200:
        raise AuthError("invalid token subject")
    if verified is not None and isinstance(claims.get("exp"), int | float):
        verified.put(token, sub, float(claims["exp"]))
    return sub


async def authenticate(
    authorization: str | None,
    *,
    settings: Settings,
    engine: AsyncEngine,
    store: PolicyStore,
    verified: VerifiedTokens | None = None,
    view_as: str | None = None,
) -> Principal:
    """The caller of a request. ``view_as``: the ``X-Tierwise-View-As`` header, a role the caller (staff
    only) asks to see the API as (``viewing_as``)."""
    principal = await _principal(authorization, settings=settings, engine=engine, store=store, verified=verified)
    if view_as is None:
        return principal
    return viewing_as(principal, view_as.strip(), store)


VIEW_AS_NEEDS = "Query.accessMatrix"  # the matrix shows every role's decisions already: admins by default
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


def _covers(own: Level, other: Level) -> bool:
    """Whether a reader at ``own`` sees everything a reader at ``other`` sees (CONSENTED and MASKED each
    show something the other does not)."""
    return own is Level.FULL or other is Level.DENIED or own is other


def viewing_as(principal: Principal, role: str, store: PolicyStore) -> Principal:
    """A staff member seeing the API as ``role`` (the console's "view as role"): the same person, holding
    that role alone, read-only (``Decisions.read_only``). Every answer then goes through the role's own
    decisions, masks and refusals: nothing is rendered from the member's wider reads. Refused (as a bad
    credential: nothing runs) to partner tokens, to anyone who may not read the access matrix, and for a
    role that reads anything the member may not (no one sees more through another role). Checked on every
    request against the current policy, so a member who loses the right loses the view at once."""
    if principal.kind is not PrincipalKind.USER or principal.is_partner:
        raise AuthError("X-Tierwise-View-As is for staff members only")
    if not _ROLE_NAME.match(role):
        raise AuthError("X-Tierwise-View-As takes a role name")
    own = store.decisions_of(principal)
    if own.read(VIEW_AS_NEEDS) is not Level.FULL:
        raise AuthError(f"viewing as a role needs read of {VIEW_AS_NEEDS} (admins)")
    target = store.decisions_for((role,), None)
    wider = [key for key, level in target.levels.items() if not _covers(own.read(key), level)]
    if wider:
        raise AuthError(f"role {role} reads what you may not ({', '.join(sorted(wider)[:3])}): no view as it")
    return Principal(PrincipalKind.USER, principal.id, roles=(role,), view_as=role)


async def _principal(
    authorization: str | None,
    *,
    settings: Settings,
    engine: AsyncEngine,
    store: PolicyStore,
    verified: VerifiedTokens | None,
) -> Principal:
    if not authorization:
        raise AuthError("authentication required: send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("authentication required: send Authorization: Bearer <token>")
    if token.startswith(TOKEN_PREFIX):
        return await _partner_principal(token, engine)
    sub = decode_staff_token(settings, token, verified)
    subject = f"user:{sub}"
    return Principal(PrincipalKind.USER, sub, roles=store.roles_of(subject))


async def _partner_principal(token: str, engine: AsyncEngine) -> Principal:
    body = token[len(TOKEN_PREFIX) :]
    token_hex, _, secret = body.partition("_")
    try:
        token_id = uuid.UUID(hex=token_hex)
    except ValueError:
        raise AuthError("invalid token") from None
    # one statement in autocommit: no BEGIN and ROLLBACK around it (three round trips become one); read
    # on every request, so a revocation applies at once on every instance. It also notes the token's last
    # use (at most once a minute), for the admins who decide which tokens to revoke.
    digest = hash_secret(secret)
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = await partners_repo.token_for_use(autocommit, token_id, digest)
    if row is None or not hmac.compare_digest(row["secret_hash"], digest):
        raise AuthError("invalid token")
    now = dt.datetime.now(dt.UTC)
    if row["revoked_at"] is not None:
        raise AuthError("token revoked")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        raise AuthError("token expired")
    return Principal(
        PrincipalKind.TOKEN,
        str(token_id),
        roles=(row["role"],),
        partner_id=row["partner_id"],
        scopes=tuple(row["scopes"]),
        token_name=row["name"],
        arbitrary_documents=bool(row["allow_arbitrary_documents"]),
    )
