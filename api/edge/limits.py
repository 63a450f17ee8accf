"""Limits checked before an operation runs, and the rate limit charged for it.

- Parsing: at most ``max_tokens`` lexical tokens and as many comments (graphql-core's own limits).
- Validation: depth and aliases (strawberry's validators), directives, and introspection in
  production (graphql-core's rule) — reported as ``QUERY_TOO_COMPLEX`` (introspection as
  ``BAD_USER_INPUT``).
- Validation errors: identical messages are reported once, and at most ``max_validation_errors``.
- Before execution, with the variables known: every input string is checked (no NUL, not longer
  than ``max_input_string_length``), the cost is estimated (``estimate_cost``), and the caller's
  rate-limit bucket is charged that cost. A refusal replaces the result; nothing is executed.
- A refused document (syntax, validation, strings, cost) costs ``rate_limit_refusal_cost`` points,
  or all the bucket holds if less; one that finds less than that is answered RATE_LIMITED, without
  its validation detail.
- The variables themselves (nesting depth and number of values) are checked by the HTTP edge right
  after decoding, without recursion: ``variables_problem``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.language import Visitor, visit
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

from api.graphql.core.errors import BAD_USER_INPUT, QUERY_TOO_COMPLEX, RATE_LIMITED
from infra.settings import Settings

if TYPE_CHECKING:
    from api.edge.ratelimit import Decision, RateLimiter
    from api.graphql.core.context import Context

log = logging.getLogger("tierwise.limits")


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_directives: int
    max_cost: int
    default_list_size: int
    max_page_size: int
    max_string_length: int
    introspection: bool
    refusal_cost: int = 100
    max_validation_errors: int = 10
    max_variables_depth: int = 20
    max_variables_values: int = 50_000

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_depth=s.max_query_depth,
            max_aliases=s.max_aliases,
            max_tokens=s.max_tokens,
            max_directives=s.max_directives,
            max_cost=s.max_query_cost,
            default_list_size=s.cost_default_list_size,
            max_page_size=s.max_page_size,
            max_string_length=s.max_input_string_length,
            introspection=not s.is_production,
            refusal_cost=s.rate_limit_refusal_cost,
            max_validation_errors=s.max_validation_errors,
            max_variables_depth=s.max_variables_depth,
            max_variables_values=s.max_variables_values,
        )


def too_complex(message: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX, **extensions})


# ---------------------------------------------------------------- validation rules

_CEILING = 10**12  # costs and depths stop growing here (fragment fan-out can be exponential)


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


class _Depth:
    """Depth of each operation, following fragments once each (memoised): strawberry's depth and
    alias validators re-walk a fragment at every spread, which is exponential in a document of a few
    dozen fragments that each spread the previous one twice."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.memo: dict[str, int] = {}
        self.active: set[str] = set()

    def of(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        deepest = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.name.value.startswith("__"):
                    continue  # introspection is refused in production, and shallow by construction
                depth = 1 + self.of(sel.selection_set) if sel.selection_set else 0
            elif isinstance(sel, InlineFragmentNode):
                depth = self.of(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                depth = self.fragment(sel.name.value)
            else:
                depth = 0
            deepest = max(deepest, depth)
        return min(deepest, _CEILING)

    def fragment(self, name: str) -> int:
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:
            return 0  # unknown or cyclic: other rules report it
        self.active.add(name)
        self.memo[name] = self.of(fragment.selection_set)
        self.active.discard(name)
        return self.memo[name]


def _complexity_rule(limits: Limits) -> type[ValidationRule]:
    class OperationComplexity(ValidationRule):
        """Depth (through fragments), aliases and directives, each counted once over the document."""

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.aliases = 0
            self.directives = 0
            document = context.document
            depth = _Depth(_fragments(document))
            for definition in document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    name = definition.name.value if definition.name else "anonymous"
                    try:
                        # a leaf under n object fields is at depth n, as in strawberry's QueryDepthLimiter
                        too_deep = depth.of(definition.selection_set) > limits.max_depth
                    except RecursionError:
                        too_deep = True
                    if too_deep:
                        self.report_error(
                            too_complex(f"'{name}' exceeds maximum operation depth of {limits.max_depth}")
                        )

        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            if node.alias is not None:
                self.aliases += 1

        def enter_directive(self, *_args: Any) -> None:
            self.directives += 1

        def leave_document(self, *_args: Any) -> None:
            if self.aliases > limits.max_aliases:
                self.report_error(too_complex(f"{self.aliases} aliases found. Allowed: {limits.max_aliases}"))
            if self.directives > limits.max_directives:
                self.report_error(too_complex(f"{self.directives} directives found. Allowed: {limits.max_directives}"))

    return OperationComplexity


def validation_rules(limits: Limits) -> tuple[type[ValidationRule], ...]:
    rules: list[type[ValidationRule]] = [_complexity_rule(limits)]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def capped_errors(errors: list[GraphQLError], limit: int) -> list[GraphQLError]:
    """One error per distinct message (a document repeating an unknown or duplicated directive ten
    times gets one error), at most ``limit`` of them, then one saying the rest were left out."""
    seen: set[str] = set()
    kept: list[GraphQLError] = []
    for error in errors:
        if error.message in seen:
            continue
        seen.add(error.message)
        if len(kept) == limit:
            kept.append(GraphQLError(f"too many validation errors: only the first {limit} are reported"))
            break
        kept.append(error)
    return kept


def tag_parse_limit(errors: list[GraphQLError] | None) -> None:
    """graphql-core stops parsing past the token and comment limits with a syntax error: code it."""
    for error in errors or ():
        if isinstance(error, GraphQLSyntaxError) and "Parsing aborted" in error.message:
            error.extensions = {**(error.extensions or {}), "code": QUERY_TOO_COMPLEX}


# ---------------------------------------------------------------- input strings


class _StringLiterals(Visitor):
    def __init__(self, check: Callable[[str], str | None]) -> None:
        super().__init__()
        self.check = check
        self.problem: str | None = None

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> Any:
        self.problem = self.check(node.value)
        return self.BREAK if self.problem else None


def _string_problem(value: str, limits: Limits) -> str | None:
    if "\x00" in value:
        return "strings may not contain NUL characters"
    if len(value) > limits.max_string_length:
        return f"strings may be at most {limits.max_string_length} characters long"
    return None


def bad_variable_string(variables: Mapping[str, Any] | None, limits: Limits) -> str | None:
    """Why a string in the variables is refused (a NUL character, too long, nested too deeply), or None."""

    def walk(value: Any, depth: int = 0) -> str | None:
        if isinstance(value, str):
            return _string_problem(value, limits)
        if depth > 20:
            return "input nested too deeply"
        items = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else ()
        for item in items:
            problem = walk(item, depth + 1)
            if problem:
                return problem
        return None

    return walk(variables or {})


def variables_problem(variables: object, limits: Limits) -> str | None:
    """Why decoded variables are refused (nested deeper than ``max_variables_depth``, or more than
    ``max_variables_values`` values), or None. Iterative, so no nesting can exhaust the stack."""
    stack: list[tuple[object, int]] = [(variables, 0)]
    values = 0
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > limits.max_variables_values:
            return f"variables may hold at most {limits.max_variables_values} values"
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth >= limits.max_variables_depth and children:
            return f"variables may be nested at most {limits.max_variables_depth} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def bad_literal_string(document: DocumentNode, limits: Limits) -> str | None:
    """Why a string literal of the document is refused, or None (kept per document by DocumentCache)."""
    visitor = _StringLiterals(lambda value: _string_problem(value, limits))
    visit(document, visitor)
    return visitor.problem


# ---------------------------------------------------------------- cost


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return ops[0] if len(ops) == 1 else None
    return next((o for o in ops if o.name and o.name.value == name), None)


class _Cost:
    """Every object (or list of objects) a field returns costs 1 per instance; scalars are free.
    ``first: n`` on a connection makes its list hold ``n`` items (capped at the page size); a list
    without ``first`` is assumed to hold ``default_list_size``. Nested lists multiply."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.limits = limits
        self.memo: dict[tuple[str, str, int | None], int] = {}

    def selections(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType, page: int | None, seen: frozenset[str]
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                total += self.field(sel, parent, page, seen)
            elif isinstance(sel, InlineFragmentNode):
                inner = self._type(sel.type_condition.name.value) if sel.type_condition else parent
                total += self.selections(sel.selection_set, inner or parent, page, seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                inner = self._type(fragment.type_condition.name.value) or parent
                key = (name, inner.name, page)
                if key not in self.memo:
                    self.memo[key] = self.selections(fragment.selection_set, inner, page, seen | {name})
                total += self.memo[key]
        return min(total, _CEILING)

    def field(self, node: FieldNode, parent: GraphQLNamedType, page: int | None, seen: frozenset[str]) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0 if name == "__typename" else 1
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        definition = parent.fields.get(name)
        if definition is None or is_leaf_type(get_named_type(definition.type)):
            return 0
        first = self._first(node, definition)
        if is_list_type(get_nullable_type(definition.type)):
            multiplier = first or page or self.limits.default_list_size
            child_page = None
        else:
            multiplier, child_page = 1, first
        inner = self.selections(node.selection_set, get_named_type(definition.type), child_page, seen)
        return min(multiplier * (1 + inner), _CEILING)

    def _first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        if "first" not in definition.args:
            return None
        value: Any = definition.args["first"].default_value
        for arg in node.arguments or ():
            if arg.name.value != "first":
                continue
            if isinstance(arg.value, IntValueNode):
                value = int(arg.value.value)
            elif isinstance(arg.value, VariableNode):
                value = self.variables.get(arg.value.name.value, value)
        if not isinstance(value, int) or isinstance(value, bool):
            return self.limits.max_page_size
        return min(max(value, 1), self.limits.max_page_size)

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name)


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    limits: Limits,
) -> int:
    operation = _operation(document, operation_name)
    if operation is None:
        return 1
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 1
    fragments = _fragments(document)
    defaults = {
        v.variable.name.value: int(v.default_value.value)
        for v in operation.variable_definitions or ()
        if isinstance(v.default_value, IntValueNode)
    }
    cost = _Cost(schema, fragments, {**defaults, **(variables or {})}, limits)
    try:
        return max(cost.selections(operation.selection_set, root, None, frozenset()), 1)
    except RecursionError:
        return _CEILING


# ---------------------------------------------------------------- the extension


def _refuse(error: GraphQLError) -> GraphQLExecutionResult:
    return GraphQLExecutionResult(data=None, errors=[error])


class DocumentCache:
    """Documents that parsed and validated, by query text, for one schema and one set of limits (one
    per app, never module-level: another schema or other limits must validate afresh). A document
    that failed either step is never kept, so its errors are reported afresh every time."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()
        self._literals: dict[str, str | None] = {}  # a kept document's literal check (its literals never change)
        # a kept document's estimated cost per (query, operation, variables as sent)
        self._costs: OrderedDict[tuple[str, str | None, bytes], int] = OrderedDict()

    def get(self, query: str | None) -> DocumentNode | None:
        if query is None:
            return None
        document = self._documents.get(query)
        if document is not None:
            self._documents.move_to_end(query)
        return document

    def put(self, query: str, document: DocumentNode) -> None:
        self._documents[query] = document
        self._documents.move_to_end(query)
        while len(self._documents) > self.size:
            evicted, _ = self._documents.popitem(last=False)
            self._literals.pop(evicted, None)

    def cost(
        self,
        schema: GraphQLSchema,
        query: str | None,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        limits: Limits,
    ) -> int:
        """``estimate_cost`` of a kept document, computed once per operation and variables."""
        if query is None or self._documents.get(query) is not document:
            return estimate_cost(schema, document, operation_name, variables, limits)
        try:
            key = (query, operation_name, orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))
        except TypeError:  # not JSON (it always is over HTTP)
            return estimate_cost(schema, document, operation_name, variables, limits)
        found = self._costs.get(key)
        if found is None:
            found = self._costs[key] = estimate_cost(schema, document, operation_name, variables, limits)
            if len(self._costs) > 4 * self.size:
                self._costs.popitem(last=False)
        return found

    def literal_problem(self, query: str | None, document: DocumentNode, limits: Limits) -> str | None:
        """``bad_literal_string`` of a document, checked once while this cache keeps it."""
        if query is None or self._documents.get(query) is not document:
            return bad_literal_string(document, limits)
        if query not in self._literals:
            self._literals[query] = bad_literal_string(document, limits)
        return self._literals[query]


class OperationLimits(SchemaExtension):
    """Parse and validation limits, then (with the variables known) input strings, cost and the
    rate limit — all before the first resolver runs. Also labels the request with the operation.
    A query text that parsed and validated before is neither parsed nor validated again."""

    def __init__(
        self,
        *,
        limits: Limits,
        limiter: RateLimiter | None,
        documents: DocumentCache | None = None,
        rules: tuple[type[ValidationRule], ...] | None = None,
    ) -> None:
        self.limits = limits
        self.limiter = limiter
        # one instance per operation: the rule classes are made once per app (``rules``), not per request
        self.rules = rules if rules is not None else validation_rules(limits)
        self.charged = False
        self.documents = documents
        self.cached = False

    async def on_operation(self) -> AsyncIterator[None]:
        ec = self.execution_context
        # strawberry's ParseOptions names max_tokens only; graphql-core's parse takes the two set here
        options: dict[str, Any] = ec.parse_options  # type: ignore[assignment]
        options["max_lexical_tokens"] = self.limits.max_tokens
        options["max_comments"] = self.limits.max_tokens
        ec.validation_rules = ec.validation_rules + self.rules
        yield
        ctx: Context | None = ec.context
        if ctx is None:
            return
        ctx.operation.name = ec.operation_name
        try:
            ctx.operation.type = ec.operation_type.value
        except Exception:  # no document (a syntax error)
            ctx.operation.type = None
        if ec.pre_execution_errors and ec.result is not None:
            # refused while parsing or validating: it costs the refusal price
            refusal = await self._penalize()
            if refusal is not None:
                ec.result.data, ec.result.errors = None, [refusal]

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        if self.documents is not None and ec.graphql_document is None:
            document = self.documents.get(ec.query)
            if document is not None:
                ec.graphql_document = document  # strawberry parses only when there is no document
                self.cached = True
        yield
        tag_parse_limit(ec.pre_execution_errors)

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        if self.cached:
            ec.pre_execution_errors = []  # validated before: strawberry validates only when this is None
        yield
        if ec.pre_execution_errors:
            ec.pre_execution_errors[:] = capped_errors(ec.pre_execution_errors, self.limits.max_validation_errors)
        if (
            self.documents is not None
            and not self.cached
            and ec.query is not None
            and ec.graphql_document is not None
            and ec.pre_execution_errors is not None
            and not ec.pre_execution_errors
        ):
            self.documents.put(ec.query, ec.graphql_document)

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        ctx: Context = ec.context
        assert ec.graphql_document is not None
        document = ec.graphql_document
        problem = bad_variable_string(ec.variables, self.limits) or (
            self.documents.literal_problem(ec.query, document, self.limits)
            if self.documents is not None
            else bad_literal_string(document, self.limits)
        )
        if problem:
            ec.result = _refuse(await self._penalize() or GraphQLError(problem, extensions={"code": BAD_USER_INPUT}))
            yield
            return
        schema = ec.schema._schema
        cost = (
            self.documents.cost(schema, ec.query, document, ec.operation_name, ec.variables, self.limits)
            if self.documents is not None
            else estimate_cost(schema, document, ec.operation_name, ec.variables, self.limits)
        )
        ctx.operation.cost = cost
        if cost > self.limits.max_cost:
            ec.result = _refuse(
                await self._penalize()
                or too_complex(
                    f"estimated cost {cost} is over the limit of {self.limits.max_cost}",
                    cost=cost,
                    maxCost=self.limits.max_cost,
                )
            )
            yield
            return
        refusal = await self._charge(cost)
        if refusal is not None:
            ec.result = _refuse(refusal)
        yield

    async def _penalize(self) -> GraphQLError | None:
        """Charge a refused document; RATE_LIMITED (to answer instead) if the budget did not hold it."""
        if self.limiter is None or self.charged:
            return None
        self.charged = True
        ctx: Context = self.execution_context.context
        decision = await self.limiter.penalize(ctx.db, ctx.principal, self.limits.refusal_cost)
        return None if decision.allowed else self._limited(ctx, decision)

    async def _charge(self, cost: int) -> GraphQLError | None:
        if self.limiter is None or self.charged:
            return None
        self.charged = True
        return await charge(self.limiter, self.execution_context.context, cost)

    @staticmethod
    def _limited(ctx: Context, decision: Decision) -> GraphQLError:
        return limited(ctx, decision)


def admission_problem(
    limits: Limits,
    documents: DocumentCache,
    schema: GraphQLSchema,
    query: str,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> tuple[bool, int]:
    """What ``OperationLimits.on_execute`` checks before charging, without refusing: (whether a string
    or the cost is refused, the estimated cost). The HTTP edge's compiled reads (api/edge/app.py) leave
    a refused operation to strawberry's path, which refuses it as always."""
    if bad_variable_string(variables, limits) or documents.literal_problem(query, document, limits):
        return True, 0
    cost = documents.cost(schema, query, document, operation_name, variables, limits)
    return cost > limits.max_cost, cost


async def charge(limiter: RateLimiter, ctx: Context, cost: int) -> GraphQLError | None:
    """Charge an admitted operation's cost; the rate-limit headers on the response; the error to
    answer with (and 429) when the budget does not hold it."""
    decision = await limiter.charge(ctx.db, ctx.principal, cost)
    headers = ctx.response.headers
    headers["X-RateLimit-Limit"] = str(decision.limit)
    headers["X-RateLimit-Remaining"] = str(decision.remaining)
    if decision.allowed:
        return None
    return limited(ctx, decision)


def limited(ctx: Context, decision: Decision) -> GraphQLError:
    headers = ctx.response.headers
    headers["X-RateLimit-Limit"] = str(decision.limit)
    headers["X-RateLimit-Remaining"] = "0"
    retry_after = decision.retry_after_header
    headers["Retry-After"] = retry_after
    ctx.response.status_code = 429
    return GraphQLError(
        f"rate limit of {decision.limit} points per minute reached; retry in {retry_after} s",
        extensions={"code": RATE_LIMITED, "retryAfter": int(retry_after)},
    )
