"""A compiled executor for the read queries of the hot path (issue 7).

graphql-core resolves a page of 50 customers field by field: ~1 250 fields, each through strawberry's
resolver wrappers, a resolve-info object, argument conversion and the field guard — most of the time
of a request. For a query whose every selected field it supports, this module compiles the selection
set once (per query text and operation name, per schema) into a plan of closures that read the same
strawberry objects, call the same resolvers with the same per-request loaders (so the same SQL
statements, as many), apply the same field guard (``api.graphql.core.guard.read_check``: FULL, MASKED, CONSENTED,
DENIED, the same errors, the same masks from the catalogue, the same sensitive-read audit) and build
the response dictionaries directly.

Equivalence with graphql-core is kept by construction where it shows in the response:

- root fields run through the schema's own resolvers (guards, argument checks, argument coercion, input types);
  nested fields meet the same field guard and argument check (``api.graphql.core.guard.argument_check``);
- fields of an object run in document order, synchronous ones completed at once, awaitables settled
  afterwards as graphql-core's ``execute_fields`` and list completion gather them;
- errors are located like graphql-core's (``located_error`` with the field nodes and the path), a
  null in a non-null position propagates to the nearest nullable parent, leaves are coerced by the
  types' own ``coerce_output_value``.

Lists are completed without a task per item: before the items of a list, the plan starts the loads of
their nested fields at once (``api.graphql.customers.types.PREFETCH``: the same loader keys as the
resolvers, one batch per field), and awaitables of an object or a list are first run in order as far as
they go (``_settle``: what a gather's tasks would do first) — with the data loaded they finish there, and
only what still waits is gathered. A page of 50 customers with tier and complaints went from ~150 tasks to 4; errors
come out in document order, item by item (strawberry's order follows the event loop; the spec gives
none).

Since a plan knows every field its operation can reach, rows leave out the encrypted columns of fields
it does not select (``Loaders.narrow_to``): a page showing e-mail and phone decrypts those two values per
customer, not every granted one.

What it does not support it leaves to strawberry (the plan is ``None``): mutations, subscriptions,
introspection, directives, abstract types (interfaces, unions), fields with resolvers not listed in
``CONTEXT_RESOLVERS``, resolver arguments that are not plain scalars, and the JSON fields that embed
other fields (``api.graphql.core.guard.EMBEDDED``). ``tests/api/test_fastpath_equivalence.py`` compares both paths
byte for byte (the errors as a set). The switch is ``Settings.compiled_queries``.

Why not one SQL statement building the JSON in PostgreSQL: with encryption at rest (issue 8) the
sensitive columns can only be decrypted in Python, and masking needs the plaintext; the plan therefore
stays in Python, on top of the loaders, which keep the statement count constant in the page size.
"""

from __future__ import annotations

import inspect as pyinspect
import logging
import operator
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    located_error,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution.values import get_argument_values
from graphql.language import DirectiveNode, Visitor, visit
from graphql.pyutils import Path
from graphql.pyutils import inspect as gql_inspect
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import SchemaExtension

from api.graphql.core.guard import EMBEDDED, ArgumentCheck, argument_check, read_check
from api.graphql.customers.types import PREFETCH
from authz.catalogue import Sensitivity, classification

log = logging.getLogger("tierwise.fastpath")
ROOT_FIELDS = frozenset({"customers", "customer"})
# Fields with resolvers that read nothing from ``info`` but ``info.context`` (checked by reading them):
# the plan calls them with a small object that has only the context.
CONTEXT_RESOLVERS = frozenset(
    {
        "Customer.tier",
        "Customer.metrics",
        "Customer.complaints",
        "Customer.purchases",
        "Customer.consent",
        "Customer.partner",
        "Customer.churnRisk",
        "Complaint.customer",
        "Complaint.category",
        "Complaint.rootCause",
        "Complaint.followUpOf",
        "Complaint.events",
        "Purchase.customer",
        "CustomerConnection.totalCount",
        "ComplaintConnection.totalCount",
        "PurchaseConnection.totalCount",
    }
)
_SCALAR_ARGS = frozenset({"Int", "String", "Boolean", "ID", "Float"})
_BACKREF = "strawberry-definition"


class Unsupported(Exception):
    """The operation needs something the compiled executor does not do: strawberry answers it."""


class _ContextInfo:
    """What the listed resolvers read from ``info``: the request context, nothing else."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


class _Run:
    """The state of one execution: the context, the coerced arguments, the errors so far."""

    __slots__ = ("args", "context", "errors", "info", "variable_values")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.info = _ContextInfo(context)
        self.errors: list[GraphQLError] = []
        self.args: dict[int, dict[str, Any]] = {}
        self.variable_values: Any = None

    def field_error(self, raw: Exception, nodes: list[FieldNode], path: Path, non_null: bool) -> None:
        error = located_error(raw, nodes, path.as_list())
        if non_null:
            raise error
        self.errors.append(error)


_Complete = Callable[[_Run, Any, Path], Any]


_is_awaitable = optimized_is_awaitable  # graphql-core's check as strawberry runs it


# ---------------------------------------------------------------- compiling


class _FieldPlan:
    __slots__ = (
        "args_of",
        "check",
        "complete",
        "eager",
        "getter",
        "key",
        "leaf",
        "nodes",
        "non_null",
        "prefetch",
        "resolver",
        "typename",
    )

    key: str
    nodes: list[FieldNode]
    non_null: bool
    complete: _Complete

    def __init__(self) -> None:
        self.check: Callable[[Any, Any], Callable[[Any], Any] | None] | None = None
        self.getter: Callable[[Any], Any] | None = None
        self.resolver: Callable[..., Any] | None = None
        self.args_of: Callable[[_Run], dict[str, Any]] | None = None
        self.typename: str | None = None
        self.eager = False
        self.leaf: Callable[[Any], Any] | None = None
        self.prefetch: Callable[[Any, list[Any], dict[str, Any]], Any] | None = None


class _Compiler:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.arg_slots = 0
        self.selected: set[str] = set()  # every field the plan may complete, as Type.field

    # collecting fields (no directives: checked before compiling)
    def collect(
        self, parent: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> OrderedDict[str, list[FieldNode]]:
        fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
        seen: set[str] = set()

        def walk(selection_set: SelectionSetNode) -> None:
            for sel in selection_set.selections:
                if isinstance(sel, FieldNode):
                    key = sel.alias.value if sel.alias else sel.name.value
                    fields.setdefault(key, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    if sel.type_condition is None or self._applies(sel.type_condition.name.value, parent):
                        walk(sel.selection_set)
                elif isinstance(sel, FragmentSpreadNode):
                    name = sel.name.value
                    if name in seen:
                        continue
                    seen.add(name)
                    fragment = self.fragments.get(name)
                    if fragment is None:
                        raise Unsupported(f"unknown fragment {name}")
                    if self._applies(fragment.type_condition.name.value, parent):
                        walk(fragment.selection_set)
                else:
                    raise Unsupported("selection")

        for selection_set in selection_sets:
            walk(selection_set)
        return fields

    def _applies(self, type_name: str, parent: GraphQLObjectType) -> bool:
        condition = self.schema.get_type(type_name)
        if condition is parent:
            return True
        if condition is None:
            raise Unsupported(f"unknown type {type_name}")
        return bool(self.schema.is_sub_type(condition, parent))  # type: ignore[arg-type]

    def object_plan(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> list[_FieldPlan]:
        selection_sets = [n.selection_set for n in nodes if n.selection_set is not None]
        return [self.field_plan(parent, key, group) for key, group in self.collect(parent, selection_sets).items()]

    def field_plan(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> _FieldPlan:
        name = nodes[0].name.value
        plan = _FieldPlan()
        plan.key, plan.nodes = key, nodes
        self.selected.add(f"{parent.name}.{name}")
        if name == "__typename":
            plan.typename = parent.name
            plan.non_null = True
            plan.complete = _identity
            return plan
        if name.startswith("__"):
            raise Unsupported("introspection")
        field = parent.fields.get(name)
        if field is None:
            raise Unsupported(f"unknown field {parent.name}.{name}")
        spec = classification(parent.name, name)
        if spec is None:
            raise Unsupported(f"unclassified field {parent.name}.{name}")
        if spec.sensitivity is not Sensitivity.PUBLIC:
            if spec.key in EMBEDDED:
                raise Unsupported(f"embedded values of {spec.key}")
            plan.check = read_check(spec)
        definition = field.extensions.get(_BACKREF)
        if definition is None:
            raise Unsupported(f"not a strawberry field: {parent.name}.{name}")
        base = definition.base_resolver
        if base is None:
            plan.getter = operator.attrgetter(definition.python_name)
        else:
            if f"{parent.name}.{name}" not in CONTEXT_RESOLVERS:
                raise Unsupported(f"resolver of {parent.name}.{name}")
            if spec.mask is not None:  # the plan masks values it reads, not what a resolver returns
                raise Unsupported(f"masked field with a resolver: {spec.key}")
            # the field guard's argument check, applied when the arguments are read (before the resolver)
            check_arguments = argument_check(parent.name, name, field, [])
            plan.resolver, plan.args_of = self.resolver_call(field, definition, base, nodes[0], check_arguments)
            # a prefetch would load before the arguments are checked; a check that records no audit row
            if spec.sensitivity is not Sensitivity.SENSITIVE and check_arguments is None:
                plan.prefetch = PREFETCH.get(f"{parent.name}.{name}")
        plan.non_null = is_non_null_type(field.type)
        plan.complete = self.completer(field.type, nodes, parent, name)
        plan.eager = plan.resolver is not None and self.error_free(field.type, nodes)
        named = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if plan.getter is not None and is_leaf_type(named):
            plan.leaf = _leaf(named, plan.non_null, f"Cannot return null for non-nullable field {parent}.{name}.")
        return plan

    def error_free(self, type_: GraphQLOutputType, nodes: list[FieldNode]) -> bool:
        """Whether completing this selection can raise no field error: only public attribute fields
        below (no guard, no resolver). Such a resolver is started at once (see ``_start``)."""
        while isinstance(type_, GraphQLNonNull | GraphQLList):
            type_ = type_.of_type
        if is_leaf_type(type_):
            return True
        if not is_object_type(type_):
            return False
        selection_sets = [n.selection_set for n in nodes if n.selection_set is not None]
        for group in self.collect(type_, selection_sets).values():
            name = group[0].name.value
            if name == "__typename":
                continue
            field = type_.fields.get(name)
            spec = classification(type_.name, name)
            definition = field.extensions.get(_BACKREF) if field is not None else None
            if spec is None or spec.sensitivity is not Sensitivity.PUBLIC or definition is None:
                return False
            if definition.base_resolver is not None or not self.error_free(field.type, group):
                return False
        return True

    def resolver_call(
        self, field: GraphQLField, definition: Any, base: Any, node: FieldNode, check_arguments: ArgumentCheck | None
    ) -> tuple[Callable[..., Any], Callable[[_Run], dict[str, Any]] | None]:
        if base.root_parameter is not None or base.parent_parameter is not None:
            raise Unsupported("root or parent parameter")
        python_names: dict[str, str] = {}
        for argument in definition.arguments:
            named = field.args[argument.graphql_name or argument.python_name].type
            while isinstance(named, GraphQLNonNull | GraphQLList):
                if isinstance(named, GraphQLList):
                    raise Unsupported("list argument")
                named = named.of_type
            if named.name not in _SCALAR_ARGS:
                raise Unsupported("non-scalar argument")
            python_names[argument.graphql_name or argument.python_name] = argument.python_name
        info_name = base.info_parameter.name if base.info_parameter is not None else None
        func = base.wrapped_func
        takes_self = base.self_parameter is not None
        if not field.args:
            args_of = None
        else:
            slot = self.arg_slots
            self.arg_slots += 1

            def args_of(run: _Run) -> dict[str, Any]:
                args = run.args.get(slot)
                if args is None:
                    raw = get_argument_values(field, node, run.variable_values)
                    if check_arguments is not None:  # refused: nothing kept, every item meets the same refusal
                        check_arguments(run.context.decisions, raw)
                    args = run.args[slot] = {python_names[k]: v for k, v in raw.items()}
                return args

        def call(run: _Run, source: Any, kwargs: dict[str, Any]) -> Any:
            if info_name is not None:
                kwargs = {**kwargs, info_name: run.info}
            return func(source, **kwargs) if takes_self else func(**kwargs)

        return call, args_of

    def completer(
        self, type_: GraphQLOutputType, nodes: list[FieldNode], parent: GraphQLObjectType, name: str
    ) -> _Complete:
        if isinstance(type_, GraphQLNonNull):
            inner = self.completer(type_.of_type, nodes, parent, name)
            message = f"Cannot return null for non-nullable field {parent}.{name}."

            def complete_non_null(run: _Run, value: Any, path: Path) -> Any:
                completed = inner(run, value, path)
                if _is_awaitable(completed):
                    return _non_null_later(completed, message)
                if completed is None:
                    raise TypeError(message)
                return completed

            complete_non_null.fields = getattr(inner, "fields", None)  # type: ignore[attr-defined]
            return complete_non_null
        if is_list_type(type_):
            item_type = type_.of_type
            item = self.completer(item_type, nodes, parent, name)
            item_non_null = is_non_null_type(item_type)
            return _list_completer(item, item_non_null, nodes, _prefetchers(getattr(item, "fields", None)))
        if is_leaf_type(type_):
            leaf = _leaf(type_, False, "")  # a null is refused by the non-null wrapper above

            def complete_leaf(run: _Run, value: Any, path: Path) -> Any:
                return leaf(value)

            return complete_leaf
        if is_object_type(type_):
            fields = self.object_plan(type_, nodes)
            type_name = type_.name

            def complete_object(run: _Run, value: Any, path: Path) -> Any:
                if value is None or value is Undefined:
                    return None
                return _execute_fields(run, fields, value, path, type_name)

            complete_object.fields = fields  # type: ignore[attr-defined]
            return complete_object
        raise Unsupported(f"abstract type {type_}")


def _leaf(type_: Any, non_null: bool, message: str) -> Callable[[Any], Any]:
    """The completion of a scalar or enum value, as graphql-core does it, in one call: no path unless
    it fails, no awaitable check (used directly for attribute fields: a row value is never awaitable)."""
    coerce = type_.coerce_output_value

    def leaf(value: Any) -> Any:
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(message)
            return None
        coerced = coerce(value)
        if coerced is Undefined or coerced is None:
            raise TypeError(
                f"Expected `{gql_inspect(type_)}.coerce_output_value("
                f"{gql_inspect(value)})` to return non-nullable value, returned: {gql_inspect(coerced)}"
            )
        return coerced

    return leaf


def _identity(run: _Run, value: Any, path: Path) -> Any:
    return value


async def _non_null_later(completed: Any, message: str) -> Any:
    value = await completed
    if value is None:
        raise TypeError(message)
    return value


_Chain = tuple[tuple[_FieldPlan, ...], _FieldPlan]


def _prefetchers(fields: list[_FieldPlan] | None) -> list[_Chain]:
    """The fields with a prefetch hook (``api.graphql.customers.types.PREFETCH``) of a list's items, and of the objects
    reached from an item through plain unguarded attributes (an edge's node): each as the attribute
    chain from the item and the field's plan."""
    found: list[_Chain] = []

    def walk(plans: list[_FieldPlan], chain: tuple[_FieldPlan, ...]) -> None:
        for plan in plans:
            if plan.prefetch is not None:
                found.append((chain, plan))
            elif plan.getter is not None and plan.check is None and len(chain) < 3:
                inner = getattr(plan.complete, "fields", None)
                if inner:
                    walk(inner, (*chain, plan))

    if fields:
        walk(fields, ())
    return found


def _prefetch(run: _Run, items: list[Any], prefetchers: list[_Chain]) -> list[Any]:
    """Start every prefetch of a list at once (their loads join one batch per loader) and return the
    awaitables. Only sources whose field check passes are prefetched (the checks of prefetched fields
    record no audit rows); anything that fails here is left to the item's own resolver to report."""
    waits: list[Any] = []
    for chain, plan in prefetchers:
        sources: list[Any] = []
        for item in items:
            source = item
            try:
                for link in chain:
                    source = link.getter(source)  # type: ignore[misc]
                    if source is None:
                        break
                if source is None:
                    continue
                if plan.check is not None:
                    plan.check(source, run.context)
            except Exception:
                continue
            sources.append(source)
        if not sources:
            continue
        try:
            wait = plan.prefetch(run.context, sources, plan.args_of(run) if plan.args_of is not None else {})  # type: ignore[misc]
        except Exception:
            continue
        if wait is not None:
            waits.append(wait)
    return waits


async def _after_prefetch(waits: list[Any], complete: Callable[[], Any]) -> Any:
    for i, wait in enumerate(waits):
        try:
            await wait
        except Exception:  # the resolvers meet the same error and report it
            continue
        except BaseException:  # cancelled: the prefetches not awaited yet are closed, not left dangling
            for rest in waits[i + 1 :]:
                if pyinspect.iscoroutine(rest):
                    rest.close()
            raise
    completed = complete()
    if _is_awaitable(completed):
        completed = await completed
    return completed


def _list_completer(
    item: _Complete, item_non_null: bool, nodes: list[FieldNode], prefetchers: list[_Chain]
) -> _Complete:
    def complete_list(run: _Run, value: Any, path: Path) -> Any:
        if value is None or value is Undefined:
            return None
        if prefetchers:
            items = value if isinstance(value, list) else list(value)
            waits = _prefetch(run, items, prefetchers)
            if waits:
                return _after_prefetch(waits, lambda: complete_items(run, items, path))
            return complete_items(run, items, path)
        return complete_items(run, value, path)

    def complete_items(run: _Run, value: Any, path: Path) -> Any:
        results: list[Any] = []
        awaitable_indices: list[int] = []
        for index, element in enumerate(value):
            item_path = path.add_key(index, None)
            try:
                completed = item(run, element, item_path)
                if _is_awaitable(completed):
                    results.append(_await_item(run, completed, item_path, nodes, item_non_null))
                    awaitable_indices.append(index)
                    continue
            except Exception as raw:
                run.field_error(raw, nodes, item_path, item_non_null)
                completed = None
            results.append(completed)
        if not awaitable_indices:
            return results
        return _gather_list(results, awaitable_indices)

    return complete_list


async def _await_item(run: _Run, completed: Any, path: Path, nodes: list[FieldNode], non_null: bool) -> Any:
    try:
        return await completed
    except Exception as raw:
        run.field_error(raw, nodes, path, non_null)
        return None


async def _gather_list(results: list[Any], indices: list[int]) -> list[Any]:
    pending = _settle(results, indices)
    if pending:
        awaited = await _gather_pending([results[i] for i in pending])
        for i, value in zip(pending, awaited, strict=True):
            results[i] = value
    return results


def _execute_fields(run: _Run, fields: list[_FieldPlan], source: Any, path: Path | None, type_name: str) -> Any:
    """graphql-core's ``execute_fields``: in order, synchronous values at once, awaitables gathered after."""
    results: dict[str, Any] = {}
    awaitable_keys: list[str] = []
    for plan in fields:
        key = plan.key
        if plan.typename is not None:
            results[key] = plan.typename
            continue
        leaf = plan.leaf
        if leaf is not None:  # the common case: a column of the row, completed in one call
            try:
                mask = plan.check(source, run.context) if plan.check is not None else None
                value = plan.getter(source)  # type: ignore[misc]
                if isinstance(value, Exception):  # as graphql-core: a value that is an error is raised
                    raise value  # (a stored value failing its integrity check, infra/crypto.py)
                if mask is not None:
                    value = mask(value)
                results[key] = leaf(value)
            except Exception as raw:
                run.field_error(raw, plan.nodes, Path(path, key, type_name), plan.non_null)
                results[key] = None
            continue
        field_path = Path(path, key, type_name)
        try:
            mask = plan.check(source, run.context) if plan.check is not None else None
            if plan.getter is not None:
                value = plan.getter(source)
                if mask is not None:
                    value = mask(value)
            else:
                args = plan.args_of(run) if plan.args_of is not None else {}
                value = plan.resolver(run, source, args)  # type: ignore[misc]
                if plan.eager and pyinspect.iscoroutine(value):
                    value = _start(value)
            completed = _complete_value(run, plan, value, field_path)
            if _is_awaitable(completed):
                results[key] = completed
                awaitable_keys.append(key)
                continue
        except Exception as raw:
            run.field_error(raw, plan.nodes, field_path, plan.non_null)
            completed = None
        results[key] = completed
    if not awaitable_keys:
        return results
    return _gather_fields(results, awaitable_keys)


_DONE, _FAILED, _WAITING = 0, 1, 2


def _step(awaitable: Any) -> tuple[int, Any]:
    """Run an awaitable (a coroutine, or a ``_Started`` one) as far as it goes now: ``(_DONE, value)``,
    ``(_FAILED, exception)`` or ``(_WAITING, started)`` with a ``_Started`` to await for the rest."""
    if isinstance(awaitable, _Started):
        return awaitable.advance()
    if not pyinspect.iscoroutine(awaitable):
        awaitable = _await(awaitable)
    try:
        yielded = awaitable.send(None)
    except StopIteration as stop:
        return _DONE, stop.value
    except Exception as exc:
        return _FAILED, exc
    return _Started.after(awaitable, yielded).advance()


def _start(coro: Any) -> Any:
    """Run a resolver's coroutine up to its first suspension, now: its value when it finishes without
    waiting (the common case: a memoised lookup), else an awaitable that carries on from there. An
    error it raises is handed over as an awaitable that raises it, so it is reported when graphql-core
    would report it (with the other awaited fields), not earlier. Used only for fields whose selection
    cannot raise field errors (``_Compiler.error_free``), so the order of errors is graphql-core's."""
    state, payload = _step(coro)
    if state is _FAILED:
        return _raise(payload)
    return payload


async def _raise(exc: Exception) -> Any:
    raise exc


async def _await(awaitable: Any) -> Any:
    return await awaitable


class _Started:
    """The rest of a coroutine that already ran to its first suspension (what ``yield from`` does)."""

    __slots__ = ("blocking", "coro", "first")

    def __init__(self, coro: Any, first: Any, *, blocking: bool) -> None:
        self.coro = coro
        self.first = first
        self.blocking = blocking

    @classmethod
    def after(cls, coro: Any, yielded: Any) -> _Started:
        """The rest of ``coro`` after it yielded ``yielded``."""
        if getattr(yielded, "_asyncio_future_blocking", False):
            # what a Task does with a future it is handed: otherwise the next coroutine awaiting the same
            # future (the other customers of the page waiting for the memoised tiers) would be refused
            yielded._asyncio_future_blocking = False
            return cls(coro, yielded, blocking=True)
        return cls(coro, yielded, blocking=False)

    def advance(self) -> tuple[int, Any]:
        """Carry on while the future waited for is already done (a Task would resume at once): the
        value when the coroutine finishes, its error, or this object still waiting."""
        coro = self.coro
        while self.blocking and self.first.done():
            try:
                yielded = coro.send(None)  # the awaited future's result is read by its own __await__
            except StopIteration as stop:
                return _DONE, stop.value
            except Exception as exc:
                return _FAILED, exc
            started = _Started.after(coro, yielded)
            self.first, self.blocking = started.first, started.blocking
        return _WAITING, self

    def __await__(self) -> Any:
        coro, yielded = self.coro, self.first
        if self.blocking:
            if yielded.done():  # finished meanwhile: carry on without waiting
                yielded = None
            else:
                yielded._asyncio_future_blocking = True  # handed to the Task now, as the coroutine meant
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def _complete_value(run: _Run, plan: _FieldPlan, value: Any, path: Path) -> Any:
    """The completed value of a resolved field, or an awaitable of it (to gather with its siblings)."""
    if _is_awaitable(value):
        return _complete_later(run, plan, value, path)
    if isinstance(value, Exception):  # graphql-core's complete_value raises a value that is an error
        raise value
    completed = plan.complete(run, value, path)
    if _is_awaitable(completed):
        return _await_completed(run, plan, completed, path)
    return completed


async def _complete_later(run: _Run, plan: _FieldPlan, value: Any, path: Path) -> Any:
    try:
        resolved = await value
        completed = plan.complete(run, resolved, path)
        if _is_awaitable(completed):
            completed = await completed
        return completed
    except Exception as raw:
        run.field_error(raw, plan.nodes, path, plan.non_null)
        return None


async def _await_completed(run: _Run, plan: _FieldPlan, completed: Any, path: Path) -> Any:
    try:
        return await completed
    except Exception as raw:
        run.field_error(raw, plan.nodes, path, plan.non_null)
        return None


async def _gather_fields(results: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    pending = _settle(results, keys)
    if pending:
        awaited = await _gather_pending([results[k] for k in pending])
        results.update(zip(pending, awaited, strict=True))
    return results


def _settle(results: Any, keys: list[Any]) -> list[Any]:
    """Run the awaitables ``results[key]`` now, in order, each as far as it goes without waiting (what
    the tasks of a gather would do first, in the same order); a finished one is replaced by its value.
    Returns the keys still waiting. An error is raised after every awaitable had its first run (as a
    gather's tasks all start before its error arrives), the waiting ones closed (as it cancels them).
    Once a list's data is prefetched, nothing waits: no task is made for a field or an item."""
    pending: list[Any] = []
    error: Exception | None = None
    for key in keys:
        state, payload = _step(results[key])
        if state is _WAITING:
            pending.append(key)
        elif state is _FAILED:
            error = error or payload
        results[key] = payload
    if error is not None:
        for key in pending:
            results[key].coro.close()
        raise error
    return pending


async def _gather_pending(awaitables: list[Any]) -> list[Any]:
    if len(awaitables) == 1:
        return [await awaitables[0]]
    return await gather_with_cancel(*awaitables)


# ---------------------------------------------------------------- plans


class _HasDirectives(Visitor):
    found = False

    def enter_directive(self, node: DirectiveNode, *_args: Any) -> Any:
        self.found = True
        return self.BREAK


class _RootPlan:
    def __init__(
        self, root: GraphQLObjectType, fields: list[tuple[_FieldPlan, GraphQLField]], selected: frozenset[str]
    ) -> None:
        self.root = root
        self.fields = fields
        self.selected = selected  # every field of every type the operation can reach


def compile_operation(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> _RootPlan | None:
    """The plan of the operation, or None when the compiled executor does not support it."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        operation = operations[0] if len(operations) == 1 else None
    else:
        operation = next((o for o in operations if o.name and o.name.value == operation_name), None)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    visitor = _HasDirectives()
    visit(document, visitor)
    if visitor.found:
        return None
    root = schema.query_type
    if root is None:
        return None
    compiler = _Compiler(schema, document)
    try:
        plans: list[tuple[_FieldPlan, GraphQLField]] = []
        for key, nodes in compiler.collect(root, [operation.selection_set]).items():
            name = nodes[0].name.value
            if name == "__typename":
                plan = compiler.field_plan(root, key, nodes)
                plans.append((plan, None))  # type: ignore[arg-type]
                continue
            if name not in ROOT_FIELDS:
                return None
            field = root.fields[name]
            plan = _FieldPlan()
            plan.key, plan.nodes, plan.non_null = key, nodes, is_non_null_type(field.type)
            plan.complete = compiler.completer(field.type, nodes, root, name)
            plans.append((plan, field))
    except Unsupported:
        return None
    return _RootPlan(root, plans, frozenset(compiler.selected))


class FastPath:
    """Plans by (query text, operation name) for one schema; ``None`` remembered for unsupported ones."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._plans: OrderedDict[tuple[str, str | None], _RootPlan | None] = OrderedDict()
        self.executed = 0  # operations answered by a plan (for tests and benchmarks)

    def plan(self, schema: GraphQLSchema, query: str, document: DocumentNode, operation_name: str | None) -> Any:
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        try:
            plan = compile_operation(schema, document, operation_name)
        except Exception as exc:  # a gap in the compiler must not fail a request: strawberry answers it
            log.warning("compiling an operation failed (%s): strawberry answers it", type(exc).__name__)
            plan = None
        self._plans[key] = plan
        while len(self._plans) > self.size:
            self._plans.popitem(last=False)
        return plan

    async def execute(self, ec: Any) -> GraphQLExecutionResult | None:
        """Run the operation of strawberry's execution context with its plan; None: not supported."""
        document = ec.graphql_document
        if document is None or ec.query is None:
            return None
        schema: GraphQLSchema = ec.schema._schema
        plan = self.plan(schema, ec.query, document, ec.operation_name)
        if plan is None:
            return None
        executor = ec.schema.execution_context_class.build(
            schema,
            document,
            root_value=ec.root_value,
            context_value=ec.context,
            raw_variable_values=ec.variables,
            operation_name=ec.operation_name,
        )
        if isinstance(executor, list):
            return None  # variables that do not coerce: strawberry reports them
        self.executed += 1
        run = _Run(ec.context)
        # Every field the operation can reach is known: rows leave out the encrypted columns of fields it
        # does not select (decrypting them was the largest cost of a row). The same for every row of the
        # request (the loaders' caches hold rows of one shape).
        ec.context.loaders.narrow_to(plan.selected)
        run.variable_values = executor.variable_values
        data = await _execute_root(run, executor, plan)
        return GraphQLExecutionResult(data=data, errors=run.errors or None)


async def _execute_root(run: _Run, executor: Any, plan: _RootPlan) -> Any:
    root = plan.root
    results: dict[str, Any] = {}
    awaitable_keys: list[str] = []
    try:
        for field_plan, field in plan.fields:
            key = field_plan.key
            if field is None:
                results[key] = field_plan.typename
                continue
            path = Path(None, key, root.name)
            try:
                info = executor.build_resolve_info(field, field_plan.nodes, root, path)
                args = get_argument_values(field, field_plan.nodes[0], executor.variable_values)
                value = field.resolve(executor.root_value, info, **args)  # type: ignore[misc]
                completed = _complete_value(run, field_plan, value, path)
                if _is_awaitable(completed):
                    results[key] = completed
                    awaitable_keys.append(key)
                    continue
            except Exception as raw:
                run.field_error(raw, field_plan.nodes, path, field_plan.non_null)
                completed = None
            results[key] = completed
        if awaitable_keys:
            return await _gather_fields(results, awaitable_keys)
        return results
    except GraphQLError as error:  # a null propagated to the root: no data
        run.errors.append(error)
        return None


class CompiledQueries(SchemaExtension):
    """Runs supported read queries through their compiled plan (after the limits and the rate limit
    passed: a refusal already set the result); anything else executes normally."""

    def __init__(self, *, fastpath: FastPath) -> None:
        self.fastpath = fastpath

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        if ec.result is None and ec.context is not None:
            result = await self.fastpath.execute(ec)
            if result is not None:
                ec.result = result
        yield


__all__ = ["CompiledQueries", "FastPath", "compile_operation"]
