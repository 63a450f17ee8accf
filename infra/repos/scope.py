"""The partner scope, written once: which rows of each table a caller may read or change.

A partner principal (``Scope.partner_id`` set) reaches only its own partner's customers and what hangs
off them (complaints, survey responses and invitations, purchases, tier history, churn scores), its own
partner's API tokens and the audit entries its own tokens wrote. Staff (``Scope.partner_id`` None) reach
every row. Every repository read and write takes its ``WHERE`` from here: as a SQLAlchemy clause
(``customers``, ``by_customer``, ``api_tokens``, ``webhook_endpoints``, ``audit_entries``) or, for
statements written as SQL text (reports, tier aggregates, data quality, batch inserts), as a fragment with
its own bind parameter (``customers_sql``, ``by_customer_sql``) and ``params``. The namespace of a
writer's external ids (``owned``, ``owned_sql``) is written here too, and ``reaches`` says the same in
Python for rows that never pass through a statement (the live event feed).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Text, cast, literal, select, true

from infra.repos.base import Scope
from infra.tables import api_tokens as api_tokens_table
from infra.tables import audit_log
from infra.tables import customers as customers_table
from infra.tables import webhook_endpoints as webhook_endpoints_table

# The one bind parameter of the SQL-text fragments; no other parameter of a statement may use this name.
PARAM = "scope_partner_id"


def customers(scope: Scope, table: Any = customers_table) -> ColumnElement[bool]:
    """The customers (``table``: ``customers`` or an alias of it) the scope reaches."""
    return true() if scope.partner_id is None else table.c.partner_id == scope.partner_id


def customer_ids(scope: Scope) -> Select[Any]:
    """The ids of the customers the scope reaches, for ``column.in_(...)``."""
    return select(customers_table.c.id).where(customers(scope))


def by_customer(scope: Scope, column: Any) -> ColumnElement[bool]:
    """Rows of a table hanging off a customer (``column``: its customer id) that the scope reaches."""
    return true() if scope.partner_id is None else column.in_(customer_ids(scope))


def api_tokens(scope: Scope, table: Any = api_tokens_table) -> ColumnElement[bool]:
    """The API tokens the scope reaches: a partner's own."""
    return true() if scope.partner_id is None else table.c.partner_id == scope.partner_id


def webhook_endpoints(scope: Scope, table: Any = webhook_endpoints_table) -> ColumnElement[bool]:
    """The webhook endpoints the scope reaches: a partner's own (never the staff's, which receive every
    event); their deliveries follow their endpoint."""
    return true() if scope.partner_id is None else table.c.partner_id == scope.partner_id


def audit_entries(scope: Scope) -> ColumnElement[bool]:
    """The audit entries the scope reaches: for a partner, those written by one of its own tokens (the
    entries of its tokens' reads and writes, which name only its own customers)."""
    if scope.partner_id is None:
        return true()
    # actor is "token:<uuid>": compared with the text form of the partner's token ids
    subjects = select(literal("token:") + cast(api_tokens_table.c.id, Text)).where(api_tokens(scope))
    return audit_log.c.actor.in_(subjects)


def owned(scope: Scope, column: Any) -> ColumnElement[bool]:
    """Rows written under the caller's own name (``column``: their ``partner_id``): a partner's own, and for
    staff those written without a partner. The namespace of the writer's external ids and references
    (purchases, complaints, survey responses, refunds, benefit uses; customers by external reference):
    a partner's ``o-1`` and the staff's ``o-1`` are different keys. ``=`` / ``IS NULL`` rather than ``IS
    NOT DISTINCT FROM``: only these can use the (partner, external id) indexes; the other scans a whole
    index per lookup (seconds at a million rows)."""
    owner: ColumnElement[bool] = column == scope.partner_id if scope.partner_id is not None else column.is_(None)
    return owner


def owned_sql(scope: Scope, column: str) -> str:
    """``owned`` for SQL text: ``<column> = :scope_partner_id`` or ``<column> IS NULL`` (``column`` fixed by
    the code, never input)."""
    return f"{column} IS NULL" if scope.partner_id is None else f"{column} = CAST(:{PARAM} AS uuid)"


def reaches(scope: Scope, partner_id: UUID | str | None) -> bool:
    """Whether the scope reaches a row (an event of the feed, say) that belongs to ``partner_id``'s
    customers, decided in Python where no statement is run: staff reach every row, a partner its own."""
    return scope.partner_id is None or (partner_id is not None and str(partner_id) == str(scope.partner_id))


def customers_sql(scope: Scope, alias: str) -> str:
    """``customers_sql`` for statements written as SQL text: `` AND <alias>.partner_id = :scope_partner_id``
    (empty for staff). ``alias`` is a customers alias of the statement (fixed by the code, never input)."""
    if scope.partner_id is None:
        return ""
    return f" AND {alias}.partner_id = CAST(:{PARAM} AS uuid)"


def by_customer_sql(scope: Scope, column: str) -> str:
    """`` AND <column> IN (the scope's customers)`` for SQL text; ``column`` holds a customer id."""
    if scope.partner_id is None:
        return ""
    return f" AND {column} IN (SELECT sc.id FROM customers sc WHERE sc.partner_id = CAST(:{PARAM} AS uuid))"


def params(scope: Scope) -> dict[str, Any]:
    """The bind parameter of the SQL-text fragments (always given: unused by staff statements)."""
    return {PARAM: scope.partner_id}
