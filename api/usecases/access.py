"""Use-cases of access administration: minting partner tokens (``tw_pat_<id>_<secret>``, stored as a
SHA-256 of the secret; api/edge/auth.py checks them)."""

from __future__ import annotations

import hashlib
import secrets
import uuid

TOKEN_PREFIX = "tw_pat_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_partner_token() -> tuple[uuid.UUID, str, str]:
    """(token id, the full token shown once, the hash to store)."""
    token_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    return token_id, f"{TOKEN_PREFIX}{token_id.hex}_{secret}", hash_secret(secret)
