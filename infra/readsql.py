"""The statement builder of the read compiler (issue 12): one SQL statement per root field of a read query,
which builds the field's response JSON inside PostgreSQL, as text, byte for byte what the API's encoder
(orjson) writes for the same values: compact, keys in document order, timestamps as Python's
``isoformat()``, decimals as strings, enum names, global ids and keyset cursors built in SQL.

The api layer (api/graphql/compiler.py) walks the GraphQL selection and describes the JSON it wants as a
tree of the nodes below; this module renders that tree to SQL. Nested objects and lists are correlated
subqueries (a LATERAL join in effect), each connection one ``LIMIT first + 1`` subquery; rows are the
live customers the caller's scope reaches (infra/repos/scope.py: the partner scope is in the ``WHERE``)
and what hangs off them.

A ``Checked`` leaf is one Python finishes (decrypting, masking, refusing, auditing): it comes out as the
JSON array ``[customer id, consented, value]``, the value of an encrypted column being ``"<row id> <token>"``
(what infra/crypto.py decrypts, bound to its row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, text

from domain import sla
from infra import crypto
from infra.pagination import _coerce, decode_cursor
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import scope as readable
from infra.repos import surveys as surveys_repo
from infra.repos.base import Scope, escape_like
from infra.repos.clocks import breached_sql

# ---------------------------------------------------------------- the JSON tree


@dataclass(frozen=True)
class Value:
    """A value of the current row: ``column`` (or an SQL expression with ``{t}`` and ``{customer}``)."""

    column: str
    render: str  # text, int, bool, timestamp, decimal, strings, enum, gid
    enum: tuple[tuple[str, str], ...] = ()  # (stored value, GraphQL name) for ``enum``
    type_name: str = ""  # for ``gid``
    expression: bool = False


@dataclass(frozen=True)
class Const:
    json: str


@dataclass(frozen=True)
class Checked:
    """A leaf Python finishes: ``[customer id, consented, value]`` (value null when ``column`` is None)."""

    column: str | None
    encrypted: bool = False
    consent_column: str | None = None
    render: str = "text"


@dataclass(frozen=True)
class ClockValues:
    """A complaint's SLA clock (``domain.sla.CLOCK_FIELDS``, in that order) and the statement's ``now()``, as a
    JSON array: a field Python computes from them with domain/sla.py (time left, the moving deadline, pauses),
    so the clock arithmetic has one definition."""


@dataclass(frozen=True)
class Obj:
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Relation:
    """A nested object (or list of objects, for ``events``, ``questions``, ``answers``): one of the joins
    of ``Builder.relation``."""

    kind: str
    body: Obj


@dataclass(frozen=True)
class Connection:
    """A connection: ``customers`` (the root list) or ``complaints`` (of a customer). ``parts`` are
    (key, part): ``("edges", ((key, "cursor" | Obj node | Const), …))``, ``("pageInfo", ((key,
    "hasNextPage" | "endCursor" | Const), …))``, ``("totalCount", None)`` or a ``Const``."""

    kind: str
    first_param: str
    parts: tuple[tuple[str, Any], ...]


# ---------------------------------------------------------------- rendering values


def _iso(expr: str) -> str:
    """``datetime.isoformat()`` of a timestamptz, as asyncpg reads it (UTC)."""
    return (
        f"(to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN to_char({expr}, 'US') = '000000' THEN '' ELSE '.' || to_char({expr}, 'US') END || '+00:00')"
    )


def _b64url(expr: str) -> str:
    """Unpadded urlsafe base64 of the UTF-8 text ``expr`` (``api.graphql.core.ids``, ``infra.pagination``)."""
    return f"rtrim(translate(encode(convert_to({expr}, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"


def _quoted(expr: str) -> str:
    return f"'\"' || {expr} || '\"'"


def render_value(expr: str, render: str, enum: tuple[tuple[str, str], ...] = (), type_name: str = "") -> str:
    """SQL giving the JSON text of ``expr`` (``null`` for NULL)."""
    if render == "text":
        inner = f"to_json({expr})::text"
    elif render == "int":
        inner = f"({expr})::text"
    elif render == "bool":
        return f"CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' ELSE 'null' END"
    elif render == "timestamp":
        inner = _quoted(_iso(expr))
    elif render == "decimal":
        inner = _quoted(f"({expr})::text")
    elif render == "strings":
        return f"coalesce(array_to_json({expr})::text, '[]')"
    elif render == "strings_or_null":
        inner = f"array_to_json({expr})::text"
    elif render == "enums":
        cases = " ".join(f"WHEN '{stored}' THEN '\"{name}\"'" for stored, name in enum)
        return (
            f"coalesce((SELECT '[' || string_agg(CASE _e.v {cases} ELSE 'null' END, ',' ORDER BY _e.n) || ']' "
            f"FROM unnest({expr}) WITH ORDINALITY AS _e(v, n)), '[]')"
        )
    elif render == "json":  # jsonb as PostgreSQL writes it: the compiler re-encodes it (compact, as orjson)
        inner = f"({expr})::text"
    elif render == "enum":
        cases = " ".join(f"WHEN '{stored}' THEN '\"{name}\"'" for stored, name in enum)
        return f"CASE {expr} {cases} ELSE 'null' END"
    elif render == "idtext":
        inner = f"to_json(({expr})::text)::text"
    elif render == "gid":
        inner = _quoted(_b64url(f"'{type_name}:' || ({expr})::text"))
    else:
        raise ValueError(f"unknown rendering {render}")
    return f"coalesce({inner}, 'null')"


# ---------------------------------------------------------------- statements


def _live(alias: str, scope: Scope) -> str:
    where = f"{alias}.deleted_at IS NULL AND {alias}.merged_into_id IS NULL"
    return where + readable.customers_sql(scope, alias)


# The orders of the customers list: (SQL over c and m, descending, needs the metrics join, cursor rendering).
# The same keys as infra/repos/customers.SORTS (whose columns coerce the cursor values).
CUSTOMER_SORTS: dict[str, tuple[str, bool, bool, str]] = {
    "CREATED_AT": ("{c}.created_at", False, False, "timestamp"),
    "CREATED_AT_DESC": ("{c}.created_at", True, False, "timestamp"),
    "UPDATED_AT_DESC": ("{c}.updated_at", True, False, "timestamp"),
    "NAME": ("{c}.name", False, False, "text"),
    "SPEND_12M_DESC": ("coalesce({m}.spend_12m, 0)", True, True, "decimal"),
    "LIFETIME_SPEND_DESC": ("coalesce({m}.lifetime_spend, 0)", True, True, "decimal"),
}
_CAST = {"timestamp": "timestamptz", "text": "text", "decimal": "numeric"}


def _cursor(sort: str, value_sql: str, alias: str) -> str:
    raw = f"'[\"{sort}\",' || {value_sql} || ',\"' || {alias}.id::text || '\"]'"
    return _quoted(_b64url(raw))


@dataclass
class Builder:
    """Renders one root field's tree to one statement; ``params`` collects its bind parameters' names."""

    scope: Scope
    counter: int = 0
    extra_params: dict[str, Any] = field(default_factory=dict)

    def alias(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # objects of a row: ``t`` the row's alias, ``customer`` the alias of its customer (or None)
    def obj(self, body: Obj, t: str, customer: str | None, customer_id: str) -> str:
        if not body.fields:
            return "'{}'"
        parts: list[str] = []
        for i, (key, node) in enumerate(body.fields):
            parts.append(f"'{',' if i else ''}\"{key}\":'")
            parts.append(self.node(node, t, customer, customer_id))
        return "('{' || " + " || ".join(parts) + " || '}')"

    def node(self, node: Any, t: str, customer: str | None, customer_id: str) -> str:
        if isinstance(node, Const):
            return "'" + node.json.replace("'", "''") + "'"
        if isinstance(node, Value):
            expr = node.column.format(t=t, customer=customer) if node.expression else f"{t}.{node.column}"
            return render_value(expr, node.render, node.enum, node.type_name)
        if isinstance(node, Checked):
            return self.checked(node, t, customer_id, customer)
        if isinstance(node, ClockValues):
            values = [render_value(f"{t}.{name}", CLOCK_RENDER[name]) for name in CLOCK_COLUMNS]
            return "('[' || " + " || ',' || ".join([*values, render_value("now()", "timestamp")]) + " || ']')"
        if isinstance(node, Relation):
            return self.relation(node, t, customer)
        if isinstance(node, Connection):
            return self.nested(node, t)
        raise TypeError(node)

    def checked(self, node: Checked, t: str, customer_id: str, customer: str | None) -> str:
        if node.column is None:
            value = "'null'"
        elif node.encrypted:
            value = f"coalesce(to_json({t}.id::text || ' ' || {t}.{node.column})::text, 'null')"
        else:
            value = render_value(f"{t}.{node.column}", node.render)
        consent = "'true'"
        if node.consent_column is not None and customer is not None:
            consent = f"CASE WHEN {customer}.{node.consent_column} IS NULL THEN 'false' ELSE 'true' END"
        customer_json = f"coalesce('\"' || {customer_id}::text || '\"', 'null')"
        return f"('[' || {customer_json} || ',' || {consent} || ',' || {value} || ']')"

    def customer_obj(self, body: Obj, c: str) -> str:
        return self.obj(body, c, c, f"{c}.id")

    def relation(self, node: Relation, t: str, customer: str | None) -> str:
        if node.kind == "tier":
            # the tier of the active policy (whose id is an uncorrelated subquery: computed once per
            # statement), else the code's own (initcap'd name, rank -1): two scalar subqueries, not a
            # UNION ALL per row (0.2 ms less of PostgreSQL's CPU on a page of 50)
            a, p = self.alias("t"), self.alias("p")
            inner = self.obj(node.body, a, None, f"{t}.id")
            return (
                f"CASE WHEN {t}.tier_code IS NULL THEN 'null' ELSE coalesce((SELECT {inner} FROM tiers {a} "
                f"WHERE {a}.policy_id = (SELECT {p}.id FROM tier_policies {p} WHERE {p}.status = 'active') "
                f"AND {a}.code = {t}.tier_code), (SELECT {inner} FROM (SELECT {t}.tier_code AS code, "
                f"initcap({t}.tier_code) AS name, -1 AS rank, '{{}}'::text[] AS benefits) {a})) END"
            )
        if node.kind == "metrics":
            m = self.alias("m")
            inner = self.obj(node.body, m, t, f"{m}.customer_id")
            return f"coalesce((SELECT {inner} FROM customer_metrics {m} WHERE {m}.customer_id = {t}.id), 'null')"
        if node.kind == "consent":
            return self.obj(node.body, t, t, f"{t}.id")
        if node.kind == "partner":
            a = self.alias("pa")
            inner = self.obj(node.body, a, None, f"{t}.id")
            return f"coalesce((SELECT {inner} FROM partners {a} WHERE {a}.id = {t}.partner_id), 'null')"
        if node.kind in ("category", "rootCause"):
            a = self.alias("x")
            table, column = (
                ("complaint_categories", "category_code")
                if node.kind == "category"
                else ("root_causes", "root_cause_code")
            )
            inner = self.obj(node.body, a, None, f"{t}.customer_id")
            return f"coalesce((SELECT {inner} FROM {table} {a} WHERE {a}.code = {t}.{column}), 'null')"
        if node.kind == "team":
            a = self.alias("tm")
            inner = self.obj(node.body, a, None, f"{t}.customer_id")
            return f"coalesce((SELECT {inner} FROM teams {a} WHERE {a}.id = {t}.team_id), 'null')"
        if node.kind == "events":
            a = self.alias("e")
            inner = self.obj(node.body, a, None, f"{t}.customer_id")
            return (
                f"'[' || coalesce((SELECT string_agg({inner}, ',' ORDER BY {a}.id) FROM complaint_events {a} "
                f"WHERE {a}.complaint_id = {t}.id), '') || ']'"
            )
        if node.kind == "churnRisk":
            a = self.alias("cr")
            inner = self.obj(node.body, a, None, f"{t}.id")
            return f"coalesce((SELECT {inner} FROM churn_scores {a} WHERE {a}.customer_id = {t}.id), 'null')"
        if node.kind in ("followUpOf", "complaint"):  # a complaint's prior one, a response's complaint
            a = self.alias("k")
            column = "follow_up_of_id" if node.kind == "followUpOf" else "complaint_id"
            inner = self.obj(node.body, a, None, f"{a}.customer_id")
            return (
                f"coalesce((SELECT {inner} FROM complaints {a} WHERE {a}.id = {t}.{column} "
                f"AND {_complaints_where(a, self.scope)}), 'null')"
            )
        if node.kind in ("survey", "question"):  # a response's survey, an answer's question (no customer data)
            a = self.alias("s")
            table, column = ("surveys", "survey_id") if node.kind == "survey" else ("survey_questions", "question_id")
            inner = self.obj(node.body, a, None, "NULL")
            return f"coalesce((SELECT {inner} FROM {table} {a} WHERE {a}.id = {t}.{column}), 'null')"
        if node.kind == "questions":
            a = self.alias("q")
            inner = self.obj(node.body, a, None, "NULL")
            return (
                f"'[' || coalesce((SELECT string_agg({inner}, ',' ORDER BY {a}.position) FROM survey_questions {a} "
                f"WHERE {a}.survey_id = {t}.id), '') || ']'"
            )
        if node.kind == "answers":  # of a response: its customer's
            a = self.alias("sa")
            inner = self.obj(node.body, a, None, f"{t}.customer_id")
            return (
                f"'[' || coalesce((SELECT string_agg({inner}, ',' ORDER BY {a}.id) FROM survey_answers {a} "
                f"WHERE {a}.response_id = {t}.id), '') || ']'"
            )
        if node.kind == "customer":
            c = self.alias("c")
            inner = self.customer_obj(node.body, c)
            return (
                f"coalesce((SELECT {inner} FROM customers {c} WHERE {c}.id = {t}.customer_id "
                f"AND {_live(c, self.scope)}), 'null')"
            )
        raise ValueError(node.kind)

    def connection(
        self, node: Connection, rows: str, a: str, item: str, sort: str, value_sql: str, total: str | None
    ) -> str:
        """The JSON of a connection over ``rows`` (a subquery ``LIMIT first + 1`` with ``_n``, the position)."""
        first = f"CAST(:{node.first_param} AS int)"
        cursors = any(
            x in ("cursor", "endCursor")
            for _, part in node.parts
            if not isinstance(part, Const) and part[1]
            for _, x in part[1]
            if isinstance(x, str)
        )
        if cursors:
            # each row's cursor made once, beside its row: the edges and endCursor read it (endCursor
            # used to render every row's cursor a second time to keep the last one)
            rows = f"SELECT {a}.*, {_cursor(sort, value_sql, a)} AS _cursor FROM ({rows}) {a}"
        out: list[str] = []
        for i, (key, part) in enumerate(node.parts):
            out.append(f"'{',' if i else ''}\"{key}\":'")
            if isinstance(part, Const):
                out.append(self.node(part, a, None, "NULL"))
                continue
            kind, sub = part
            if kind == "totalCount":
                out.append(total if total is not None else "'null'")
            elif kind == "edges":
                edge_parts: list[str] = []
                for j, (edge_key, edge_part) in enumerate(sub):
                    edge_parts.append(f"'{',' if j else ''}\"{edge_key}\":'")
                    if edge_part == "cursor":
                        edge_parts.append(f"{a}._cursor")
                    elif isinstance(edge_part, Const):
                        edge_parts.append(self.node(edge_part, a, None, "NULL"))
                    else:
                        edge_parts.append(item)
                edge = "('{' || " + " || ".join(edge_parts) + " || '}')" if edge_parts else "'{}'"
                out.append(
                    f"'[' || coalesce(string_agg({edge}, ',' ORDER BY {a}._n) FILTER (WHERE {a}._n <= {first}), '')"
                    " || ']'"
                )
            elif kind == "pageInfo":
                info_parts: list[str] = []
                for j, (info_key, info_part) in enumerate(sub):
                    info_parts.append(f"'{',' if j else ''}\"{info_key}\":'")
                    if info_part == "hasNextPage":
                        info_parts.append(f"CASE WHEN count(*) > {first} THEN 'true' ELSE 'false' END")
                    elif info_part == "endCursor":
                        info_parts.append(
                            f"coalesce((array_agg({a}._cursor ORDER BY {a}._n DESC) "
                            f"FILTER (WHERE {a}._n <= {first}))[1], 'null')"
                        )
                    else:
                        info_parts.append(self.node(info_part, a, None, "NULL"))
                out.append("('{' || " + " || ".join(info_parts) + " || '}')" if info_parts else "'{}'")
        body = "('{' || " + " || ".join(out) + " || '}')" if out else "'{}'"
        return f"(SELECT {body} FROM ({rows}) {a} GROUP BY ())"  # one row, even with no aggregate selected

    def nested(self, node: Connection, t: str) -> str:
        """A customer's complaints, purchases or tier changes, newest first (the customer is in scope already)."""
        table, sort, column = NESTED[node.kind]
        a = self.alias("n")
        inner = a + "i"
        body = _node_of(node)
        item = self.obj(body, a, None, f"{a}.customer_id") if body is not None else "'null'"
        order = f"{inner}.{column} DESC, {inner}.id DESC"
        rows = (
            f"SELECT {inner}.*, row_number() OVER (ORDER BY {order}) AS _n FROM {table} {inner} "
            f"WHERE {inner}.customer_id = {t}.id ORDER BY {order} LIMIT CAST(:{node.first_param} AS int) + 1"
        )
        value_sql = _quoted(_iso(f"{a}.{column}"))
        return self.connection(node, rows, a, item, sort, value_sql, None)

    # ------------------------------------------------------------ roots

    def list_root(self, node: Connection, sort: str, after: bool, filters: tuple[str, ...] = ()) -> str:
        """The root list ``customers``, ``complaints`` or ``surveys``, keyset-paged, its total only when selected;
        ``filters``: the filters given (``FILTERS`` of the list, bound as ``f_<name>``)."""
        table, sorts, item_of, where_of = ROOTS[node.kind]
        expr, descending, needs_metrics, cursor_render = sorts[sort]
        a, inner, m = self.alias("r"), self.alias("ri"), self.alias("m")
        key = expr.format(c=inner, m=m)
        filter_metrics = node.kind == "customers" and "min_spend12m" in filters
        join = (
            f" LEFT JOIN customer_metrics {m} ON {m}.customer_id = {inner}.id"
            if needs_metrics or filter_metrics
            else ""
        )
        where = where_of(inner, self.scope) + _filters(node.kind, filters, inner, m)
        if after:
            op = "<" if descending else ">"
            cast = _CAST[cursor_render]
            where += f" AND ({key}, {inner}.id) {op} (CAST(:after_value AS {cast}), CAST(:after_id AS uuid))"
        direction = " DESC" if descending else ""
        order = f"{key}{direction}, {inner}.id{direction}"
        rows = (
            f"SELECT {inner}.*, {key} AS _sort, row_number() OVER (ORDER BY {order}) AS _n FROM {table} {inner}{join} "
            f"WHERE {where} ORDER BY {order} LIMIT CAST(:{node.first_param} AS int) + 1"
        )
        body = _node_of(node)
        item = item_of(self, body, a) if body is not None else "'null'"
        value_sql = render_value(f"{a}._sort", cursor_render)
        total = None
        if any(not isinstance(part, Const) and part[0] == "totalCount" for _, part in node.parts):
            cc, cm = self.alias("cc"), self.alias("cm")
            count_join = f" LEFT JOIN customer_metrics {cm} ON {cm}.customer_id = {cc}.id" if filter_metrics else ""
            count_where = where_of(cc, self.scope) + _filters(node.kind, filters, cc, cm)
            total = f"(SELECT count(*) FROM {table} {cc}{count_join} WHERE {count_where})::text"
        return "SELECT " + self.connection(node, rows, a, item, sort, value_sql, total)

    def one_root(self, kind: str, body: Obj) -> str:
        """``customer(id)``, ``complaint(id)`` or ``survey(id)`` (and ``node(id)`` of the first two): its JSON,
        or ``null``."""
        table, _, item_of, where_of = ROOTS[{"Customer": "customers", "Complaint": "complaints"}.get(kind, "surveys")]
        a = self.alias("o")
        return (
            f"SELECT coalesce((SELECT {item_of(self, body, a)} FROM {table} {a} "
            f"WHERE {a}.id = CAST(:object_id AS uuid) AND {where_of(a, self.scope)}), 'null')"
        )


def _node_of(node: Connection) -> Obj | None:
    """The node selection of a connection's edges (merged by the compiler into one)."""
    for _, part in node.parts:
        if isinstance(part, tuple) and part[0] == "edges":
            for _, edge_part in part[1]:
                if isinstance(edge_part, Obj):
                    return edge_part
    return None


# The filters of the customers list (infra/repos/customers._filtered, as SQL text): name -> condition over
# ``{c}`` (customers) and ``{m}`` (their metrics), its value bound as ``f_<name>``. E-mail and phone compare
# their blind indexes (the value hashed by the caller, infra/crypto.py).
CUSTOMER_FILTERS: dict[str, str] = {
    "tiers": "{c}.tier_code = ANY(CAST(:f_tiers AS text[]))",
    "lifecycle_stages": "{c}.lifecycle_stage = ANY(CAST(:f_lifecycle_stages AS text[]))",
    "name_contains": "{c}.name ILIKE CAST(:f_name_contains AS text) ESCAPE '\\'",
    "email": "{c}.email_bidx = CAST(:f_email AS text)",
    "phone": "{c}.phone_bidx = CAST(:f_phone AS text)",
    "created_after": "{c}.created_at >= CAST(:f_created_after AS timestamptz)",
    "created_before": "{c}.created_at < CAST(:f_created_before AS timestamptz)",
    "min_spend12m": "coalesce({m}.spend_12m, 0) >= CAST(:f_min_spend12m AS numeric)",
}


# The filters of the complaints list (infra/repos/complaints._filtered, as SQL text), over ``{c}``
# (complaints): ``breached`` is the clocks' own definition (infra/repos/clocks.py).
COMPLAINT_FILTERS: dict[str, str] = {
    "statuses": "{c}.status = ANY(CAST(:f_statuses AS text[]))",
    "severities": "{c}.severity = ANY(CAST(:f_severities AS text[]))",
    "categories": "{c}.category_code = ANY(CAST(:f_categories AS text[]))",
    "customer_id": "{c}.customer_id = CAST(:f_customer_id AS uuid)",
    "opened_after": "{c}.opened_at >= CAST(:f_opened_after AS timestamptz)",
    "opened_before": "{c}.opened_at < CAST(:f_opened_before AS timestamptz)",
    "breached": breached_sql("{c}"),
    "not_breached": f"NOT {breached_sql('{c}')}",
}
# The surveys list's (infra/repos/surveys.page).
SURVEY_FILTERS: dict[str, str] = {"statuses": "{c}.status = ANY(CAST(:f_statuses AS text[]))"}
FILTERS = {"customers": CUSTOMER_FILTERS, "complaints": COMPLAINT_FILTERS, "surveys": SURVEY_FILTERS}


def _filters(kind: str, names: tuple[str, ...], c: str, m: str) -> str:
    return "".join(" AND " + FILTERS[kind][name].format(c=c, m=m) for name in names)


def filter_params(kind: str, values: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The filters of the complaints or surveys list given (in ``FILTERS`` order) and their bind
    parameters. ``values``: the filter's fields by repository name (an empty list or None: not given;
    ``breached``: True, False or None)."""
    if kind == "customers":
        return customer_filter_params(values)
    names: list[str] = []
    params: dict[str, Any] = {}
    for name in FILTERS[kind]:
        if name in ("breached", "not_breached"):
            if values.get("breached") is (name == "breached"):
                names.append(name)
            continue
        value = values.get(name)
        if value is None or (isinstance(value, list | tuple) and not value):
            continue
        names.append(name)
        params[f"f_{name}"] = list(value) if isinstance(value, list | tuple) else value
    return tuple(names), params


def customer_filter_params(values: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The filters given (in ``CUSTOMER_FILTERS`` order) and their bind parameters. ``values``: the filter's
    fields by name, e-mail and phone already normalised (an empty list or None: not given)."""
    names: list[str] = []
    params: dict[str, Any] = {}
    for name in CUSTOMER_FILTERS:
        value = values.get(name)
        if value is None or (isinstance(value, list | tuple) and not value) or (name == "name_contains" and not value):
            continue
        if name in ("email", "phone"):
            value = crypto.current().blind_index(name, value)
        elif name == "name_contains":
            value = f"%{escape_like(value)}%"
        elif name in ("tiers", "lifecycle_stages"):
            value = list(value)
        names.append(name)
        params[f"f_{name}"] = value
    return tuple(names), params


def _complaints_where(alias: str, scope: Scope) -> str:
    return "true" + readable.by_customer_sql(scope, f"{alias}.customer_id")


def _surveys_where(alias: str, scope: Scope) -> str:
    return "true"  # surveys are not partner data: no row scope (api/usecases/surveys.survey_page)


COMPLAINT_SORTS: dict[str, tuple[str, bool, bool, str]] = {
    "OPENED_AT_DESC": ("{c}.opened_at", True, False, "timestamp"),
    "OPENED_AT": ("{c}.opened_at", False, False, "timestamp"),
    "UPDATED_AT_DESC": ("{c}.updated_at", True, False, "timestamp"),
}
SURVEY_SORTS: dict[str, tuple[str, bool, bool, str]] = {"CREATED_AT_DESC": ("{c}.created_at", True, False, "timestamp")}
# root lists: (table, sorts, the JSON of an item, the rows the scope reaches)
ROOTS: dict[str, tuple[str, dict[str, tuple[str, bool, bool, str]], Any, Any]] = {
    "customers": ("customers", CUSTOMER_SORTS, lambda b, body, a: b.obj(body, a, a, f"{a}.id"), _live),
    "complaints": (
        "complaints",
        COMPLAINT_SORTS,
        lambda b, body, a: b.obj(body, a, None, f"{a}.customer_id"),
        _complaints_where,
    ),
    "surveys": ("surveys", SURVEY_SORTS, lambda b, body, a: b.obj(body, a, None, "NULL"), _surveys_where),
}
# a customer's lists: (table, the sort its cursors name, the column they carry)
NESTED: dict[str, tuple[str, str, str]] = {
    "complaints": ("complaints", "OPENED_AT_DESC", "opened_at"),
    "purchases": ("purchases", "PURCHASED_AT_DESC", "purchased_at"),
    "tierHistory": ("tier_changes", "CHANGED_AT_DESC", "changed_at"),
    "surveyResponses": ("survey_responses", "SUBMITTED_AT_DESC", "submitted_at"),
}


SURVEY_REPO_SORTS = {surveys_repo.SORT.name: surveys_repo.SORT}
# a complaint's SLA clock as ``ClockValues`` renders it
CLOCK_COLUMNS = sla.CLOCK_FIELDS
CLOCK_RENDER = {name: "timestamp" for name in CLOCK_COLUMNS} | {
    "paused_seconds": "int",
    "first_response_breached": "bool",
    "resolution_breached": "bool",
}


def statement(sql: str) -> TextClause:
    return text(sql)


def after_params(kind: str, sort: str, cursor: str) -> dict[str, Any]:
    """The bind parameters of a cursor of a root list (``ValidationFailed`` for one that is not of this list)."""
    value, row_id = decode_cursor(cursor, sort)
    sorts = {"customers": customers_repo.SORTS, "complaints": complaints_repo.SORTS, "surveys": SURVEY_REPO_SORTS}
    key = sorts[kind][sort]
    coerced = _coerce(key.column, value)
    return {"after_value": coerced, "after_id": _coerce(key.tiebreak, row_id)}


def scope_params(scope: Scope) -> dict[str, Any]:
    return readable.params(scope) if scope.partner_id is not None else {}


__all__ = [
    "CUSTOMER_SORTS",
    "Builder",
    "Checked",
    "ClockValues",
    "Connection",
    "Const",
    "Obj",
    "Relation",
    "Value",
    "after_params",
    "filter_params",
    "render_value",
    "scope_params",
    "statement",
]
