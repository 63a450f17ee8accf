"""Query shapes generated from the schema (hypothesis), for the differential test of issue 12.

The strategy walks the running app's GraphQL schema (graphql-core's types, as introspection gives them) from
the root fields the compiled path is meant to cover, and draws documents over them: selection sets of the
types' own fields to a bounded depth, aliases, inline fragments (on the type, on ``Node``, on the concrete
types of ``node``), named fragments, ``@include``/``@skip`` with literals and variables, arguments as
literals or variables of their own types (Int, String, ID, Boolean, DateTime, Decimal, enums, lists, input
objects), with values from pools that hit the world's rows (the ids of its customers, complaints, survey).

hypothesis-graphql (PyPI) draws queries from a schema too, but neither fragments, directives nor variables,
and its argument values are random (mostly not-found ids), so this small strategy is written here.

Left out on purpose: clocks that move between the two requests of a comparison (seconds left on an SLA
clock), and ``tierExplanation`` (it reads the time too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
)
from hypothesis import strategies as st

ROOTS = ("customers", "customer", "complaints", "complaint", "node", "surveys", "survey")
SKIPPED_FIELDS = frozenset(
    {
        "Complaint.firstResponseTimeLeft",
        "Complaint.resolutionTimeLeft",
        "Complaint.pausedSeconds",
        "Customer.tierExplanation",
    }
)
SKIPPED_ARGUMENTS = frozenset({"after"})  # cursors: the hand-written tests follow real ones


@dataclass
class Pools:
    """Values that reach real rows, per scalar; ids of the world."""

    ids: Sequence[str]
    strings: Sequence[str] = ("a", "Ada", "delivery", "bronze", "ada.quintessa@example.org", "+49 30 12345678")
    ints: Sequence[int] = (0, 1, 2, 3, 51)
    datetimes: Sequence[str] = ("2000-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")
    decimals: Sequence[str] = ("0", "100", "1000.50")


@dataclass
class Document:
    """A document being drawn: its fragments and variables."""

    variables: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (type, value)
    fragments: dict[str, str] = field(default_factory=dict)  # name -> definition
    aliases: int = 0

    def variable(self, type_: str, value: Any) -> str:
        name = f"v{len(self.variables)}"
        self.variables[name] = (type_, value)
        return f"${name}"

    def alias(self) -> str:
        self.aliases += 1
        return f"a{self.aliases}"

    def text(self, selections: str) -> str:
        head = ", ".join(f"${n}: {t}" for n, (t, _) in self.variables.items())
        operation = f"query Generated({head}) {{ {selections} }}" if head else f"query Generated {{ {selections} }}"
        return " ".join([operation, *self.fragments.values()])

    def values(self) -> dict[str, Any]:
        return {n: v for n, (_, v) in self.variables.items()}


def _type_text(type_: Any) -> str:
    if isinstance(type_, GraphQLNonNull):
        return f"{_type_text(type_.of_type)}!"
    if isinstance(type_, GraphQLList):
        return f"[{_type_text(type_.of_type)}]"
    return str(type_.name)


def _literal(value: Any, type_: Any) -> str:
    named = get_named_type(type_)
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, type_.of_type if hasattr(type_, "of_type") else type_) for v in value) + "]"
    if isinstance(value, dict):
        fields = named.fields  # type: ignore[union-attr]
        return "{" + ", ".join(f"{k}: {_literal(v, fields[k].type)}" for k, v in value.items()) + "}"
    if isinstance(named, GraphQLEnumType):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


class ShapeStrategy:
    def __init__(
        self,
        schema: GraphQLSchema,
        pools: Pools,
        max_depth: int = 3,
        roots: Sequence[str] = ROOTS,
        directives: bool = True,
    ) -> None:
        self.roots = tuple(roots)
        self.directives = directives
        self.schema = schema
        self.pools = pools
        self.max_depth = max_depth
        query = schema.query_type
        assert query is not None
        self.query = query
        missing = [r for r in self.roots if r not in query.fields]
        assert not missing, f"root fields gone from the schema: {missing}"

    # values of input types
    def value(self, draw: Any, type_: GraphQLInputType, depth: int = 0) -> Any:
        if isinstance(type_, GraphQLNonNull):
            return self.value(draw, type_.of_type, depth)
        if isinstance(type_, GraphQLList):
            return [self.value(draw, type_.of_type, depth) for _ in range(draw(st.integers(1, 2)))]
        if isinstance(type_, GraphQLEnumType):
            return draw(st.sampled_from(sorted(type_.values)))
        if isinstance(type_, GraphQLInputObjectType):
            names = draw(st.lists(st.sampled_from(sorted(type_.fields)), min_size=1, max_size=2, unique=True))
            return {n: self.value(draw, type_.fields[n].type, depth + 1) for n in names}
        assert isinstance(type_, GraphQLScalarType), type_
        return draw(self.scalar(type_.name))

    def scalar(self, name: str) -> st.SearchStrategy[Any]:
        p = self.pools
        return {
            "Int": st.sampled_from(p.ints),
            "String": st.sampled_from(p.strings),
            "ID": st.sampled_from(p.ids),
            "Boolean": st.booleans(),
            "DateTime": st.sampled_from(p.datetimes),
            "Decimal": st.sampled_from(p.decimals),
            "Float": st.sampled_from((0.5, 2.0)),
        }.get(name, st.sampled_from(p.strings))

    def arguments(self, draw: Any, doc: Document, field_: Any) -> str:
        parts = []
        for name, arg in field_.args.items():
            required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is _undefined()
            if name in SKIPPED_ARGUMENTS or (not required and not draw(st.booleans())):
                continue
            value = self.value(draw, arg.type)
            if draw(st.booleans()):
                parts.append(f"{name}: {doc.variable(_type_text(arg.type), value)}")
            else:
                parts.append(f"{name}: {_literal(value, arg.type)}")
        return f"({', '.join(parts)})" if parts else ""

    def directive(self, draw: Any, doc: Document) -> str:
        kind = draw(st.sampled_from(("",) * 8 + ("@include", "@skip"))) if self.directives else ""
        if not kind:
            return ""
        value = draw(st.booleans())
        condition = doc.variable("Boolean!", value) if draw(st.booleans()) else ("true" if value else "false")
        return f" {kind}(if: {condition})"

    # selections
    def fields_of(self, type_: GraphQLObjectType | GraphQLInterfaceType, leaves_only: bool) -> list[str]:
        out = []
        for name, f in type_.fields.items():
            if f"{type_.name}.{name}" in SKIPPED_FIELDS:
                continue
            if any(isinstance(a.type, GraphQLNonNull) and a.default_value is _undefined() for a in f.args.values()):
                continue
            if leaves_only and not is_leaf_type(get_named_type(f.type)):
                continue
            out.append(name)
        return out

    def selection_set(self, draw: Any, doc: Document, type_: GraphQLNamedType, depth: int) -> str:
        if isinstance(type_, GraphQLInterfaceType):
            return self.abstract_selection(draw, doc, type_, depth)
        assert isinstance(type_, GraphQLObjectType), type_
        names = self.fields_of(type_, leaves_only=depth <= 0)
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True)) if names else []
        # mostly a relation or a nested object too, so shapes go deep
        composites = [n for n in names if not is_leaf_type(get_named_type(type_.fields[n].type))]
        if depth > 0 and composites and draw(st.integers(0, 2)) < 2:
            relation = draw(st.sampled_from(composites))
            if relation not in chosen:
                chosen.append(relation)
        # connections: mostly their items (edges, and the node of an edge), so shapes go deep
        for must in ("edges", "node"):
            if must in names and must not in chosen and draw(st.integers(0, 4)) < 4:
                chosen.insert(0, must)
        parts = [self.field(draw, doc, type_, name, depth) for name in chosen]
        if draw(st.integers(0, 4)) == 0:
            parts.append("__typename")
        if not parts:
            parts.append("__typename")
        wrap = draw(st.sampled_from(("plain", "plain", "inline", "named", "node")))
        if wrap == "inline" and len(parts) > 1:
            parts = [parts[0], f"... on {type_.name}{self.directive(draw, doc)} {{ {' '.join(parts[1:])} }}"]
        elif wrap == "named" and len(parts) > 1:
            name = f"F{len(doc.fragments)}"
            doc.fragments[name] = f"fragment {name} on {type_.name} {{ {' '.join(parts[1:])} }}"
            parts = [parts[0], f"...{name}{self.directive(draw, doc)}"]
        elif wrap == "node" and any(i.name == "Node" for i in type_.interfaces):
            parts.append("... on Node { id }")
        return " ".join(parts)

    def abstract_selection(self, draw: Any, doc: Document, type_: GraphQLInterfaceType, depth: int) -> str:
        parts = ["id", "__typename"] if draw(st.booleans()) else ["__typename"]
        for concrete in ("Customer", "Complaint"):
            if draw(st.booleans()):
                object_type = self.schema.get_type(concrete)
                assert isinstance(object_type, GraphQLObjectType)
                parts.append(f"... on {concrete} {{ {self.selection_set(draw, doc, object_type, depth)} }}")
        return " ".join(parts)

    def field(self, draw: Any, doc: Document, parent: GraphQLObjectType, name: str, depth: int) -> str:
        f = parent.fields[name]
        args = self.arguments(draw, doc, f)
        # a field with arguments always gets an alias of its own: two of them can't conflict
        alias = f"{doc.alias()}: " if args or draw(st.integers(0, 3)) == 0 else ""
        named = get_named_type(f.type)
        head = f"{alias}{name}{args}{self.directive(draw, doc)}"
        if is_leaf_type(named):
            return head
        structural = named.name.endswith(("Connection", "Edge")) or named.name == "PageInfo"
        return f"{head} {{ {self.selection_set(draw, doc, named, depth if structural else depth - 1)} }}"

    def documents(self) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        @st.composite
        def draw_document(draw: Any) -> tuple[str, dict[str, Any]]:
            doc = Document()
            roots = draw(st.lists(st.sampled_from(self.roots), min_size=1, max_size=2, unique=True))
            depth = self.max_depth - draw(st.integers(0, self.max_depth - 1))
            parts = [self.field(draw, doc, self.query, root, depth) for root in roots]
            if draw(st.integers(0, 5)) == 0:
                parts.append("__typename")
            return doc.text(" ".join(parts)), doc.values()

        return draw_document()


def _undefined() -> Any:
    from graphql import Undefined

    return Undefined
