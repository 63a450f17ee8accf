"""Alembic, driven from code: upgrade to head, and tell whether a database is behind."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.attributes["url"] = url
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected one migration head, found {heads}")
    return heads[0]


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        return self.current == self.head


async def schema_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    return SchemaState(current=current, head=head_revision())


def add_policy_rules(conn: Connection, rules: Iterable[tuple[str, str, str, str]]) -> None:
    """A migration's new policy rules (role, object, action, effect), kept if already there, and the policy
    version raised so every instance reloads them (the migrations that grant what they add use this)."""
    for sub, obj, act, eft in rules:
        conn.execute(
            sa.text(
                "INSERT INTO casbin_rules (ptype, v0, v1, v2, v3) VALUES ('p', :s, :o, :a, :e) ON CONFLICT DO NOTHING"
            ),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    _raise_policy_version(conn)


def remove_policy_rules(conn: Connection, rules: Iterable[tuple[str, str, str, str]]) -> None:
    """The downgrade of ``add_policy_rules``."""
    for sub, obj, act, eft in rules:
        conn.execute(
            sa.text("DELETE FROM casbin_rules WHERE ptype = 'p' AND v0 = :s AND v1 = :o AND v2 = :a AND v3 = :e"),
            {"s": sub, "o": obj, "a": act, "e": eft},
        )
    _raise_policy_version(conn)


def _raise_policy_version(conn: Connection) -> None:
    conn.execute(sa.text("UPDATE authz_state SET policy_version = policy_version + 1, updated_at = now()"))


def execute_function_script(sql: str) -> None:
    """A migration's script whose statements hold ';' of their own (function bodies, DO blocks): sent whole
    over asyncpg's simple-query protocol, which runs the statements one after another (no prepare), in the
    migration's transaction."""
    from sqlalchemy.util import await_

    driver = op.get_bind().connection.driver_connection
    assert driver is not None  # a migration runs on an open connection
    await_(driver.execute(sql))


def execute_script(ddl: str) -> None:
    """A migration's DDL, one statement after another (split at ';': for scripts whose statements hold no ';'
    of their own, i.e. no function bodies)."""
    for statement in ddl.split(";"):
        if statement.strip():
            op.execute(statement)
