"""The keyring: authenticated encryption bound to a column and a row, key ids, blind indexes, configuration."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import uuid

import pytest
from pydantic import SecretStr, ValidationError

from domain.errors import DataIntegrity
from infra import crypto
from infra.crypto import DecryptionError, KeyConfigError, Keyring
from infra.settings import Settings


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


K1, K2, BIDX = _key(), _key(), _key()
ROW, OTHER_ROW = uuid.uuid4(), uuid.uuid4()


def ring(keys: str = f"k1:{K1}", current: str | None = None, bidx: str = BIDX) -> Keyring:
    return Keyring.parse(keys, bidx, current)


def test_round_trip_gives_a_self_describing_token_and_a_fresh_nonce_each_time() -> None:
    r = ring()
    a, b = r.encrypt("ada@example.org", "customers.email", ROW), r.encrypt("ada@example.org", "customers.email", ROW)
    assert a.startswith("tw2:k1:")
    assert b.startswith("tw2:k1:")
    assert a != b  # random nonce: equal plaintexts do not give equal tokens
    assert "ada@example.org" not in a  # (a short piece such as "ada" can turn up in random base64)
    assert r.decrypt(a, "customers.email", ROW) == r.decrypt(b, "customers.email", str(ROW)) == "ada@example.org"
    assert crypto.key_id_of(a) == "k1"
    assert crypto.version_of(a) == "tw2"
    unicode = "Zoë 李 — “quoted” ✓"
    assert r.decrypt(r.encrypt(unicode, "complaint_events.note", 7), "complaint_events.note", 7) == unicode


def test_a_token_is_bound_to_its_column() -> None:
    r = ring()
    token = r.encrypt("+4915112345678", "customers.phone", ROW)
    with pytest.raises(DecryptionError, match=r"customers\.email: value fails authentication.*another row or column"):
        r.decrypt(token, "customers.email", ROW)


def test_a_v2_token_is_bound_to_its_row() -> None:
    r = ring()
    token = r.encrypt("ada@example.org", "customers.email", ROW)
    with pytest.raises(crypto.TokenMismatch, match=r"customers\.email: value fails authentication.*another row"):
        r.decrypt(token, "customers.email", OTHER_ROW)  # swapped into another customer's row
    with pytest.raises(DecryptionError, match="bound to its row, and no row id was given"):
        r.decrypt(token, "customers.email")
    event = r.encrypt("note", "complaint_events.note", 41)
    with pytest.raises(crypto.TokenMismatch):
        r.decrypt(event, "complaint_events.note", 42)
    assert r.decrypt(event, "complaint_events.note", "41") == "note"  # the row id as SQL's id::text spells it


def test_v1_tokens_still_decrypt_anywhere_in_their_column_and_need_an_upgrade() -> None:
    r = ring()
    legacy = r.encrypt("ada@example.org", "customers.email")  # what migration 0007 writes: no row
    assert legacy.startswith("tw1:k1:")
    assert r.decrypt(legacy, "customers.email", ROW) == r.decrypt(legacy, "customers.email", OTHER_ROW)
    with pytest.raises(DecryptionError, match="another column"):
        r.decrypt(legacy, "customers.phone", ROW)
    assert r.needs_rotation(legacy)  # current key, but version 1
    upgraded = r.reencrypt(legacy, "customers.email", ROW)
    assert upgraded.startswith("tw2:k1:")
    assert not r.needs_rotation(upgraded)
    assert r.reencrypt(upgraded, "customers.email", ROW) == upgraded  # nothing to do twice
    assert r.decrypt(upgraded, "customers.email", ROW) == "ada@example.org"
    with pytest.raises(crypto.TokenMismatch):
        r.decrypt(upgraded, "customers.email", OTHER_ROW)


def test_a_moved_v2_token_under_an_old_key_is_not_laundered_by_rotation() -> None:
    old = ring().encrypt("ada@example.org", "customers.email", ROW)
    both = ring(f"k1:{K1},k2:{K2}")
    with pytest.raises(crypto.TokenMismatch):
        both.reencrypt(old, "customers.email", OTHER_ROW)
    assert both.decrypt(both.reencrypt(old, "customers.email", ROW), "customers.email", ROW) == "ada@example.org"


def test_wrong_key_and_tampering_fail_authentication() -> None:
    token = ring().encrypt("secret", "customers.national_id", ROW)
    other = ring(f"k1:{K2}")  # same id, another key
    with pytest.raises(DecryptionError, match="fails authentication under key 'k1'"):
        other.decrypt(token, "customers.national_id", ROW)
    body = bytearray(base64.urlsafe_b64decode(token.split(":", 2)[2]))
    body[-1] ^= 1
    tampered = "tw2:k1:" + base64.urlsafe_b64encode(bytes(body)).decode()
    with pytest.raises(DecryptionError, match="fails authentication"):
        ring().decrypt(tampered, "customers.national_id", ROW)
    downgraded = "tw1:" + token.split(":", 1)[1]  # a tw2 token relabelled tw1 to shed its row binding
    with pytest.raises(DecryptionError, match="fails authentication"):
        ring().decrypt(downgraded, "customers.national_id", OTHER_ROW)


def test_unknown_key_id_and_non_tokens_have_clear_errors() -> None:
    token = ring(f"k1:{K1},k9:{K2}", current="k9").encrypt("x", "customers.email", ROW)
    with pytest.raises(DecryptionError, match=r"key id 'k9', which is not in TIERWISE_ENCRYPTION_KEYS \(known: k1\)"):
        ring().decrypt(token, "customers.email", ROW)
    with pytest.raises(DecryptionError, match="not an encrypted value"):
        ring().decrypt("ada@example.org", "customers.email", ROW)
    with pytest.raises(DecryptionError, match="malformed"):
        ring().decrypt("tw2:k1:!!!!", "customers.email", ROW)


def test_current_key_defaults_to_the_last_listed_and_old_keys_still_decrypt() -> None:
    old = ring().encrypt("v", "survey_answers.text", 5)
    both = ring(f"k1:{K1},k2:{K2}")
    assert both.current_id == "k2"
    assert both.key_ids == ("k1", "k2")
    assert both.needs_rotation(old)
    assert both.decrypt(old, "survey_answers.text", 5) == "v"
    new = both.reencrypt(old, "survey_answers.text", 5)
    assert crypto.key_id_of(new) == "k2"
    assert not both.needs_rotation(new)
    assert both.reencrypt(new, "survey_answers.text", 5) == new  # nothing to do twice
    assert ring(f"k1:{K1},k2:{K2}", current="k1").current_id == "k1"


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        ("", None, "lists no key"),
        ("k1", None, "comma-separated list"),
        ("bad id:" + K1, None, "comma-separated list"),
        (f"k1:{K1},k1:{K2}", None, "listed twice"),
        ("k1:" + base64.b64encode(b"short").decode(), None, "must be 32 bytes"),
        ("k1:not base64!", None, "not base64"),
        (f"k1:{K1}", "k2", "TIERWISE_ENCRYPTION_KEY_ID 'k2' is not in TIERWISE_ENCRYPTION_KEYS"),
    ],
)
def test_bad_key_configuration_is_refused(keys: str, current: str | None, message: str) -> None:
    with pytest.raises(KeyConfigError, match=message):
        ring(keys, current)


def test_urlsafe_keys_are_accepted() -> None:
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(K1)).decode().rstrip("=")
    assert ring(f"k1:{urlsafe}").decrypt(ring().encrypt("x", "c.c"), "c.c") == "x"


def test_blind_index_is_keyed_deterministic_and_domain_separated() -> None:
    r = ring()
    a = r.blind_index("email", "ada@example.org")
    assert a == r.blind_index("email", "ada@example.org")
    assert len(a) == 64
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert a != r.blind_index("phone", "ada@example.org")  # kinds are separated
    assert a != ring(bidx=_key()).blind_index("email", "ada@example.org")  # keyed
    assert a == ring(f"k1:{K2}").blind_index("email", "ada@example.org")  # independent of encryption keys
    with pytest.raises(ValueError, match="unknown blind-index kind"):
        r.blind_index("name", "x")


def test_name_dob_value_and_customer_indexes() -> None:
    assert crypto.name_dob_index_value("  Ada   LOVELACE ", dt.date(1815, 12, 10)) == "ada lovelace|1815-12-10"
    r = ring()
    idx = r.customer_indexes({"email": "a@b.example", "phone": None, "name": "Ada", "birth_date": dt.date(2000, 1, 2)})
    assert idx == {
        "email_bidx": r.blind_index("email", "a@b.example"),
        "phone_bidx": None,
        "name_dob_bidx": r.blind_index("name_dob", "ada|2000-01-02"),
    }
    assert r.customer_indexes({"name": "Ada"}) == {}  # half of name + birth date: left alone


def test_settings_use_development_keys_outside_production_and_refuse_without_keys_in_production() -> None:
    dev = Keyring.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert dev.current_id == "dev1"
    with pytest.raises(ValidationError, match="TIERWISE_ENCRYPTION_KEYS and TIERWISE_BLIND_INDEX_KEY must be set"):
        Settings(_env_file=None, environment="production", jwt_secret=SecretStr("x" * 40))  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="not in TIERWISE_ENCRYPTION_KEYS"):
        Settings(_env_file=None, encryption_keys=SecretStr(f"k1:{K1}"), encryption_key_id="k7")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="development encryption keys cannot be used in production"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            jwt_secret=SecretStr("x" * 40),
            encryption_keys=SecretStr(crypto.DEV_ENCRYPTION_KEYS),
            blind_index_key=SecretStr(BIDX),
        )
    dev_key = crypto.DEV_ENCRYPTION_KEYS.split(":", 1)[1]
    urlsafe = dev_key.replace("+", "-").replace("/", "_").rstrip("=")  # the same key, spelt otherwise
    assert urlsafe != dev_key
    for keys, bidx in ((f"k1:{K1},prod:{urlsafe}", BIDX), (f"k1:{K1}", crypto.DEV_BLIND_INDEX_KEY.rstrip("="))):
        with pytest.raises(ValidationError, match="development encryption keys cannot be used in production"):
            Settings(  # type: ignore[call-arg]
                _env_file=None,
                environment="production",
                jwt_secret=SecretStr("x" * 40),
                encryption_keys=SecretStr(keys),
                blind_index_key=SecretStr(bidx),
            )
    prod = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="production",
        jwt_secret=SecretStr("x" * 40),
        encryption_keys=SecretStr(f"k1:{K1},k2:{K2}"),
        blind_index_key=SecretStr(BIDX),
    )
    assert Keyring.from_settings(prod).current_id == "k2"


def test_column_types_encrypt_on_bind_and_decrypt_on_result() -> None:
    saved = crypto._current
    crypto.configure(ring())
    try:
        date_type = crypto.EncryptedDate("customers.birth_date")
        token = date_type.process_bind_param(crypto.for_row(ROW, dt.date(1990, 5, 17)), None)
        assert token is not None
        assert token.startswith("tw2:k1:")
        assert "1990-05-17" not in token
        # A select gives "<row id> <token>" (column_expression): the row id read beside the token.
        assert date_type.process_result_value(f"{ROW} {token}", None) == dt.date(1990, 5, 17)
        json_type = crypto.EncryptedJSON("customers.address")
        token = json_type.process_bind_param(crypto.ForRow(ROW, {"city": "Berlin", "country": "DE"}), None)
        assert token is not None
        assert "Berlin" not in token
        assert json_type.process_result_value(f"{ROW} {token}", None) == {"city": "Berlin", "country": "DE"}
        assert json_type.process_bind_param(None, None) is None
        assert crypto.for_row(ROW, None) is None
        # A value that does not decrypt is read as a DataIntegrity, never as a plaintext, never raised.
        moved = crypto.EncryptedJSON("customers.address").process_result_value(f"{OTHER_ROW} {token}", None)
        assert isinstance(moved, DataIntegrity)
        assert moved.code == "DATA_INTEGRITY"
        assert "Berlin" not in str(moved)
        wrong_column = crypto.EncryptedText("customers.email").process_result_value(f"{ROW} {token}", None)
        assert isinstance(wrong_column, DataIntegrity)
        # A bare value is refused: every write names its row.
        with pytest.raises(TypeError, match=r"customers\.email is encrypted bound to its row"):
            crypto.EncryptedText("customers.email").process_bind_param("ada@example.org", None)
    finally:
        crypto._current = saved


def test_bind_row_wraps_only_the_encrypted_columns() -> None:
    from sqlalchemy import func

    from infra.tables import customers

    given = {"name": "Ada", "email": "a@b.example", "phone": None, "version": func.now()}
    bound = crypto.bind_row(customers, ROW, given)
    assert bound["name"] == "Ada"
    assert bound["email"] == crypto.ForRow(ROW, "a@b.example")
    assert bound["phone"] is None
    assert bound["version"] is given["version"]


def test_selects_carry_the_row_id_beside_every_encrypted_column() -> None:
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from infra.tables import complaint_events, customers

    sql = str(select(customers.c.email).compile(dialect=postgresql.dialect()))
    assert "CAST(customers.id AS TEXT) || ' ' || customers.email AS email" in sql
    sql = str(select(complaint_events.c.note).compile(dialect=postgresql.dialect()))
    assert "CAST(complaint_events.id AS TEXT) || ' ' || complaint_events.note AS note" in sql


def test_encrypted_columns_refuse_sql_comparisons_but_allow_null_tests() -> None:
    from sqlalchemy import select

    from infra.tables import customers

    c = customers.c
    sql = str(select(c.id).where(c.email.is_(None), c.phone.is_not(None), c.address == None))  # noqa: E711
    assert "email IS NULL" in sql
    assert "phone IS NOT NULL" in sql
    assert "address IS NULL" in sql
    for compare in (lambda: c.email == "a@b.example", lambda: c.birth_date > "2000", lambda: c.national_id.in_(["x"])):
        with pytest.raises(TypeError, match="is encrypted: it cannot be compared in SQL"):
            compare()
