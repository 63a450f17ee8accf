"""GraphQL types of complaints: the complaint, its events, taxonomy entries and the team it is assigned to."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import ComplaintEventKind, ComplaintStatus, ContactChannel, PolicyStatus, Severity
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import ConnectionBase, Edge, Node, UserError
from api.graphql.customers.types import CustomerType, load_customer
from domain import sla as sla_rules


@strawberry.type(name="Taxon", description="An entry of a managed taxonomy (categories, root causes)")
class TaxonType:
    code: str
    label: str
    active: bool = strawberry.field(default=True, description="Retired entries stay on the complaints that use them")


@strawberry.type(
    name="Team", description="A team of staff: complaints can be assigned to it (complaintQueue team, myTeams)"
)
class TeamType:
    db_id: strawberry.Private[UUID]
    member_ids: strawberry.Private[list[str] | None]
    id: strawberry.ID
    name: str | None  # nullable, like every guarded field: a field refused nulls itself, not the team
    created_at: dt.datetime | None
    archived_at: dt.datetime | None = strawberry.field(
        description="When the team was retired (null: it takes complaints); its complaints keep it until reassigned"
    )

    @classmethod
    def from_row(cls, row: dict[str, Any], members: list[str] | None = None) -> TeamType:
        return cls(
            db_id=row["id"],
            member_ids=members,
            id=strawberry.ID(to_global_id("Team", row["id"])),
            name=row["name"],
            created_at=row["created_at"],
            archived_at=row.get("archived_at"),
        )

    @strawberry.field(description="The user ids (a token's sub) of its members, sorted")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def members(self, info: Info[Context, None]) -> list[str] | None:
        if self.member_ids is not None:
            return self.member_ids
        return (await context_of(info).loaders.team_members()).get(self.db_id, [])


@strawberry.type
class TeamPayload:
    team: TeamType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ArchiveTeamPayload:
    team: TeamType | None = None
    active_complaints: int | None = strawberry.field(
        default=None, description="Complaints still in its queue: they keep the team until someone reassigns them"
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(name="ComplaintEvent")
class ComplaintEventType:
    customer_ref: strawberry.Private[UUID]
    id: strawberry.ID
    from_status: ComplaintStatus | None
    to_status: ComplaintStatus | None
    actor: str | None
    note: str | None
    at: dt.datetime | None
    kind: ComplaintEventKind | None = None


@strawberry.type(name="Complaint")
class ComplaintType(Node):
    db_id: strawberry.Private[UUID]
    customer_ref: strawberry.Private[UUID]
    row: strawberry.Private[dict[str, Any]]
    version: int
    external_id: str | None
    subject: str | None
    description: str | None
    severity: Severity | None
    channel: ContactChannel | None
    status: ComplaintStatus | None
    assignee: str | None
    resolution_code: str | None
    tier_at_open: str | None
    first_response_due_at: dt.datetime | None
    resolution_due_at: dt.datetime | None = strawberry.field(
        description="Moves later by the time spent waiting on the customer (while waiting: as if answered now)"
    )
    first_responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    reopen_count: int | None
    opened_at: dt.datetime | None
    updated_at: dt.datetime
    sla_policy_version: int | None = strawberry.field(description="The SLA policy the deadlines come from")
    first_response_time_left: int | None = strawberry.field(
        description="Seconds until the first-response deadline, negative when late; null once answered"
    )
    resolution_time_left: int | None = strawberry.field(
        description="Seconds until the resolution deadline, negative when late, frozen while waiting on the "
        "customer; null once resolved"
    )
    first_response_breached: bool | None
    resolution_breached: bool | None
    breached: bool | None = strawberry.field(description="Either SLA clock breached")
    sla_paused: bool | None = strawberry.field(description="The resolution clock is stopped: waiting on the customer")
    paused_seconds: int | None = strawberry.field(description="Time spent waiting on the customer so far")
    escalated_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ComplaintType:
        clock = sla_rules.Clock(**{f: row[f] for f in sla_rules.CLOCK_FIELDS})
        now = row["sla_now"]  # the instant the breach verdicts (infra/repos/clocks.clock_columns) were decided for
        return cls(
            id=strawberry.ID(to_global_id("Complaint", row["id"])),
            db_id=row["id"],
            customer_ref=row["customer_id"],
            row=row,
            version=row["version"],
            external_id=row["external_id"],
            subject=row["subject"],
            description=row.get("description"),
            severity=Severity(row["severity"]),
            channel=ContactChannel(row["channel"]),
            status=ComplaintStatus(row["status"]),
            assignee=row["assignee"],
            resolution_code=row["resolution_code"],
            tier_at_open=row["tier_at_open"],
            first_response_due_at=row["first_response_due_at"],
            resolution_due_at=sla_rules.effective_resolution_due(clock, now),
            first_responded_at=row["first_responded_at"],
            resolved_at=row["resolved_at"],
            closed_at=row["closed_at"],
            reopen_count=row["reopen_count"],
            opened_at=row["opened_at"],
            updated_at=row["updated_at"],
            sla_policy_version=row["sla_policy_version"],
            first_response_time_left=sla_rules.first_response_time_left(clock, now),
            resolution_time_left=sla_rules.resolution_time_left(clock, now),
            first_response_breached=row["sla_first_response_breached"],
            resolution_breached=row["sla_resolution_breached"],
            breached=row["sla_first_response_breached"] or row["sla_resolution_breached"],
            sla_paused=sla_rules.paused(clock),
            paused_seconds=sla_rules.paused_total_seconds(clock, now),
            escalated_at=row["escalated_at"],
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)

    @strawberry.field(description="The team the complaint is assigned to (null: none); independent of its assignee")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def team(self, info: Info[Context, None]) -> TeamType | None:
        team_id = self.row.get("team_id")
        team = (await context_of(info).loaders.teams()).get(team_id) if team_id is not None else None
        return TeamType.from_row(team) if team else None

    @strawberry.field
    async def category(self, info: Info[Context, None]) -> TaxonType | None:
        t = await context_of(info).loaders.taxon("categories", self.row["category_code"])
        return TaxonType(code=t["code"], label=t["label"], active=t.get("active", True)) if t else None

    @strawberry.field
    async def root_cause(self, info: Info[Context, None]) -> TaxonType | None:
        code = self.row["root_cause_code"]
        t = await context_of(info).loaders.taxon("root_causes", code) if code else None
        return TaxonType(code=t["code"], label=t["label"], active=t.get("active", True)) if t else None

    @strawberry.field
    async def follow_up_of(self, info: Info[Context, None]) -> ComplaintType | None:
        prior = self.row["follow_up_of_id"]
        row = await context_of(info).loaders.complaint.load(prior) if prior else None
        return ComplaintType.from_row(row) if row else None

    @strawberry.field
    async def events(self, info: Info[Context, None]) -> list[ComplaintEventType] | None:
        rows = await context_of(info).loaders.complaint_events.load(self.db_id)
        return [
            ComplaintEventType(
                customer_ref=self.customer_ref,
                id=strawberry.ID(str(r["id"])),
                from_status=ComplaintStatus(r["from_status"]) if r["from_status"] else None,
                to_status=ComplaintStatus(r["to_status"]),
                actor=r["actor"],
                note=r["note"],
                at=r["at"],
                kind=ComplaintEventKind(r.get("kind") or "transition"),
            )
            for r in rows
        ]


@strawberry.type(name="ComplaintConnection")
class ComplaintConnection(ConnectionBase):
    edges: list[Edge[ComplaintType]]


@strawberry.type
class ComplaintPayload:
    complaint: ComplaintType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# ---------------------------------------------------------------- SLA policies and the taxonomy


@strawberry.type(name="SlaTarget")
class SlaTargetType:
    tier: str = strawberry.field(description="A tier code, or '*' for tiers without their own target")
    severity: Severity
    first_response_minutes: int
    resolution_minutes: int

    @classmethod
    def from_target(cls, t: sla_rules.SlaTarget) -> SlaTargetType:
        return cls(
            tier=t.tier,
            severity=Severity(t.severity),
            first_response_minutes=t.first_response_minutes,
            resolution_minutes=t.resolution_minutes,
        )


@strawberry.type(name="SlaPolicy", description="Versioned SLA targets by tier and severity (draft, active, retired)")
class SlaPolicyType:
    id: strawberry.ID
    version: int
    name: str
    status: PolicyStatus
    created_at: dt.datetime
    created_by: str | None
    activated_at: dt.datetime | None
    activated_by: str | None
    retired_at: dt.datetime | None
    targets: list[SlaTargetType]

    @classmethod
    def from_row(cls, row: dict[str, Any], targets: list[sla_rules.SlaTarget]) -> SlaPolicyType:
        return cls(
            id=strawberry.ID(to_global_id("SlaPolicy", row["id"])),
            version=row["version"],
            name=row["name"],
            status=PolicyStatus(row["status"]),
            created_at=row["created_at"],
            created_by=row["created_by"],
            activated_at=row["activated_at"],
            activated_by=row["activated_by"],
            retired_at=row["retired_at"],
            targets=[SlaTargetType.from_target(t) for t in targets],
        )


@strawberry.type
class SlaPolicyPayload:
    sla_policy: SlaPolicyType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TaxonPayload:
    taxon: TaxonType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
