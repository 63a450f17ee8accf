"""Query and Mutation: thin resolvers that read arguments, call one repository or use-case, and map
the result. Access checks are not here: api/graphql/core/guard.py installs them on the schema from the catalogue,
for fields and for the arguments that filter or sort by them (authz/catalogue.py, ARGUMENTS)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.graphql.access.resolvers import AdminMutation, AdminQuery
from api.graphql.benefits.resolvers import BenefitCatalogueMutation, BenefitMutation, BenefitQuery
from api.graphql.complaints.resolvers import (
    ComplaintMutation,
    ComplaintQuery,
    SlaQuery,
    SlaTaxonomyMutation,
    TaxonomyQuery,
)
from api.graphql.complaints.types import ComplaintType
from api.graphql.core.context import Context, context_of
from api.graphql.core.fast_inputs import install_fast_inputs
from api.graphql.core.guard import install_guards
from api.graphql.core.ids import from_global_id
from api.graphql.core.input_limits import install_length_checks
from api.graphql.core.relay import Node
from api.graphql.core.resolving import query
from api.graphql.customers.resolvers import CustomerMutation, CustomerQuery
from api.graphql.customers.types import CustomerType, PurchaseType, load_customer
from api.graphql.events.resolvers import EventsMutation, EventsQuery, EventsSubscription
from api.graphql.identity.resolvers import IdentityMutation
from api.graphql.imports.resolvers import ImportMutation
from api.graphql.privacy.resolvers import PrivacyMutation, PrivacyQuery
from api.graphql.queues.resolvers import QueueMutation, QueueQuery
from api.graphql.queues.teams import TeamMutation, TeamQuery
from api.graphql.reports.resolvers import ReportQuery
from api.graphql.surveys.resolvers import InvitationMutation, SurveyMutation, SurveyQuery
from api.graphql.surveys.types import SurveyResponseType, SurveyType
from api.graphql.tiers.resolvers import TierMutation, TierPolicyListQuery, TierQuery
from api.graphql.tiers.types import TierPolicyType
from api.usecases import tiers as tier_usecases
from authz.catalogue import GUARDED
from authz.policy import Level
from domain.errors import NotFound, ValidationFailed

# ---------------------------------------------------------------- viewer


@strawberry.enum
class Access(Enum):
    FULL = "FULL"
    CONSENTED = "CONSENTED"
    MASKED = "MASKED"
    DENIED = "DENIED"


@strawberry.type
class FieldAccess:
    field: str
    access: Access


@strawberry.type
class Viewer:
    subject: str
    kind: str
    roles: list[str]
    partner_id: strawberry.ID | None
    policy_version: int
    viewing_as: str | None = strawberry.field(
        default=None,
        description="The role this request views the API as (X-Tierwise-View-As: staff who may read the access "
        "matrix, for a role that reads nothing they may not): roles is then that role alone, and nothing can be "
        "changed; null otherwise",
    )

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="FULL, CONSENTED, MASKED or DENIED for every guarded field, so a UI can hide columns up front"
    )
    def field_access(
        self,
        info: Info[Context, None],
        type: Annotated[str | None, strawberry.argument(description="only this type, e.g. Customer")] = None,
    ) -> list[FieldAccess]:
        d = context_of(info).decisions
        return [
            FieldAccess(field=k, access=Access(d.read(k).value))
            for k in sorted(GUARDED)
            if GUARDED[k].type_name not in ("Query", "Mutation", "Subscription")
            and (type is None or GUARDED[k].type_name == type)
        ]


# ---------------------------------------------------------------- root types


@strawberry.type
class ViewerQuery:
    """Who is asking, and any object by its global id (every slice's node types)."""

    @strawberry.field
    def viewer(self, info: Info[Context, None]) -> Viewer:
        ctx = context_of(info)
        p = ctx.principal
        return Viewer(
            subject=p.subject,
            kind=p.kind.value,
            roles=list(p.roles),
            partner_id=strawberry.ID(str(p.partner_id)) if p.partner_id else None,
            policy_version=ctx.decisions.policy_version,
            viewing_as=p.view_as,
        )

    @strawberry.field(description="Any object by its global id; NOT_FOUND when unknown or not visible")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        return await query(lambda: load_node(info, id))


# The root types: every slice's Query and Mutation mixins, in the order their fields are listed.
@strawberry.type
class Query(
    AdminQuery,
    TierQuery,
    ReportQuery,
    SlaQuery,
    PrivacyQuery,
    ViewerQuery,
    CustomerQuery,
    ComplaintQuery,
    SurveyQuery,
    TierPolicyListQuery,
    TaxonomyQuery,
    EventsQuery,
    QueueQuery,
    TeamQuery,
    BenefitQuery,
):
    pass


@strawberry.type
class Mutation(
    AdminMutation,
    TierMutation,
    SlaTaxonomyMutation,
    InvitationMutation,
    PrivacyMutation,
    CustomerMutation,
    ComplaintMutation,
    SurveyMutation,
    IdentityMutation,
    EventsMutation,
    QueueMutation,
    TeamMutation,
    ImportMutation,
    BenefitMutation,
    BenefitCatalogueMutation,
):
    pass


@strawberry.type
class Subscription(EventsSubscription):
    pass


def build_schema(extensions: list[Any] | None = None) -> strawberry.Schema:
    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[CustomerType, ComplaintType, SurveyType, PurchaseType, SurveyResponseType, TierPolicyType],
        extensions=extensions or [],
    )
    install_fast_inputs(schema)
    install_length_checks(schema._schema)  # before the guards: they then run first
    unclassified = install_guards(schema._schema)
    if unclassified:
        raise RuntimeError(f"fields or arguments missing from the field catalogue (authz/catalogue.py): {unclassified}")
    return schema


__all__ = ["GraphQLError", "ValidationFailed", "build_schema"]


# ``node(id)`` reaches an object only where the matching root query would: the same operation grant.
NODE_OPERATIONS = {
    "Customer": "Query.customer",
    "Complaint": "Query.complaint",
    "Survey": "Query.survey",
    "SurveyResponse": "Query.survey",
    "TierPolicy": "Query.tierPolicies",
}


async def load_node(info: Info[Context, None], global_id: str) -> Node | None:
    ctx = context_of(info)
    type_name, raw = from_global_id(global_id)
    operation = NODE_OPERATIONS.get(type_name)
    if operation is None or ctx.decisions.read(operation) is Level.DENIED:
        raise NotFound("no such object", field="id")
    node: Node | None = None
    if type_name == "Customer":
        node = await load_customer(info, raw)
    elif type_name == "Complaint":
        row = await ctx.loaders.complaint.load(raw)
        node = ComplaintType.from_row(row) if row else None
    elif type_name == "Survey":
        row = await ctx.loaders.survey.load(raw)
        node = SurveyType.from_row(row) if row else None
    elif type_name == "SurveyResponse":
        row = await ctx.loaders.response.load(raw)
        node = SurveyResponseType.from_row(row) if row else None
    elif type_name == "TierPolicy":
        rows = [r for r in await tier_usecases.policies(ctx.db, ctx.caller) if r["id"] == raw]
        node = TierPolicyType.from_row(rows[0]) if rows else None
    if node is None:
        raise NotFound("no such object", field="id")
    return node
