"""The read compiler (issue 12): a read query is answered by one SQL statement per root field that builds the
field's response JSON inside PostgreSQL (infra/readsql.py renders the statements).

A plan is made once per (document, operation, caller's decision set, values of the ``@include``/``@skip``
variables) and cached on the caller's ``Decisions`` (one object per role set and policy version). The
caller's decisions are in the plan, from the field catalogue (authz/catalogue.py: sensitivity, mask,
consent, and ``STORAGE``: table, column, encrypted?):

- a field the caller may read in full and that is not sensitive is pure SQL;
- every other guarded field is a *checked leaf*: the statement puts ``[customer id, consented, value]``
  at its place (the ciphertext of an encrypted column, nothing for a denied field), and the leaf pass below
  runs the field guard's own check on it (``api.graphql.core.guard.read_check``: FORBIDDEN_FIELD at the
  field's exact path, masks from the catalogue, the sensitive-read audit of that customer, consent), then
  decrypts and masks the value. Denied columns are never selected.
- where a root field has no checked leaf, the bytes from PostgreSQL go to the client without being parsed
  (``orjson.Fragment``).

Arguments are checked before any SQL: the catalogue's argument check (FORBIDDEN_ARGUMENT), page sizes,
cursors and ids in filters; an argument problem, like any operation the compiler does not cover, goes to
strawberry, which answers (or refuses) it as before, before any SQL too.

Covered (README, "What the read compiler answers"): ``customers`` (first, after, orderBy, filter),
``customer(id)``, ``complaints`` (first, after, orderBy, filter), ``complaint(id)``, ``node(id)`` of a
customer or complaint, ``surveys`` (first, after, status) and ``survey(id)``; below them a customer's scalar
fields, address, consent, tier, metrics, churn risk, partner, complaints, purchases, tier history (with the
metrics it embeds) and survey responses; a complaint's scalar fields, SLA clock fields, category, root cause,
events, customer and the complaint it follows up; a survey's fields and questions; a response's survey,
customer, complaint and answers (their question); fragments, aliases, variables, ``@include``/``@skip``,
``__typename``. Everything else (mutations, subscriptions, introspection, the other root fields) is
strawberry's.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    located_error,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values
from strawberry.extensions import SchemaExtension

from api.graphql.core.errors import query_error
from api.graphql.core.guard import EMBEDDED, argument_check, read_check
from api.graphql.core.ids import from_global_id
from api.graphql.core.relay import _nested_first
from api.graphql.core.resolving import page_size
from api.usecases.queues import visible_signals
from authz.catalogue import CATALOGUE, STORAGE, Sensitivity, classification
from authz.masking import masked
from authz.policy import Level
from domain import customers as customer_rules
from domain import sla as sla_rules
from domain.errors import DomainError, NotFound, ValidationFailed
from infra import crypto, readsql
from infra.readsql import Checked, ClockValues, Connection, Const, Obj, Relation, Value

log = logging.getLogger("tierwise.compiler")

_RENDER = {
    "String": "text",
    "Int": "int",
    "Boolean": "bool",
    "DateTime": "timestamp",
    "Decimal": "decimal",
    "ID": "idtext",
}
# object-valued fields of a customer or complaint that are joins (infra/readsql.Builder.relation)
_RELATIONS = {
    "Customer.tier": "tier",
    "Customer.metrics": "metrics",
    "Customer.consent": "consent",
    "Customer.partner": "partner",
    "Complaint.customer": "customer",
    "Complaint.category": "category",
    "Complaint.rootCause": "rootCause",
    "Complaint.events": "events",
    "Complaint.team": "team",
    "Purchase.customer": "customer",
    "Customer.churnRisk": "churnRisk",
    "Complaint.followUpOf": "followUpOf",
    "Survey.questions": "questions",
    "SurveyResponse.survey": "survey",
    "SurveyResponse.customer": "customer",
    "SurveyResponse.complaint": "complaint",
    "SurveyResponse.answers": "answers",
    "SurveyAnswer.question": "question",
}
_CONNECTIONS = {
    "Customer.complaints": "complaints",
    "Customer.purchases": "purchases",
    "Customer.tierHistory": "tierHistory",
    "Customer.surveyResponses": "surveyResponses",
}
_GLOBAL_IDS = frozenset(
    {"Customer", "Complaint", "Purchase", "Partner", "Survey", "SurveyQuestion", "SurveyResponse", "Team"}
)
# fields computed from a complaint's SLA clock and the statement's now() by domain/sla.py (the one definition
# of the clock arithmetic), as ComplaintType.from_row computes them
_CLOCKED: dict[str, Any] = {
    "Complaint.resolutionDueAt": sla_rules.effective_resolution_due,
    "Complaint.firstResponseTimeLeft": sla_rules.first_response_time_left,
    "Complaint.resolutionTimeLeft": sla_rules.resolution_time_left,
    "Complaint.pausedSeconds": sla_rules.paused_total_seconds,
    "Complaint.slaPaused": lambda clock, _now: sla_rules.paused(clock),
}
# list fields whose null stays null (the others read null as an empty list, as their types do)
_NULLABLE_LISTS = frozenset({"SurveyAnswer.choices"})
# node(id): the types it is compiled for, and the operation a caller must be allowed (api/graphql/schema.py)
_NODE_TYPES = {"Customer": "Query.customer", "Complaint": "Query.complaint"}
_ADDRESS_KEYS = {"line1": "line1", "line2": "line2", "postalCode": "postalCode", "city": "city", "country": "country"}


_ROOTS = ("customers", "customer", "complaints", "complaint", "surveys", "survey")


class Unsupported(Exception):
    """Something the compiler does not cover: strawberry answers the operation."""


# ---------------------------------------------------------------- the leaf pass


@dataclass(frozen=True)
class Leaf:
    """A checked leaf: the field guard's check, the encrypted column it decrypts, what the value is."""

    check: Any
    nodes: tuple[FieldNode, ...]
    column: str | None  # table.column of an encrypted value
    consent_column: str | None
    decimal: bool = False
    address: tuple[tuple[str, str], ...] | None = None  # the selected subfields of an address (key, field)
    mask: Any = None  # a field the caller reads masked: the catalogue's mask, known when planning (no check)


# (key, kind, payload): kind "leaf" (payload Leaf), "obj" (a nested object), "list" (a list of objects),
# "json" (a JSON value as PostgreSQL wrote it: payload, the filter the caller's decisions put it through),
# "clock" (a complaint's SLA clock: payload, the domain/sla.py function of the field)
Post = tuple[tuple[str, str, Any], ...]


class _LeafRoot:
    """What the guard's check reads of the object a leaf belongs to: its customer (audit) and consent."""

    __slots__ = ("customer_ref", "row")

    def __init__(self, customer_ref: UUID | None, row: dict[str, Any]) -> None:
        self.customer_ref = customer_ref
        self.row = row


def _finish(post: Post, obj: dict[str, Any], path: list[Any], context: Any, errors: list[GraphQLError]) -> None:
    for key, kind, payload in post:
        value = obj.get(key)
        if value is None:
            continue
        if kind == "obj":
            _finish(payload, value, [*path, key], context, errors)
        elif kind == "list":
            for i, item in enumerate(value):
                if item is not None:
                    _finish(payload, item, [*path, key, i], context, errors)
        elif kind == "json":
            obj[key] = payload(value)
        elif kind == "embedded":
            obj[key] = _embedded(payload, value, context)
        elif kind == "clock":
            obj[key] = _clocked(payload, value)
        else:
            obj[key] = _leaf(payload, value, [*path, key], context, errors)


def _clocked(compute: Any, values: list[Any]) -> Any:
    """A field of a complaint's SLA clock (``ClockValues``: ``sla.CLOCK_FIELDS`` then now()), as the API writes it."""
    fields: dict[str, Any] = {}
    for name, value in zip(readsql.CLOCK_COLUMNS, values, strict=False):
        timestamp = readsql.CLOCK_RENDER[name] == "timestamp" and value is not None
        fields[name] = dt.datetime.fromisoformat(value) if timestamp else value
    result = compute(sla_rules.Clock(**fields), dt.datetime.fromisoformat(values[-1]))
    return result.isoformat() if isinstance(result, dt.datetime) else result


def _leaf(leaf: Leaf, packed: list[Any], path: list[Any], context: Any, errors: list[GraphQLError]) -> Any:
    customer, consented, raw = packed
    try:
        if leaf.mask is not None:
            mask = leaf.mask  # what the check returns for this caller, whatever the object: no audit, no consent
        else:
            row = {leaf.consent_column: True if consented else None} if leaf.consent_column else {}
            mask = leaf.check(_LeafRoot(UUID(customer) if customer else None, row), context)
        value: Any = raw
        if leaf.column is not None and raw is not None:
            row_id, _, token = raw.partition(" ")
            try:
                value = crypto.current().decrypt(token, leaf.column, row_id)
            except crypto.DecryptionError as error:
                value = crypto.unreadable(leaf.column, row_id, error)
            if leaf.address is not None and isinstance(value, str):
                value = orjson.loads(value) or None
        if leaf.decimal and value is not None and mask is not None:
            value = str(mask(Decimal(value)))
        elif mask is not None:
            value = mask(value)
        if isinstance(value, Exception):
            raise value
        if leaf.address is not None and value is not None:
            value = {
                key: value.get(name, value.get("postal_code") if name == "postalCode" else None)
                if name != "__typename"
                else "Address"
                for key, name in leaf.address
            }
        return value
    except Exception as raw_error:
        errors.append(located_error(raw_error, list(leaf.nodes), path))
        return None


def _embedded(kept: dict[str, str], packed: list[Any], context: Any) -> Any:
    """The values a JSON field embeds that the caller may read in full (``kept``: their names and fields),
    a sensitive one recorded as read of its customer (api/graphql/core/guard._embedded)."""
    customer, _, value = packed
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for name, item in value.items():
        key = kept.get(name)
        if key is None:
            continue
        if CATALOGUE[key].sensitivity is Sensitivity.SENSITIVE:
            if customer is None:
                continue
            context.sensitive_reads[UUID(customer)].add(key)
        out[name] = item
    return out


# ---------------------------------------------------------------- planning


@dataclass(frozen=True)
class Nested:
    """A nested connection's arguments: its ``first`` parameter, the field and node they are read from, the
    connection's JSON path from the root field's value (keys; None: each item of a list), and the catalogue's
    check of its arguments (None: no argument of it can reveal a guarded field)."""

    param: str
    gfield: Any
    node: FieldNode
    path: tuple[str | None, ...]
    check: Any


@dataclass
class RootField:
    key: str
    kind: str  # customers, customer, typename
    nodes: tuple[FieldNode, ...]
    gfield: Any = None
    tree: Any = None  # Connection (customers) or Obj (customer)
    post: Post = ()
    nested: tuple[Nested, ...] = ()
    variants: dict[str, tuple[Obj, Post]] = field(default_factory=dict)  # node(id): per type
    argument_check: Any = None  # the catalogue's check of the root field's arguments (api.graphql.core.guard)
    statements: dict[tuple[Any, ...], Any] = field(default_factory=dict)


@dataclass
class Plan:
    fields: list[RootField]


class _Planner:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, decisions: Any, variables: Any) -> None:
        self.schema = schema
        self.decisions = decisions
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.params = 0
        self.nested: list[Nested] = []
        self.path: list[str | None] = []  # where the field being planned is, from the root field's value

    def collect(
        self, parent: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> OrderedDict[str, list[FieldNode]]:
        fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
        seen: set[str] = set()

        def walk(selection_set: SelectionSetNode) -> None:
            for sel in selection_set.selections:
                if not self.included(sel):
                    continue
                if isinstance(sel, FieldNode):
                    fields.setdefault(sel.alias.value if sel.alias else sel.name.value, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    if sel.type_condition is None or self.applies(sel.type_condition.name.value, parent):
                        walk(sel.selection_set)
                elif isinstance(sel, FragmentSpreadNode):
                    name = sel.name.value
                    if name in seen:
                        continue
                    seen.add(name)
                    fragment = self.fragments.get(name)
                    if fragment is None:
                        raise Unsupported(name)
                    if self.applies(fragment.type_condition.name.value, parent):
                        walk(fragment.selection_set)

        for selection_set in selection_sets:
            walk(selection_set)
        return fields

    def included(self, node: Any) -> bool:
        for directive in node.directives or ():
            if directive.name.value not in ("include", "skip"):
                raise Unsupported(f"directive {directive.name.value}")
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip["if"] is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include["if"] is False)

    def applies(self, type_name: str, parent: GraphQLObjectType) -> bool:
        condition = self.schema.get_type(type_name)
        if condition is parent:
            return True
        if condition is None:
            raise Unsupported(type_name)
        return bool(self.schema.is_sub_type(condition, parent))  # type: ignore[arg-type]

    def param(self) -> str:
        self.params += 1
        return f"p{self.params}"

    # ------------------------------------------------------------ objects

    def obj(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> tuple[Obj, Post]:
        selection_sets = [n.selection_set for n in nodes if n.selection_set is not None]
        fields: list[tuple[str, Any]] = []
        post: list[tuple[str, str, Any]] = []
        for key, group in self.collect(parent, selection_sets).items():
            self.path.append(key)
            node, sub = self.field(parent, key, group)
            self.path.pop()
            fields.append((key, node))
            if sub is not None:
                post.append(sub)
        return Obj(tuple(fields)), tuple(post)

    def field(
        self, parent: GraphQLObjectType, key: str, group: list[FieldNode]
    ) -> tuple[Any, tuple[str, str, Any] | None]:
        name = group[0].name.value
        if name == "__typename":
            return Const(f'"{parent.name}"'), None
        gfield = parent.fields.get(name)
        spec = classification(parent.name, name)
        if gfield is None or spec is None or name.startswith("__"):
            raise Unsupported(f"{parent.name}.{name}")
        full = f"{parent.name}.{name}"
        check_arguments = argument_check(parent.name, name, gfield, [])
        if check_arguments is not None and full not in _CONNECTIONS:
            raise Unsupported(f"arguments of {full} are checked per item")
        level = self.decisions.read(full) if spec.sensitivity is not Sensitivity.PUBLIC else Level.FULL
        non_null = isinstance(gfield.type, GraphQLNonNull)
        named = gfield.type.of_type if non_null else gfield.type
        if spec.sensitivity is Sensitivity.SENSITIVE or level is not Level.FULL:
            if non_null:
                raise Unsupported(f"guarded non-null field {full}")
            return self.checked(parent, full, spec, level, named, group, key)
        if full in _RELATIONS:
            if isinstance(named, GraphQLList):  # a complaint's events, a survey's questions, a response's answers
                self.path.append(None)
                body, post = self.obj(named.of_type.of_type, group)
                self.path.pop()
                return Relation(_RELATIONS[full], body), ((key, "list", post) if post else None)
            body, post = self.obj(named, group)
            return Relation(_RELATIONS[full], body), ((key, "obj", post) if post else None)
        if full in _CONNECTIONS:
            return self.connection(named, group, key, _CONNECTIONS[full], gfield, check_arguments)
        if full in _CLOCKED:
            return ClockValues(), (key, "clock", _CLOCKED[full])
        stored = STORAGE.get(full)
        if stored is None:
            raise Unsupported(full)
        if name == "id" and parent.name in _GLOBAL_IDS:
            return Value(stored.column, "gid", type_name=parent.name), None
        if full in EMBEDDED:  # with the customer it belongs to: a sensitive value kept is audited
            kept = {name: k for name, k in EMBEDDED[full].items() if self.decisions.read(k) is Level.FULL}
            return Checked(stored.column, render="json"), (key, "embedded", kept)
        if getattr(named, "name", None) == "JSON":
            return Value(stored.column, "json"), (key, "json", self.json_filter(full))
        if full in _NULLABLE_LISTS:
            return Value(stored.column, "strings_or_null"), None
        return self.value(stored, named), None

    def json_filter(self, full: str) -> Any:
        """What a JSON field's value goes through for this caller, as its resolver does: a churn risk's
        signals as the caller's decisions may read them (api/usecases/queues.visible_signals)."""
        if full != "ChurnRisk.signals":
            raise Unsupported(f"JSON field {full}")
        decisions = self.decisions
        return lambda signals: visible_signals(decisions, signals)

    def value(self, stored: Any, named: Any) -> Value:
        if isinstance(named, GraphQLEnumType):
            pairs = tuple((v.value, n) for n, v in named.values.items())
            return Value(stored.column, "enum", enum=pairs, expression=stored.expression)
        if isinstance(named, GraphQLList):
            item = named.of_type.of_type if isinstance(named.of_type, GraphQLNonNull) else named.of_type
            if isinstance(item, GraphQLEnumType):
                pairs = tuple((v.value, n) for n, v in item.values.items())
                return Value(stored.column, "enums", enum=pairs, expression=stored.expression)
            if getattr(item, "name", None) != "String":
                raise Unsupported("list")
            return Value(stored.column, "strings", expression=stored.expression)
        render = _RENDER.get(getattr(named, "name", ""))
        if render is None:
            raise Unsupported(f"scalar {named}")
        return Value(stored.column, render, expression=stored.expression)

    def checked(
        self,
        parent: GraphQLObjectType,
        full: str,
        spec: Any,
        level: Level,
        named: Any,
        group: list[FieldNode],
        key: str,
    ) -> tuple[Any, tuple[str, str, Any]]:
        stored = STORAGE.get(full)
        consent_column = f"consent_{spec.consent}_at" if spec.consent else None
        address: tuple[tuple[str, str], ...] | None = None
        if level is Level.DENIED:
            node = Checked(None)
        else:
            if stored is None or stored.expression:
                raise Unsupported(full)
            if isinstance(named, GraphQLObjectType):
                if full != "Customer.address":
                    raise Unsupported(full)
                address = tuple(self.address(named, group))
            elif level is Level.CONSENTED and not stored.encrypted:
                raise Unsupported(full)
            render = "text"
            if not stored.encrypted:
                render = self.value(stored, named).render
                if render not in ("text", "int", "decimal"):
                    raise Unsupported(full)
            node = Checked(
                stored.column, stored.encrypted, consent_column if level is Level.CONSENTED else None, render
            )
        leaf = Leaf(
            check=read_check(spec),
            nodes=tuple(group),
            column=f"{stored.table}.{stored.column}" if stored is not None and stored.encrypted else None,
            consent_column=consent_column,
            decimal=isinstance(node, Checked) and node.render == "decimal",
            address=address,
            mask=functools.partial(masked, spec.mask) if level is Level.MASKED and spec.mask else None,
        )
        return node, (key, "leaf", leaf)

    def address(self, named: GraphQLObjectType, group: list[FieldNode]) -> list[tuple[str, str]]:
        selection_sets = [n.selection_set for n in group if n.selection_set is not None]
        out: list[tuple[str, str]] = []
        for key, sub in self.collect(named, selection_sets).items():
            name = sub[0].name.value
            if name != "__typename" and name not in _ADDRESS_KEYS:
                raise Unsupported(f"Address.{name}")
            out.append((key, name))
        return out

    def connection(
        self, named: GraphQLObjectType, group: list[FieldNode], key: str, kind: str, gfield: Any, check: Any
    ) -> tuple[Connection, tuple[str, str, Any] | None]:
        if len(group) != 1 and any(g.arguments for g in group):
            raise Unsupported("merged arguments")
        param = self.param()
        self.nested.append(Nested(param, gfield, group[0], tuple(self.path), check))
        parts, post = self.connection_parts(named, group)
        return Connection(kind, param, parts), ((key, "obj", post) if post else None)

    def connection_parts(
        self, named: GraphQLObjectType, group: list[FieldNode]
    ) -> tuple[tuple[tuple[str, Any], ...], Post]:
        selection_sets = [n.selection_set for n in group if n.selection_set is not None]
        parts: list[tuple[str, Any]] = []
        post: list[tuple[str, str, Any]] = []
        edges_seen = False
        for key, sub in self.collect(named, selection_sets).items():
            name = sub[0].name.value
            if name == "__typename":
                parts.append((key, Const(f'"{named.name}"')))
            elif name == "totalCount":
                parts.append((key, ("totalCount", None)))
            elif name == "pageInfo":
                info_type = named.fields["pageInfo"].type.of_type
                info: list[tuple[str, Any]] = []
                for info_key, info_sub in self.collect(
                    info_type, [n.selection_set for n in sub if n.selection_set]
                ).items():
                    info_name = info_sub[0].name.value
                    info.append((info_key, Const('"PageInfo"') if info_name == "__typename" else info_name))
                parts.append((key, ("pageInfo", tuple(info))))
            elif name == "edges":
                if edges_seen:
                    raise Unsupported("edges selected twice")
                edges_seen = True
                edge_type = named.fields["edges"].type.of_type.of_type.of_type
                edge: list[tuple[str, Any]] = []
                node_post: Post = ()
                node_seen = False
                for edge_key, edge_sub in self.collect(
                    edge_type, [n.selection_set for n in sub if n.selection_set]
                ).items():
                    edge_name = edge_sub[0].name.value
                    if edge_name == "__typename":
                        edge.append((edge_key, Const(f'"{edge_type.name}"')))
                    elif edge_name == "cursor":
                        edge.append((edge_key, "cursor"))
                    elif edge_name == "node":
                        if node_seen:
                            raise Unsupported("node selected twice")
                        node_seen = True
                        node_type = edge_type.fields["node"].type.of_type
                        self.path += [key, None, edge_key]
                        body, node_post = self.obj(node_type, edge_sub)
                        del self.path[-3:]
                        edge.append((edge_key, body))
                        node_post = ((edge_key, "obj", node_post),) if node_post else ()
                    else:
                        raise Unsupported(edge_name)
                parts.append((key, ("edges", tuple(edge))))
                if node_post:
                    post.append((key, "list", node_post))
            else:
                raise Unsupported(name)
        return tuple(parts), tuple(post)


def _directive_variables(document: DocumentNode) -> tuple[str, ...]:
    names: list[str] = []

    def walk(node: Any) -> None:
        for directive in getattr(node, "directives", None) or ():
            for argument in directive.arguments or ():
                if argument.value.kind == "variable":
                    names.append(argument.value.name.value)
        selection_set = getattr(node, "selection_set", None)
        for sel in selection_set.selections if selection_set else ():
            walk(sel)

    for definition in document.definitions:
        walk(definition)
    return tuple(dict.fromkeys(names))


def _operation_of(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == operation_name), None)


def plan_operation(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, decisions: Any, variables: Any
) -> Plan | None:
    operation = _operation_of(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY or schema.query_type is None:
        return None
    root = schema.query_type
    planner = _Planner(schema, document, decisions, variables)
    fields: list[RootField] = []
    try:
        for key, nodes in planner.collect(root, [operation.selection_set]).items():
            name = nodes[0].name.value
            if name == "__typename":
                fields.append(RootField(key, "typename", tuple(nodes)))
                continue
            if name == "node":
                planner.nested = []
                variants = {}
                for type_name in _NODE_TYPES:
                    planner.path = []  # (a variant given up on leaves its path behind)
                    try:
                        variants[type_name] = planner.obj(schema.get_type(type_name), nodes)  # type: ignore[arg-type]
                    except Unsupported:
                        continue
                fields.append(
                    RootField(key, "node", tuple(nodes), root.fields[name], None, (), tuple(planner.nested), variants)
                )
                continue
            if name not in _ROOTS or decisions.read(f"Query.{name}") is not Level.FULL:
                return None
            if len(nodes) > 1 and any(n.arguments for n in nodes[1:]):
                return None
            planner.nested = []
            gfield = root.fields[name]
            named = gfield.type.of_type if isinstance(gfield.type, GraphQLNonNull) else gfield.type
            if name in ("customers", "complaints", "surveys"):
                parts, post = planner.connection_parts(named, nodes)
                tree: Any = Connection(name, "first", parts)
            else:
                tree, post = planner.obj(named, nodes)
            check = argument_check("Query", name, gfield, [])
            fields.append(RootField(key, name, tuple(nodes), gfield, tree, post, tuple(planner.nested), {}, check))
    except Unsupported as exc:
        log.debug("not compiled: %s", exc)
        return None
    return Plan(fields)


# ---------------------------------------------------------------- executing


class _Fallback(Exception):
    """An argument strawberry must answer (it reports the error as before)."""


@dataclass(frozen=True)
class Ready:
    """An operation the compiler answers, with its root fields' statements and parameters ready."""

    operation: OperationDefinitionNode
    plan: Plan
    prepared: list[Any]


class Compiler:
    """Plans cached per caller's decision set (``Decisions.memo``) by query text, operation and the
    values of ``@include``/``@skip`` variables; ``None`` remembered for operations it does not cover."""

    size = 256

    def __init__(self) -> None:
        self.executed = 0  # operations answered by a compiled statement (tests, benchmarks)
        self._directive_vars: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._operations: OrderedDict[tuple[str, str | None], OperationDefinitionNode | None] = OrderedDict()

    def _operation(self, query: str, document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
        """The operation to run (None: none, or several and no name), found once per query text and name."""
        key = (query, name)
        found = self._operations.get(key, False)
        if found is False:
            found = self._operations[key] = _operation_of(document, name)
            while len(self._operations) > self.size:
                self._operations.popitem(last=False)
        return found  # type: ignore[return-value]

    def plan(
        self,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        operation_name: str | None,
        decisions: Any,
        variables: Any,
    ) -> Plan | None:
        """The plan of the operation for this caller (``variables``: graphql-core's coerced ``VariableValues``)."""
        names = self._directive_vars.get(query)
        if names is None:
            names = self._directive_vars[query] = _directive_variables(document)
            while len(self._directive_vars) > self.size:
                self._directive_vars.popitem(last=False)
        key = (query, operation_name, tuple(variables.coerced.get(n) for n in names))
        plans: OrderedDict[Any, Plan | None] = decisions.memo.setdefault("compiled_plans", OrderedDict())
        if key in plans:
            plans.move_to_end(key)
            return plans[key]
        try:
            plan = plan_operation(schema, document, operation_name, decisions, variables)
        except Exception as exc:  # a gap in the compiler must not fail a request
            log.warning("planning an operation failed (%s): strawberry answers it", type(exc).__name__, exc_info=True)
            plan = None
        plans[key] = plan
        while len(plans) > self.size:
            plans.popitem(last=False)
        return plan

    async def execute(self, ec: Any) -> GraphQLExecutionResult | None:
        document = ec.graphql_document
        if document is None or ec.query is None:
            return None
        ready = self.ready(ec.schema._schema, ec.query, document, ec.operation_name, ec.variables, ec.context)
        return None if ready is None else await self.answer(ready, ec.context)

    def ready(
        self,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        operation_name: str | None,
        raw_variables: dict[str, Any] | None,
        context: Any,
    ) -> Ready | None:
        """Everything before the first statement, none of it with a side effect: the operation, its
        variables coerced, the caller's plan, every root field's statement and arguments checked. None
        when the compiler does not answer this operation (strawberry's path then does, and reports
        whatever was wrong), so a caller may try this before charging anything (api/edge/app.py)."""
        operation = self._operation(query, document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            return None  # (before the variables: coercing those of a batch mutation of 500 items costs ms)
        variables = get_variable_values(schema, operation.variable_definitions or (), raw_variables or {})
        if isinstance(variables, list):
            return None  # variables that do not coerce: strawberry reports them
        plan = self.plan(schema, query, document, operation_name, context.decisions, variables)
        if plan is None:
            return None
        try:
            prepared = [self.prepare(f, variables, context) for f in plan.fields]
        except _Fallback:
            return None
        return Ready(operation, plan, prepared)

    async def answer(self, ready: Ready, context: Any) -> GraphQLExecutionResult:
        """Run a ready operation: one statement per root field."""
        self.executed += 1
        errors: list[GraphQLError] = []
        data: dict[str, Any] = {}
        for root, prepared_field in zip(ready.plan.fields, ready.prepared, strict=True):
            data[root.key] = await self.run(root, prepared_field, context, errors)
        return GraphQLExecutionResult(data=data, errors=errors or None)

    def prepare(self, root: RootField, variables: Any, context: Any) -> Any:
        """The statement and parameters of a root field, every argument checked before any SQL runs; an
        argument refused (a malformed id, a forbidden filter or sort, a page size, a cursor) as its error."""
        if root.kind == "typename":
            return None
        args = get_argument_values(root.gfield, root.nodes[0], variables)
        scope = context.scope
        params: dict[str, Any] = readsql.scope_params(scope)
        refused: list[tuple[tuple[str | None, ...], FieldNode, Exception]] = []
        for nested in root.nested:  # refused at each item's connection, as its guard and resolver do
            nested_args = get_argument_values(nested.gfield, nested.node, variables)
            params[nested.param] = 1
            try:
                if nested.check is not None:
                    nested.check(context.decisions, nested_args)
                params[nested.param] = _nested_first(nested_args.get("first", 10))
            except (GraphQLError, ValidationFailed) as exc:
                refused.append((nested.path, nested.node, exc))
        prepared = self.prepare_root(root, args, params, context)
        return (*prepared, tuple(refused)) if isinstance(prepared, tuple) else prepared

    def prepare_root(self, root: RootField, args: dict[str, Any], params: dict[str, Any], context: Any) -> Any:
        scope = context.scope
        partner = scope.partner_id is not None
        if root.kind in ("customer", "complaint", "survey", "node"):
            try:
                type_name, raw = from_global_id(args["id"], None if root.kind == "node" else root.kind.title())
            except NotFound as exc:
                return exc
            if root.kind == "node":
                operation = _NODE_TYPES.get(type_name)
                if operation is None or type_name not in root.variants:
                    raise _Fallback  # a type the compiler does not answer (or a selection it does not cover)
                if context.decisions.read(operation) is Level.DENIED:
                    return NotFound("no such object", field="id")
                body, post = root.variants[type_name]
            else:
                body, post = root.tree, root.post
            params["object_id"] = raw
            variant: tuple[Any, ...] = (partner, type_name)
            build = lambda b: b.one_root(type_name, body)  # noqa: E731
            return self._statement(root, variant, build, scope), params, post
        check = root.argument_check
        first, after = args.get("first", 20), args.get("after")
        sort = args.get("orderBy") or _DEFAULT_SORTS[root.kind]
        sort = getattr(sort, "value", sort)
        # refused before any SQL, in the order of the field's guard and resolver: an argument revealing a field
        # the caller may not read in full (FORBIDDEN_ARGUMENT), the page size, the filter, the cursor
        try:
            if check is not None:
                check(context.decisions, args)
            page_size(context.settings.max_page_size, first)
        except GraphQLError as exc:
            return exc
        filters: tuple[str, ...] = ()
        given = args.get("status" if root.kind == "surveys" else "filter")
        if given is not None:
            try:
                names, filter_params = readsql.filter_params(root.kind, _filter_values(root.kind, given, context))
            except DomainError as exc:
                if root.kind == "complaints":  # a customer id that does not decode: NOT_FOUND, as the resolver's
                    return exc
                raise _Fallback from None  # an e-mail or phone that does not normalise: reported as before
            filters = names
            params.update(filter_params)
        if after is not None:
            try:
                params.update(readsql.after_params(root.kind, sort, after))
            except (DomainError, ValidationFailed) as exc:
                return exc
        params["first"] = first
        variant = (partner, sort, after is not None, filters)
        build = lambda b: b.list_root(root.tree, sort, after is not None, filters)  # noqa: E731
        return self._statement(root, variant, build, scope), params, root.post

    def _statement(self, root: RootField, variant: tuple[Any, ...], build: Any, scope: Any) -> Any:
        statement = root.statements.get(variant)
        if statement is None:
            statement = root.statements[variant] = readsql.statement(build(readsql.Builder(scope)))
        return statement

    async def run(self, root: RootField, prepared: Any, context: Any, errors: list[GraphQLError]) -> Any:
        if root.kind == "typename":
            return "Query"
        if isinstance(prepared, DomainError | GraphQLError):
            error = query_error(prepared) if isinstance(prepared, DomainError) else prepared
            errors.append(located_error(error, list(root.nodes), [root.key]))
            return None
        statement, params, post, refused = prepared
        try:
            text = await context.db.read_value(statement, params)  # one round trip, no transaction
        except Exception as exc:
            errors.append(located_error(exc, list(root.nodes), [root.key]))
            return None
        if text == "null":
            if root.kind in ("customer", "complaint", "node"):
                errors.append(
                    located_error(query_error(NotFound("no such object", field="id")), list(root.nodes), [root.key])
                )
            return None
        if not post and not refused:
            return orjson.Fragment(text)
        value = orjson.loads(text)
        for path, node, error in refused:
            _refuse(value, path, [root.key], node, error, errors)
        _finish(post, value, [root.key], context, errors)
        return value


_DEFAULT_SORTS = {"customers": "CREATED_AT", "complaints": "OPENED_AT_DESC", "surveys": "CREATED_AT_DESC"}


def _enum_values(given: Any) -> list[str] | None:
    return [getattr(v, "value", v) for v in given] if given else None


def _refuse(
    value: Any,
    path: tuple[str | None, ...],
    at: list[Any],
    node: FieldNode,
    error: Exception,
    errors: list[GraphQLError],
) -> None:
    """A nested connection refused (its ``first`` out of range): null, with the error, at each place it is."""
    if value is None:
        return
    head, rest = path[0], path[1:]
    if head is None:
        for i, item in enumerate(value):
            _refuse(item, rest, [*at, i], node, error, errors)
    elif isinstance(value, dict) and head in value:
        if rest:
            _refuse(value[head], rest, [*at, head], node, error, errors)
        else:
            value[head] = None
            errors.append(located_error(error, [node], [*at, head]))


def _filter_values(kind: str, given: Any, context: Any) -> dict[str, Any]:
    """A list's filter (as graphql-core coerced it) as the repository reads it: ``CustomerFilter``
    (api/usecases/customers.customer_page), ``ComplaintFilter`` (api/graphql/complaints/resolvers._filter),
    the surveys' ``status``."""
    if kind == "surveys":
        return {"statuses": _enum_values(given)}
    if kind == "complaints":
        customer = given.get("customerId")
        return {
            "statuses": _enum_values(given.get("statuses")),
            "severities": _enum_values(given.get("severities")),
            "categories": given.get("categories"),
            "customer_id": from_global_id(customer, "Customer", field="filter.customerId")[1] if customer else None,
            "opened_after": given.get("openedAfter"),
            "opened_before": given.get("openedBefore"),
            "breached": given.get("breached"),
        }
    stages = given.get("lifecycleStages")
    email, phone = given.get("email"), given.get("phone")
    return {
        "tiers": given.get("tiers"),
        "lifecycle_stages": [getattr(s, "value", s) for s in stages] if stages else None,
        "name_contains": given.get("nameContains"),
        "email": customer_rules.normalize_email(email) if email else None,
        "phone": customer_rules.normalize_phone(phone, context.settings.default_phone_region) if phone else None,
        "created_after": given.get("createdAfter"),
        "created_before": given.get("createdBefore"),
        "min_spend12m": given.get("minSpend12m"),
    }


class CompiledReads:
    """The compiler first; what it does not answer (``None``), strawberry's executor answers."""

    def __init__(self) -> None:
        self.compiler = Compiler()

    @property
    def executed(self) -> int:
        """Operations answered without strawberry's executor."""
        return self.compiler.executed

    async def execute(self, ec: Any) -> GraphQLExecutionResult | None:
        return await self.compiler.execute(ec)


class CompiledQueries(SchemaExtension):
    """Runs read queries through the compiled paths (after the limits and the rate limit passed: a
    refusal already set the result); anything else executes normally."""

    def __init__(self, *, reads: CompiledReads) -> None:
        self.reads = reads

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        if ec.result is None and ec.context is not None:
            try:
                result = await self.reads.execute(ec)
            except Exception as exc:  # reported as strawberry reports an error outside any field (INTERNAL),
                # not raised through the extensions (the operation's own hooks, which give the connection
                # back and write the audit row, must still run)
                result = GraphQLExecutionResult(data=None, errors=[GraphQLError(str(exc), original_error=exc)])
            if result is not None:
                ec.result = result
        yield


__all__ = ["CompiledQueries", "CompiledReads", "Compiler", "plan_operation"]
