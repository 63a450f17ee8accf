"""The catalogue's storage declarations (authz/catalogue.py ``STORAGE``, read by the read compiler) agree with
the tables: every declared column exists on its table, ``encrypted`` is exactly what infra/crypto.py encrypts,
and every declared field is a field of the catalogue."""

from __future__ import annotations

from authz.catalogue import CATALOGUE, STORAGE
from infra import crypto
from infra.tables import metadata


def test_every_declared_column_exists_and_encrypted_is_what_crypto_encrypts() -> None:
    encrypted = set(crypto.ENCRYPTED_COLUMNS)
    for key, stored in STORAGE.items():
        assert key in CATALOGUE, key
        table = metadata.tables[stored.table]
        if stored.expression:
            assert "{t}" in stored.column or "{customer}" in stored.column, key
            continue
        assert stored.column in table.c, key
        assert stored.encrypted == ((stored.table, stored.column) in encrypted), key


def test_every_encrypted_column_the_compiler_can_reach_is_declared_encrypted() -> None:
    declared = {(s.table, s.column) for s in STORAGE.values() if s.encrypted}
    reachable_tables = {s.table for s in STORAGE.values()}
    assert {c for c in crypto.ENCRYPTED_COLUMNS if c[0] in reachable_tables} == declared
