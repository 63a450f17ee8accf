"""Use-cases of complaints: the page of complaints, open and transition; SLA policies; the taxonomies of
categories and root causes.

Free of GraphQL (issue 13, item 2): each takes the request's database, the caller (api/usecases/caller.py:
who, for audit rows, and the rows they reach) and a plain command, returns ids or rows, and raises domain
errors; the resolvers in ``api/graphql/complaints/resolvers.py`` map arguments in and results out. The CLI, jobs
and tests call them the same way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from domain import sla as sla_rules
from domain.complaints import Transition
from domain.errors import Conflict, Invalid, NotFound, ValidationFailed
from domain.idempotency import check_replay
from domain.sla import SlaTarget
from infra import sla as sla_repo
from infra.after_change import after_change
from infra.db import RequestDb
from infra.repos import authz as audit_repo
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import surveys as surveys_repo
from infra.repos.base import Page, Scope
from infra.settings import Settings

ComplaintFilter = complaints_repo.ComplaintFilter


# ---------------------------------------------------------------- reads


async def complaint_page(
    db: RequestDb,
    caller: Caller,
    *,
    columns: Sequence[str],
    f: ComplaintFilter,
    sort: str,
    first: int,
    after: str | None,
) -> Page:
    """One page of the complaints the caller's scope reaches, with ``columns`` (the fields it may read)."""
    return await complaints_repo.page(db, columns=columns, scope=caller.scope, f=f, sort=sort, first=first, after=after)


async def count_complaints(db: RequestDb, caller: Caller, f: ComplaintFilter) -> int:
    return await complaints_repo.count(db, scope=caller.scope, f=f)


def sort_column(sort: str) -> str:
    """The row key a page sorted by ``sort`` is ordered on (its cursors carry it)."""
    key = complaints_repo.SORTS[sort].column.key
    if key is None:  # every sort of complaints orders on a column
        raise ValueError(f"sort {sort} orders on an unnamed expression")
    return key


# ---------------------------------------------------------------- open


@dataclass(frozen=True)
class OpenComplaint:
    customer_id: UUID
    subject: str
    description: str
    category: str
    severity: str = "medium"
    channel: str = "web"
    external_id: str | None = None
    follow_up_of: UUID | None = None


def check_complaint_text(subject: str, description: str, external_id: str | None) -> None:
    """Raise ``Invalid`` listing every problem of the free text of a complaint to open."""
    errors = []
    if not subject.strip() or len(subject) > 300:
        errors.append(ValidationFailed("a subject has 1 to 300 characters", field="subject"))
    if not description.strip() or len(description) > 10_000:
        errors.append(ValidationFailed("a description has 1 to 10000 characters", field="description"))
    if external_id is not None and not 0 < len(external_id) <= 100:
        errors.append(ValidationFailed("externalId has 1 to 100 characters", field="externalId"))
    if errors:
        raise Invalid(errors)


async def open_complaint(db: RequestDb, caller: Caller, cmd: OpenComplaint) -> UUID:
    """Open a complaint of a customer the caller's scope reaches (idempotent on the partner and ``external_id``:
    the same content again returns the stored complaint, other content is a CONFLICT); the customer's
    facts change, so the after-change step runs in the same transaction. Returns the complaint's id."""
    check_complaint_text(cmd.subject, cmd.description, cmd.external_id)
    values = {
        "customer_id": cmd.customer_id,
        "subject": " ".join(cmd.subject.split()),
        "description": cmd.description.strip(),
        "category_code": cmd.category,
        "severity": cmd.severity,
        "channel": cmd.channel,
        "follow_up_of_id": cmd.follow_up_of,
    }
    async with db.unit_of_work() as uow:
        complaint_id = None
        if cmd.external_id:
            complaint_id = await _replayed_complaint(uow, caller.scope, cmd.external_id, values)
        if complaint_id is None:
            if not await customers_repo.exists(uow, cmd.customer_id, caller.scope):
                raise NotFound("no such customer", field="customerId")
            complaint_id = await complaints_repo.open_complaint(
                uow,
                {**values, "partner_id": caller.scope.partner_id, "external_id": cmd.external_id},
                actor=caller.actor,
            )
            if complaint_id is None:  # another request opened it meanwhile: the same rules as a replay
                complaint_id = await _replayed_complaint(uow, caller.scope, cmd.external_id or "", values)
                if complaint_id is None:  # (the insert waited for that request's commit: not expected)
                    raise Conflict("externalId is being used by another request; retry", field="externalId")
            else:
                await after_change(uow.conn, [cmd.customer_id], actor=caller.actor)
                uow.commit()
    return complaint_id


# openComplaint's input names of the columns a replay is compared on (complaints_repo.CREATED_WITH)
_COMPLAINT_INPUT_NAMES = {
    "customer_id": "customerId",
    "subject": "subject",
    "description": "description",
    "category_code": "category",
    "severity": "severity",
    "channel": "channel",
    "follow_up_of_id": "followUpOf",
}


async def _replayed_complaint(uow: Any, scope: Scope, external_id: str, values: dict[str, Any]) -> UUID | None:
    """The complaint already opened with this external id (None: none is), if ``values`` are what it
    was opened with; a CONFLICT if not (domain/idempotency.py)."""
    stored = await complaints_repo.by_external_id(uow, external_id, scope)
    if stored is None:
        return None
    check_replay(
        "externalId",
        {_COMPLAINT_INPUT_NAMES[k]: stored[k] for k in complaints_repo.CREATED_WITH},
        {_COMPLAINT_INPUT_NAMES[k]: values[k] for k in complaints_repo.CREATED_WITH},
    )
    complaint_id: UUID = stored["id"]
    return complaint_id


# ---------------------------------------------------------------- transition


@dataclass(frozen=True)
class TransitionComplaint:
    complaint_id: UUID
    expected_version: int
    transition: Transition


async def transition_complaint(db: RequestDb, caller: Caller, cmd: TransitionComplaint, *, settings: Settings) -> UUID:
    """Move a complaint the caller's scope reaches along the state machine (optimistic on ``expected_version``);
    on resolution, invite to the post-resolution survey if one is active; when the customer's facts change
    (or the move reveals a breach) the after-change step runs in the same transaction. Returns its id."""
    async with db.unit_of_work() as uow:
        done = await complaints_repo.transition(
            uow, cmd.complaint_id, cmd.expected_version, cmd.transition, actor=caller.actor, scope=caller.scope
        )
        if done.outcome.to_status == "resolved":  # the post-resolution survey, if one is active
            await surveys_repo.invite_after_resolution(
                uow,
                complaint_id=cmd.complaint_id,
                throttle_days=settings.survey_throttle_days,
                periodic_days=settings.survey_periodic_days,
            )
        if done.outcome.changes_customer_facts or done.breached:
            await after_change(uow.conn, [done.customer_id], actor=caller.actor)
        uow.commit()
    return cmd.complaint_id


# ---------------------------------------------------------------- SLA policies


@dataclass(frozen=True)
class SlaPolicy:
    row: dict[str, Any]  # the policy: id, version, name, status, who created and activated it, when
    targets: list[SlaTarget]


@dataclass(frozen=True)
class CreateSlaPolicy:
    name: str
    targets: Sequence[SlaTarget]  # by tier code (or '*') and severity


async def sla_policies(db: RequestDb, caller: Caller, statuses: Sequence[str] | None = None) -> list[SlaPolicy]:
    """The SLA policies (of these statuses, if given), newest version first, with their targets."""
    rows = await sla_repo.policies(db, statuses)
    targets = await sla_repo.targets_of(db, [r["id"] for r in rows]) if rows else {}
    return [SlaPolicy(r, targets[r["id"]]) for r in rows]


async def create_sla_policy(db: RequestDb, caller: Caller, cmd: CreateSlaPolicy) -> UUID:
    """A draft SLA policy, its targets validated against the active tiers (``Invalid`` lists every problem
    and nothing is written); audited. Returns its id."""
    name = " ".join(cmd.name.split())
    targets = [dataclasses.replace(t, tier=t.tier.strip()) for t in cmd.targets]
    async with db.unit_of_work() as uow:
        errors: list[ValidationFailed] = []
        if not 0 < len(name) <= 100:
            errors.append(ValidationFailed("a name has 1 to 100 characters", field="name"))
        try:
            sla_rules.validate_targets(targets, await sla_repo.active_tier_codes(uow))
        except Invalid as exc:
            errors += exc.errors
        if errors:
            raise Invalid(errors)
        policy_id = await sla_repo.create_policy(uow, name=name, targets=targets, actor=caller.actor)
        await audit_repo.write_audit(
            uow,
            actor=caller.actor,
            action="sla_policy.create",
            request_id=caller.request_id,
            target_type="sla_policy",
            target_ids=[str(policy_id)],
            after={"name": name, "targets": len(targets)},
        )
        uow.commit()
    return policy_id


async def activate_sla_policy(db: RequestDb, caller: Caller, policy_id: UUID) -> UUID:
    """Activate a draft SLA policy (the active one retires; open complaints keep their deadlines), its
    targets covering the tiers of now (checked under the activation lock); audited. Returns its id."""
    async with db.unit_of_work() as uow:
        version, retired = await sla_repo.activate_policy(uow, policy_id, actor=caller.actor)
        targets = (await sla_repo.targets_of(uow, [policy_id]))[policy_id]
        sla_rules.validate_targets(targets, await sla_repo.active_tier_codes(uow))
        await audit_repo.write_audit(
            uow,
            actor=caller.actor,
            action="sla_policy.activate",
            request_id=caller.request_id,
            target_type="sla_policy",
            target_ids=[str(policy_id)],
            after={"version": version, "retiredVersion": retired},
        )
        uow.commit()
    return policy_id


# ---------------------------------------------------------------- taxonomies

CATEGORIES, ROOT_CAUSES = "categories", "root_causes"  # the two taxonomies of complaints
TAXON_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


@dataclass(frozen=True)
class AddTaxon:
    taxonomy: str  # CATEGORIES or ROOT_CAUSES
    code: str
    label: str


async def taxonomy(db: RequestDb, caller: Caller, name: str) -> list[dict[str, Any]]:
    """The active entries of a taxonomy (code, label, active)."""
    return await complaints_repo.taxonomy(db, name)


async def add_taxon(db: RequestDb, caller: Caller, cmd: AddTaxon) -> dict[str, Any]:
    """Add an entry to a taxonomy, or bring back a deactivated one under a new label; audited. The entry."""
    code, label = cmd.code.strip().lower(), " ".join(cmd.label.split())
    errors = []
    if not TAXON_CODE.match(code):
        errors.append(ValidationFailed("a code is 2 to 40 of a-z, 0-9 and _, starting with a letter", field="code"))
    if not 0 < len(label) <= 100:
        errors.append(ValidationFailed("a label has 1 to 100 characters", field="label"))
    if errors:
        raise Invalid(errors)
    async with db.unit_of_work() as uow:
        taxon, reactivated = await complaints_repo.add_taxon(uow, cmd.taxonomy, code, label)
        await audit_repo.write_audit(
            uow,
            actor=caller.actor,
            action=f"taxonomy.{'reactivate' if reactivated else 'add'}",
            request_id=caller.request_id,
            target_type=cmd.taxonomy,
            target_ids=[code],
            after={"label": label},
        )
        uow.commit()
    return taxon


async def deactivate_taxon(db: RequestDb, caller: Caller, name: str, code: str) -> dict[str, Any]:
    """Retire an entry of a taxonomy: no new complaint or resolution can use it, those that do keep it;
    audited. The entry."""
    async with db.unit_of_work() as uow:
        taxon = await complaints_repo.deactivate_taxon(uow, name, code.strip().lower())
        await audit_repo.write_audit(
            uow,
            actor=caller.actor,
            action="taxonomy.deactivate",
            request_id=caller.request_id,
            target_type=name,
            target_ids=[taxon["code"]],
        )
        uow.commit()
    return taxon
