"""Casbin rules, roles and the policy version, in PostgreSQL. A change bumps the version and
notifies every instance (``LISTEN tierwise_policy``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from infra.repos.base import Executor, rowcount
from infra.tables import audit_log, authz_state, casbin_rules, roles

POLICY_CHANNEL = "tierwise_policy"


async def load_rules(db: Executor) -> tuple[int, list[tuple[str, tuple[str, ...]]]]:
    version = (await db.execute(select(authz_state.c.policy_version).where(authz_state.c.id == 1))).scalar_one()
    rows = (
        await db.execute(
            select(
                casbin_rules.c.ptype, casbin_rules.c.v0, casbin_rules.c.v1, casbin_rules.c.v2, casbin_rules.c.v3
            ).order_by(casbin_rules.c.id)
        )
    ).all()
    return int(version), [(r.ptype, (r.v0, r.v1, r.v2, r.v3)) for r in rows]


async def policy_version(db: Executor) -> int:
    return int((await db.execute(select(authz_state.c.policy_version).where(authz_state.c.id == 1))).scalar_one())


async def bump_version(db: Executor) -> int:
    """Increase the policy version and notify listeners when the transaction commits."""
    version = (
        await db.execute(
            update(authz_state)
            .where(authz_state.c.id == 1)
            .values(policy_version=authz_state.c.policy_version + 1, updated_at=func.now())
            .returning(authz_state.c.policy_version)
        )
    ).scalar_one()
    await db.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": POLICY_CHANNEL, "payload": str(version)})
    return int(version)


async def add_rule(db: Executor, ptype: str, values: tuple[str, ...]) -> bool:
    """Add a rule; False when it exists (also when another transaction added it meanwhile: the insert
    waits for it, then does nothing)."""
    padded = (*values, "", "", "", "")[:4]
    added = (
        await db.execute(
            pg_insert(casbin_rules)
            .values(ptype=ptype, v0=padded[0], v1=padded[1], v2=padded[2], v3=padded[3])
            .on_conflict_do_nothing()
            .returning(casbin_rules.c.id)
        )
    ).first()
    return added is not None


async def remove_rules(db: Executor, ptype: str, **match: str) -> int:
    stmt = delete(casbin_rules).where(casbin_rules.c.ptype == ptype)
    for column, value in match.items():
        stmt = stmt.where(casbin_rules.c[column] == value)
    return rowcount(await db.execute(stmt))


async def list_roles(db: Executor) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in (await db.execute(select(roles).order_by(roles.c.name))).all()]


async def role_exists(db: Executor, name: str) -> bool:
    return (await db.execute(select(roles.c.name).where(roles.c.name == name))).first() is not None


async def create_role(db: Executor, name: str, description: str) -> bool:
    """Create a role; False when the name is taken (by a role committed meanwhile too)."""
    stmt = pg_insert(roles).values(name=name, description=description).on_conflict_do_nothing().returning(roles.c.name)
    return (await db.execute(stmt)).first() is not None


async def delete_role(db: Executor, name: str) -> None:
    await db.execute(delete(roles).where(roles.c.name == name))


async def write_audit(db: Executor, **values: Any) -> None:
    await db.execute(insert(audit_log).values(**values))


# the sensitive-read audit row, as one statement on its own (RequestDb.write_one): no transaction around it
SENSITIVE_READ_AUDIT = text(
    "INSERT INTO audit_log (actor, action, request_id, target_type, target_ids, fields) "
    "VALUES (CAST(:actor AS text), 'sensitive_read', CAST(:request_id AS text), 'Customer', "
    "CAST(:target_ids AS text[]), CAST(:fields AS text[]))"
)
