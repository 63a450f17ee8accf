"""Per-request DataLoaders: every relation goes through one, so a page costs a constant number of
statements whatever its size. Created with the request's decisions and row scope, never shared."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any
from uuid import UUID

from strawberry.dataloader import DataLoader

from authz.catalogue import CATALOGUE
from authz.policy import Decisions, Level
from infra import crypto
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import partners as partners_repo
from infra.repos import purchases as purchases_repo
from infra.repos import surveys as surveys_repo
from infra.repos import teams as teams_repo
from infra.repos import tiers as tiers_repo
from infra.repos.base import Executor, Page, Scope

# Which table columns carry which guarded field: only granted columns are selected.
CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {
    "Customer.externalRef": ("external_ref",),
    "Customer.name": ("name",),
    "Customer.email": ("email",),
    "Customer.phone": ("phone",),
    "Customer.nationalId": ("national_id",),
    "Customer.birthDate": ("birth_date",),
    "Customer.address": ("address",),
    "Customer.locale": ("locale",),
    "Customer.lifecycleStage": ("lifecycle_stage",),
    "Customer.tier": ("tier_code",),
    "Customer.tierSince": ("tier_since",),
    "Customer.consent": ("consent_email_at", "consent_sms_at", "consent_phone_at"),
}
COMPLAINT_COLUMNS: dict[str, tuple[str, ...]] = {"Complaint.description": ("description",)}
_ENCRYPTED = {f"{table}.{column}" for table, column in crypto.ENCRYPTED_COLUMNS}
# The fields whose columns are encrypted: what ``Loaders.narrow_to`` may leave out.
SEALED_FIELDS = frozenset(
    key
    for table, mapping in (("customers", CUSTOMER_COLUMNS), ("complaints", COMPLAINT_COLUMNS))
    for key, cols in mapping.items()
    if any(f"{table}.{c}" in _ENCRYPTED for c in cols)
)


def allowed_columns(decisions: Decisions, mapping: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The columns of the granted fields, and the consent column of each consent-gated one."""
    out: list[str] = []
    for key, cols in mapping.items():
        level = decisions.read(key)
        if level is not Level.DENIED:
            out.extend(cols)
        if level is Level.CONSENTED:
            out.append(f"consent_{CATALOGUE[key].consent}_at")
    return tuple(dict.fromkeys(out))


def _by_key(rows: dict[Any, Any], keys: Sequence[Any], default: Any = None) -> list[Any]:
    return [rows.get(k, default) for k in keys]


class Loaders:
    def __init__(self, db: Executor, decisions: Decisions, scope: Scope) -> None:
        self.db = db
        self.scope = scope
        self.decisions = decisions
        self.customer_columns = allowed_columns(decisions, CUSTOMER_COLUMNS)
        self.complaint_columns = allowed_columns(decisions, COMPLAINT_COLUMNS)
        self.answer_text = decisions.read("SurveyAnswer.text") is not Level.DENIED
        self.lifetime_spend = decisions.read("CustomerMetrics.lifetimeSpend") is not Level.DENIED

        self.customer = DataLoader[UUID, dict[str, Any] | None](self._customers)
        self.metrics = DataLoader[UUID, dict[str, Any] | None](self._metrics)
        self.partner = DataLoader[UUID, dict[str, Any] | None](self._partners)
        self.complaint = DataLoader[UUID, dict[str, Any] | None](self._complaints)
        self.complaint_events = DataLoader[UUID, list[dict[str, Any]]](self._complaint_events)
        self.survey = DataLoader[UUID, dict[str, Any] | None](self._surveys)
        self.survey_questions = DataLoader[UUID, list[dict[str, Any]]](self._survey_questions)
        self.question = DataLoader[UUID, dict[str, Any] | None](self._questions)
        self.response = DataLoader[UUID, dict[str, Any] | None](self._responses)
        self.answers = DataLoader[UUID, list[dict[str, Any]]](self._answers)
        self.tier_policy_tiers = DataLoader[UUID, list[dict[str, Any]]](self._policy_tiers)
        key_fn = _first_key
        self.customer_complaints = DataLoader[tuple[UUID, int], Page](self._customer_complaints, cache_key_fn=key_fn)
        self.customer_purchases = DataLoader[tuple[UUID, int], Page](self._customer_purchases, cache_key_fn=key_fn)
        self.customer_responses = DataLoader[tuple[UUID, int], Page](self._customer_responses, cache_key_fn=key_fn)
        self.customer_tier_history = DataLoader[tuple[UUID, int], Page](self._tier_history, cache_key_fn=key_fn)
        self._memo: dict[str, asyncio.Future[Any]] = {}

    def narrow_to(self, selected: frozenset[str]) -> None:
        """Leave out the encrypted columns of the fields (``Type.field``) the operation does not select.
        Only for an operation whose every reachable field is known (a compiled plan), before it loads
        anything: every customer and complaint row of the request then has the same, smaller shape."""

        def kept(mapping: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
            return {k: v for k, v in mapping.items() if k not in SEALED_FIELDS or k in selected}

        self.customer_columns = allowed_columns(self.decisions, kept(CUSTOMER_COLUMNS))
        self.complaint_columns = allowed_columns(self.decisions, kept(COMPLAINT_COLUMNS))

    async def _memoized(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """Fetched once per request. Sibling fields resolve concurrently: the first caller fetches, the
        others wait for its result (without this every customer of a page would see the memo empty and
        send its own query: N+1); after that it is a dictionary lookup."""
        future = self._memo.get(key)
        if future is not None:
            return await future  # a finished future answers without waiting
        future = self._memo[key] = asyncio.get_running_loop().create_future()
        try:
            value = await fetch()
        except BaseException as exc:
            del self._memo[key]  # the next caller tries again, as it would have with a lock
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved here: waiters re-raise it, none is left unobserved
            raise
        future.set_result(value)
        return value

    async def active_tiers(self) -> dict[str, dict[str, Any]]:
        tiers: dict[str, dict[str, Any]] = await self._memoized(
            "active_tiers", lambda: tiers_repo.active_tiers(self.db)
        )
        return tiers

    async def teams(self) -> dict[UUID, dict[str, Any]]:
        """Every team by id, once per request (a small table: a page's teams cost one statement)."""

        async def fetch() -> dict[UUID, dict[str, Any]]:
            return {t["id"]: t for t in await teams_repo.all_teams(self.db)}

        teams: dict[UUID, dict[str, Any]] = await self._memoized("teams", fetch)
        return teams

    async def team_members(self) -> dict[UUID, list[str]]:
        """Every team's members, once per request."""
        members: dict[UUID, list[str]] = await self._memoized("team_members", lambda: teams_repo.members_of(self.db))
        return members

    async def taxon(self, kind: str, code: str) -> dict[str, Any] | None:
        async def fetch() -> dict[str, dict[str, Any]]:
            rows = await complaints_repo.taxonomy(self.db, kind, include_inactive=True)
            return {t["code"]: t for t in rows}

        taxa: dict[str, dict[str, Any]] = await self._memoized(f"taxonomy:{kind}", fetch)
        return taxa.get(code)

    async def _customers(self, ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
        rows = await customers_repo.by_ids(self.db, ids, columns=self.customer_columns, scope=self.scope)
        return _by_key(rows, ids)

    async def _metrics(self, ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
        rows = await customers_repo.metrics_by_ids(self.db, ids, with_lifetime_spend=self.lifetime_spend)
        return _by_key(rows, ids)

    async def _partners(self, ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
        return _by_key(await partners_repo.by_ids(self.db, ids), ids)

    async def _complaints(self, ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
        rows = await complaints_repo.by_ids(self.db, ids, columns=self.complaint_columns, scope=self.scope)
        return _by_key(rows, ids)

    async def _complaint_events(self, ids: Sequence[UUID]) -> list[list[dict[str, Any]]]:
        return _by_key(await complaints_repo.events_for(self.db, list(ids)), ids, [])

    async def _surveys(self, ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
        return _by_key(await surveys_repo.by_ids(self.db, ids), ids)

    async def _survey_questions(self, ids: Sequence[UUID]) -> list[list[dict[str, Any]]]:
        return _by_key(await surveys_repo.questions_for(self.db, ids), ids, [])

    async def _questions(self, ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
        return _by_key(await surveys_repo.questions_by_ids(self.db, ids), ids)

    async def _responses(self, ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
        return _by_key(await surveys_repo.responses_by_ids(self.db, ids, self.scope), ids)

    async def _answers(self, ids: Sequence[UUID]) -> list[list[dict[str, Any]]]:
        return _by_key(await surveys_repo.answers_for(self.db, ids, with_text=self.answer_text), ids, [])

    async def _policy_tiers(self, ids: Sequence[UUID]) -> list[list[dict[str, Any]]]:
        return _by_key(await tiers_repo.tiers_of(self.db, ids), ids, [])

    async def _per_parent(self, keys: Sequence[tuple[UUID, int]], fetch: Any) -> list[Page]:
        """Keys are (parent id, first); one statement per distinct ``first`` (normally one)."""
        out: dict[tuple[UUID, int], Page] = {}
        for first in sorted({f for _, f in keys}):
            parents = [p for p, f in keys if f == first]
            pages = await fetch(parents, first)
            out.update({(p, first): pages[p] for p in parents})
        return [out[k] for k in keys]

    async def _customer_complaints(self, keys: Sequence[tuple[UUID, int]]) -> list[Page]:
        return await self._per_parent(
            keys,
            lambda ids, first: complaints_repo.latest_for_customers(
                self.db, ids, columns=self.complaint_columns, first=first
            ),
        )

    async def _customer_purchases(self, keys: Sequence[tuple[UUID, int]]) -> list[Page]:
        return await self._per_parent(
            keys, lambda ids, first: purchases_repo.latest_for_customers(self.db, ids, first=first)
        )

    async def _customer_responses(self, keys: Sequence[tuple[UUID, int]]) -> list[Page]:
        return await self._per_parent(
            keys, lambda ids, first: surveys_repo.latest_responses_for_customers(self.db, ids, first=first)
        )

    async def _tier_history(self, keys: Sequence[tuple[UUID, int]]) -> list[Page]:
        return await self._per_parent(
            keys, lambda ids, first: tiers_repo.history_for_customers(self.db, ids, first=first)
        )


def _first_key(key: tuple[UUID, int]) -> Hashable:
    return key
