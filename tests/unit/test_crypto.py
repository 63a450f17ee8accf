"""The keyring: authenticated encryption bound to a column, key ids, blind indexes, configuration."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re

import pytest
from pydantic import SecretStr, ValidationError

from infra import crypto
from infra.crypto import DecryptionError, KeyConfigError, Keyring
from infra.settings import Settings


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


K1, K2, BIDX = _key(), _key(), _key()


def ring(keys: str = f"k1:{K1}", current: str | None = None, bidx: str = BIDX) -> Keyring:
    return Keyring.parse(keys, bidx, current)


def test_round_trip_gives_a_self_describing_token_and_a_fresh_nonce_each_time() -> None:
    r = ring()
    a, b = r.encrypt("ada@example.org", "customers.email"), r.encrypt("ada@example.org", "customers.email")
    assert a.startswith("tw1:k1:")
    assert b.startswith("tw1:k1:")
    assert a != b  # random nonce: equal plaintexts do not give equal tokens
    assert "ada@example.org" not in a  # (a short piece such as "ada" can turn up in random base64)
    assert r.decrypt(a, "customers.email") == r.decrypt(b, "customers.email") == "ada@example.org"
    assert crypto.key_id_of(a) == "k1"
    unicode = "Zoë 李 — “quoted” ✓"
    assert r.decrypt(r.encrypt(unicode, "complaints.description"), "complaints.description") == unicode


def test_a_token_is_bound_to_its_column() -> None:
    r = ring()
    token = r.encrypt("+4915112345678", "customers.phone")
    with pytest.raises(DecryptionError, match=r"customers\.email: value fails authentication.*another column"):
        r.decrypt(token, "customers.email")


def test_wrong_key_and_tampering_fail_authentication() -> None:
    token = ring().encrypt("secret", "customers.national_id")
    other = ring(f"k1:{K2}")  # same id, another key
    with pytest.raises(DecryptionError, match="fails authentication under key 'k1'"):
        other.decrypt(token, "customers.national_id")
    body = bytearray(base64.urlsafe_b64decode(token.split(":", 2)[2]))
    body[-1] ^= 1
    tampered = "tw1:k1:" + base64.urlsafe_b64encode(bytes(body)).decode()
    with pytest.raises(DecryptionError, match="fails authentication"):
        ring().decrypt(tampered, "customers.national_id")


def test_unknown_key_id_and_non_tokens_have_clear_errors() -> None:
    token = ring(f"k1:{K1},k9:{K2}", current="k9").encrypt("x", "customers.email")
    with pytest.raises(DecryptionError, match=r"key id 'k9', which is not in TIERWISE_ENCRYPTION_KEYS \(known: k1\)"):
        ring().decrypt(token, "customers.email")
    with pytest.raises(DecryptionError, match="not an encrypted value"):
        ring().decrypt("ada@example.org", "customers.email")
    with pytest.raises(DecryptionError, match="malformed"):
        ring().decrypt("tw1:k1:!!!!", "customers.email")


def test_current_key_defaults_to_the_last_listed_and_old_keys_still_decrypt() -> None:
    old = ring().encrypt("v", "survey_answers.text")
    both = ring(f"k1:{K1},k2:{K2}")
    assert both.current_id == "k2"
    assert both.key_ids == ("k1", "k2")
    assert both.needs_rotation(old)
    assert both.decrypt(old, "survey_answers.text") == "v"
    new = both.reencrypt(old, "survey_answers.text")
    assert crypto.key_id_of(new) == "k2"
    assert not both.needs_rotation(new)
    assert both.reencrypt(new, "survey_answers.text") == new  # nothing to do twice
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
        token = date_type.process_bind_param(dt.date(1990, 5, 17), None)
        assert token is not None
        assert token.startswith("tw1:k1:")
        assert "1990-05-17" not in token
        assert date_type.process_result_value(token, None) == dt.date(1990, 5, 17)
        json_type = crypto.EncryptedJSON("customers.address")
        token = json_type.process_bind_param({"city": "Berlin", "country": "DE"}, None)
        assert token is not None
        assert "Berlin" not in token
        assert json_type.process_result_value(token, None) == {"city": "Berlin", "country": "DE"}
        assert json_type.process_bind_param(None, None) is None
        with pytest.raises(DecryptionError):
            crypto.EncryptedText("customers.email").process_result_value(token, None)  # address token ≠ email
    finally:
        crypto._current = saved


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
