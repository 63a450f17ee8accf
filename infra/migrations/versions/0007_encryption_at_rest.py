"""encryption at rest: sensitive customer fields and free text become ``tw1:`` tokens; blind indexes.

- customers.email / phone / national_id / birth_date / address, complaints.description,
  complaint_events.note and survey_answers.text hold AES-256-GCM tokens (infra/crypto.py); birth_date (date) and address
  (jsonb) become text first.
- customers gains email_bidx, phone_bidx, national_id_bidx, name_dob_bidx (keyed HMAC of the
  normalised value) with btree indexes: equality lookups and duplicate matching.
- Existing plaintext rows are encrypted in batches (keyset by id) under the current key of
  TIERWISE_ENCRYPTION_KEYS, and their blind indexes filled. Rows already encrypted are skipped, so a
  re-run after a failure continues. The downgrade decrypts everything back.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from infra import crypto

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
BIDX = ("email_bidx", "phone_bidx", "national_id_bidx", "name_dob_bidx")
CUSTOMER_FIELDS = ("email", "phone", "national_id", "birth_date", "address")


# Below every id of the type: the keyset walk starts here. A plain ``id > :after`` stays an index condition
# in a generic prepared plan (``:after IS NULL OR id > :after`` became a filter there: every batch re-read
# the table from its start).
_FIRST: dict[str, Any] = {"uuid": uuid.UUID(int=0), "bigint": -(2**63)}


def _batches(conn: sa.Connection, sql: str, id_type: str) -> Any:
    """Rows of ``sql`` (which selects ``id`` first and takes ``:after``), BATCH at a time, keyset by id."""
    after: Any = _FIRST[id_type]
    while True:
        rows = conn.execute(sa.text(sql), {"after": after, "n": BATCH}).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _address_text(value: str) -> str:
    return orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS).decode()


def _encrypt_customers(conn: sa.Connection, keyring: crypto.Keyring) -> None:
    select = """
        SELECT id, name, email, phone, national_id, birth_date, address FROM customers
        WHERE id > CAST(:after AS uuid)
          AND (   (email IS NOT NULL AND email NOT LIKE 'tw1:%') OR (phone IS NOT NULL AND phone NOT LIKE 'tw1:%')
               OR (national_id IS NOT NULL AND national_id NOT LIKE 'tw1:%')
               OR (birth_date IS NOT NULL AND birth_date NOT LIKE 'tw1:%')
               OR (address IS NOT NULL AND address NOT LIKE 'tw1:%'))
        ORDER BY id LIMIT :n
    """
    update = sa.text(
        "UPDATE customers SET email = :email, phone = :phone, national_id = :national_id,"
        " birth_date = :birth_date, address = :address, email_bidx = :email_bidx, phone_bidx = :phone_bidx,"
        " national_id_bidx = :national_id_bidx, name_dob_bidx = :name_dob_bidx WHERE id = :id"
    )
    for rows in _batches(conn, select, "uuid"):
        params = []
        for r in rows:
            plain = {f: getattr(r, f) for f in CUSTOMER_FIELDS}
            if plain["address"] is not None:
                plain["address"] = _address_text(plain["address"])
            enc = {f: None if v is None else keyring.encrypt(v, f"customers.{f}") for f, v in plain.items()}
            idx = keyring.customer_indexes(
                {
                    **plain,
                    "name": r.name,
                    "birth_date": plain["birth_date"] and dt.date.fromisoformat(plain["birth_date"]),
                }
            )
            params.append({"id": r.id, **enc, **idx})
        conn.execute(update, params)


def _encrypt_text(conn: sa.Connection, keyring: crypto.Keyring, table: str, column: str, id_type: str) -> None:
    select = f"""
        SELECT id, {column} AS v FROM {table}
        WHERE id > CAST(:after AS {id_type})
          AND {column} IS NOT NULL AND {column} NOT LIKE 'tw1:%'
        ORDER BY id LIMIT :n
    """
    update = sa.text(f"UPDATE {table} SET {column} = :v WHERE id = :id")
    for rows in _batches(conn, select, id_type):
        conn.execute(update, [{"id": r.id, "v": keyring.encrypt(r.v, f"{table}.{column}")} for r in rows])


def upgrade() -> None:
    keyring = crypto.current()
    conn = op.get_bind()
    op.alter_column("customers", "birth_date", type_=sa.Text(), postgresql_using="birth_date::text")
    op.alter_column("customers", "address", type_=sa.Text(), postgresql_using="address::text")
    for column in BIDX:
        op.add_column("customers", sa.Column(column, sa.Text(), nullable=True))
    _encrypt_customers(conn, keyring)
    _encrypt_text(conn, keyring, "complaints", "description", "uuid")
    _encrypt_text(conn, keyring, "complaint_events", "note", "bigint")
    _encrypt_text(conn, keyring, "survey_answers", "text", "bigint")
    for column in BIDX:
        op.create_index(f"ix_customers_{column}", "customers", [column])


def _decrypt_all(
    conn: sa.Connection, keyring: crypto.Keyring, table: str, columns: Sequence[str], id_type: str
) -> None:
    cols = ", ".join(columns)
    any_token = " OR ".join(f"{c} LIKE 'tw1:%'" for c in columns)
    select = f"""
        SELECT id, {cols} FROM {table}
        WHERE id > CAST(:after AS {id_type}) AND ({any_token})
        ORDER BY id LIMIT :n
    """
    update = sa.text(f"UPDATE {table} SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE id = :id")
    plain: Callable[[str | None, str], str | None] = lambda v, c: (  # noqa: E731
        v if v is None or not v.startswith("tw1:") else keyring.decrypt(v, f"{table}.{c}")
    )
    for rows in _batches(conn, select, id_type):
        conn.execute(update, [{"id": r.id, **{c: plain(getattr(r, c), c) for c in columns}} for r in rows])


def downgrade() -> None:
    keyring = crypto.current()
    conn = op.get_bind()
    for column in BIDX:
        op.drop_index(f"ix_customers_{column}", table_name="customers")
    _decrypt_all(conn, keyring, "customers", CUSTOMER_FIELDS, "uuid")
    _decrypt_all(conn, keyring, "complaints", ("description",), "uuid")
    _decrypt_all(conn, keyring, "complaint_events", ("note",), "bigint")
    _decrypt_all(conn, keyring, "survey_answers", ("text",), "bigint")
    for column in BIDX:
        op.drop_column("customers", column)
    op.alter_column("customers", "address", type_=postgresql.JSONB(), postgresql_using="address::jsonb")
    op.alter_column("customers", "birth_date", type_=sa.Date(), postgresql_using="birth_date::date")
