"""The field catalogue: every field of every GraphQL type, classified.

- ``public``: readable by any authenticated caller that can reach the object
  (ids, versions, timestamps, structural fields);
- ``internal``: readable only with a grant (Casbin ``read``);
- ``sensitive``: personal data; a grant gives it in full (``read``) or masked
  (``read_masked``), and a response carrying it unmasked is audited.

Root fields (``Query.x``, ``Mutation.x``) are operations: reading a query needs
``read`` on it, a mutation needs ``write``. A test walks the schema and fails on
any field missing here, so nothing new slips past unclassified.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum

from infra.repos import clocks


class Sensitivity(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    SENSITIVE = "sensitive"


@dataclass(frozen=True)
class FieldSpec:
    key: str
    sensitivity: Sensitivity
    mask: str | None = None  # name of a mask in authz.masking.MASKS, for sensitive fields
    consent: str | None = None  # channel whose consent ``read_if_consented`` asks for (email, sms, phone)

    @property
    def type_name(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def field_name(self) -> str:
        return self.key.split(".", 1)[1]


# Types whose fields are structure, not data: every field is public.
STRUCTURAL_TYPE_PATTERNS = ("*Connection", "*Edge", "PageInfo", "*Payload", "UserError", "Viewer", "FieldAccess")

P, I, S = Sensitivity.PUBLIC, Sensitivity.INTERNAL, Sensitivity.SENSITIVE  # noqa: E741

_FIELDS: dict[str, dict[str, Sensitivity | tuple[Sensitivity, str] | tuple[Sensitivity, str, str]]] = {
    "Query": {
        "viewer": P,
        "node": P,
        "customer": I,
        "customers": I,
        "complaint": I,
        "complaints": I,
        "survey": I,
        "surveys": I,
        "tierPolicies": I,
        "activeTierPolicy": I,
        "complaintCategories": I,
        "rootCauses": I,
        "explainAccess": I,
        "accessMatrix": I,
        "auditLog": I,
        "roles": I,
        "policies": I,
        "apiTokens": I,
    },
    "Mutation": {
        "createCustomer": I,
        "updateCustomer": I,
        "deleteCustomer": I,
        "recordPurchases": I,
        "openComplaint": I,
        "transitionComplaint": I,
        "createSurvey": I,
        "submitSurveyResponse": I,
        "createRole": I,
        "deleteRole": I,
        "grantAccess": I,
        "revokeAccess": I,
        "assignRole": I,
        "unassignRole": I,
        "createPartnerToken": I,
        "revokePartnerToken": I,
        "setPartnerTokenRateLimit": I,
        "setPartnerTokenArbitraryDocuments": I,
    },
    "Customer": {
        "id": P,
        "version": P,
        "createdAt": P,
        "updatedAt": P,
        "externalRef": I,
        "name": I,
        "locale": I,
        "lifecycleStage": I,
        "email": (S, "email", "email"),
        "phone": (S, "phone", "phone"),
        "nationalId": (S, "id"),
        "birthDate": (S, "year"),
        "address": (S, "address"),
        "tier": I,
        "tierSince": I,
        "metrics": I,
        "churnRisk": I,
        "consent": I,
        "partner": I,
        "complaints": I,
        "surveyResponses": I,
        "tierHistory": I,
        "purchases": I,
    },
    "Address": {"line1": P, "line2": P, "postalCode": P, "city": P, "country": P},
    "Consent": {"email": P, "sms": P, "phone": P},
    "CustomerMetrics": {
        "lifetimeSpend": (S, "magnitude"),
        "orderCount": I,
        "spend12m": I,
        "orders12m": I,
        "firstPurchaseAt": I,
        "lastPurchaseAt": I,
        "tenureDays": I,
        "openComplaints": I,
        "latestNps": I,
        "latestCsat": I,
        "computedAt": I,
    },
    "ChurnRisk": {"level": I, "score": I, "signals": I, "computedAt": I},
    "Tier": {"code": P, "name": P, "rank": P, "benefits": P},
    "TierPolicy": {
        "id": P,
        "version": P,
        "name": I,
        "status": I,
        "graceDays": I,
        "minStayDays": I,
        "tiers": I,
        "createdBy": I,
        "createdAt": P,
        "activatedBy": I,
        "activatedAt": I,
    },
    "TierRule": {"code": P, "entryRule": I, "retainRule": I},
    "TierChange": {
        "id": P,
        "fromTier": I,
        "toTier": I,
        "policyVersion": I,
        "changeType": I,
        "reason": I,
        "metrics": I,
        "actor": I,
        "changedAt": I,
    },
    "Partner": {"id": P, "name": I},
    "Purchase": {
        "id": P,
        "externalId": I,
        "amount": I,
        "currency": I,
        "channel": I,
        "purchasedAt": I,
        "customer": I,
        "createdAt": P,
    },
    "Complaint": {
        "id": P,
        "version": P,
        "externalId": I,
        "customer": I,
        "subject": I,
        "description": (S, "text"),
        "category": I,
        "rootCause": I,
        "severity": I,
        "channel": I,
        "status": I,
        "assignee": I,
        "resolutionCode": I,
        "tierAtOpen": I,
        "firstResponseDueAt": I,
        "resolutionDueAt": I,
        "firstRespondedAt": I,
        "resolvedAt": I,
        "closedAt": I,
        "reopenCount": I,
        "followUpOf": I,
        "events": I,
        "openedAt": I,
        "updatedAt": P,
    },
    "Taxon": {"code": P, "label": P},
    "ComplaintEvent": {"id": P, "fromStatus": I, "toStatus": I, "actor": I, "note": (S, "text"), "at": I},
    "Survey": {
        "id": P,
        "version": P,
        "title": I,
        "description": I,
        "status": I,
        "trigger": I,
        "channels": I,
        "perComplaint": I,
        "questions": I,
        "createdAt": P,
    },
    "SurveyQuestion": {
        "id": P,
        "position": I,
        "kind": I,
        "dimension": I,
        "prompt": I,
        "options": I,
        "required": I,
    },
    "SurveyResponse": {
        "id": P,
        "externalId": I,
        "survey": I,
        "customer": I,
        "complaint": I,
        "channel": I,
        "tierAtResponse": I,
        "submittedAt": I,
        "answers": I,
    },
    "SurveyAnswer": {"question": I, "score": I, "choices": I, "text": (S, "text")},
    # Administration: reachable only through admin operations, and guarded field by field too.
    "AuditEntry": {
        "id": P,
        "at": I,
        "actor": I,
        "action": I,
        "requestId": I,
        "targetType": I,
        "targetIds": I,
        "fields": I,
        "before": I,
        "after": I,
    },
    "Role": {"name": I, "description": I, "inherits": I, "grants": I},
    "PolicyRule": {"subject": I, "object": I, "action": I, "effect": I},
    "ApiToken": {
        "id": P,
        "name": I,
        "partnerId": I,
        "role": I,
        "scopes": I,
        "createdBy": I,
        "createdAt": I,
        "expiresAt": I,
        "revokedAt": I,
        "lastUsedAt": I,
        "rateLimitPerMinute": I,
        "allowArbitraryDocuments": I,
    },
    "AccessMatrix": {"roles": I, "rows": I, "policyVersion": I},
    "AccessMatrixRow": {
        "field": I,
        "typeName": I,
        "fieldName": I,
        "sensitivity": I,
        "decisions": I,
        "consentChannel": I,
    },
    "AccessExplanation": {
        "subject": I,
        "roles": I,
        "field": I,
        "action": I,
        "allowed": I,
        "decision": I,
        "rules": I,
        "reason": I,
        "policyVersion": I,
    },
}


# The tier engine (api/graphql/tiers/). Explanations, simulations and reports are reachable only through guarded
# fields and operations; inside them, metric values follow the caller's own metric grants (left out when
# not readable in full) and revenue figures need a grant of their own.
_FIELDS["Query"].update(
    {"tierPolicy": I, "simulateTierPolicy": I, "tierDistribution": I, "tierMigrations": I, "tierRuns": I}
)
_FIELDS["Mutation"].update(
    {
        "createTierPolicyDraft": I,
        "updateTierPolicyDraft": I,
        "discardTierPolicyDraft": I,
        "activateTierPolicy": I,
        "overrideCustomerTier": I,
        "clearCustomerTierOverride": I,
    }
)
_FIELDS["Customer"]["tierExplanation"] = I
_FIELDS["TierPolicy"].update(
    {
        "spendWindowDays": I,
        "description": I,
        "revision": P,
        "updatedAt": P,
        "updatedBy": I,
        "retiredAt": I,
        "retiredBy": I,
    }
)
_FIELDS["TierRule"].update({"name": P, "rank": P, "benefits": P})
_FIELDS.update(
    {
        "TierExplanation": dict.fromkeys(
            (
                "tier",
                "tierName",
                "basis",
                "since",
                "policyVersion",
                "text",
                "heldBy",
                "entryRule",
                "retainRule",
                "graceSince",
                "downgradeNotBefore",
                "minStayUntil",
                "nextTier",
                "nextTierName",
                "toNextTier",
                "pending",
            ),
            P,
        ),
        "TierRuleCheck": dict.fromkeys(
            ("kind", "holds", "text", "conditions", "score", "minScore", "pointsMissing", "terms"), P
        ),
        "TierConditionCheck": dict.fromkeys(("metric", "description", "op", "threshold", "actual", "holds", "gap"), P),
        "TierScoreTerm": dict.fromkeys(("metric", "weight", "actual", "neededAlone"), P),
        "TierShare": {
            "tier": P,
            "name": P,
            "rank": P,
            "customers": P,
            "customerShare": P,
            "revenue": I,
            "revenueShare": I,
        },
        "TierMigrationCell": {"fromTier": P, "toTier": P, "customers": P, "revenue": I},
        "TierChangeCount": {"changeType": P, "count": P},
        "TierDistribution": {"policyVersion": P, "customers": P, "revenue": I, "tiers": P},
        "TierMigrationReport": dict.fromkeys(("since", "until", "customers", "moved", "cells", "changes"), P),
        "TierSimulation": dict.fromkeys(
            ("policy", "customers", "changing", "moves", "eventualMoves", "tiers", "eventualTiers"), P
        ),
        "TierRun": dict.fromkeys(
            (
                "id",
                "policyVersion",
                "status",
                "actor",
                "batchSize",
                "customersTotal",
                "customersDone",
                "batches",
                "changed",
                "startedAt",
                "updatedAt",
                "finishedAt",
            ),
            P,
        ),
        "TierRetier": dict.fromkeys(("mode", "customers", "changes", "graceStartedOrEnded", "jobId", "message"), P),
    }
)


# Complaints with SLA clocks, surveys, churn and fairness reports (api/graphql/reports/). Reports are reachable
# only through ``Query.reports`` and their own ``Reports.<name>`` grant; their rows are aggregates (no free
# text, no customer), so their fields are public behind that gate. A survey invitation names a customer:
# its fields need a grant, and its customer and complaint meet their own guards.
_FIELDS["Query"].update({"reports": I, "slaPolicies": I, "activeSlaPolicy": I})
_FIELDS["Mutation"].update(
    {
        "createSlaPolicy": I,
        "activateSlaPolicy": I,
        "addComplaintCategory": I,
        "deactivateComplaintCategory": I,
        "addRootCause": I,
        "deactivateRootCause": I,
        "inviteToSurvey": I,
    }
)
_FIELDS["Complaint"].update(
    {
        "slaPolicyVersion": I,
        "firstResponseTimeLeft": I,
        "resolutionTimeLeft": I,
        "firstResponseBreached": I,
        "resolutionBreached": I,
        "breached": I,
        "slaPaused": I,
        "pausedSeconds": I,
        "escalatedAt": I,
    }
)
_FIELDS["ComplaintEvent"]["kind"] = I
_FIELDS["ChurnRisk"]["modelVersion"] = I
_FIELDS["Taxon"]["active"] = P
_FIELDS.update(
    {
        "SlaPolicy": {
            "id": P,
            "version": P,
            "name": I,
            "status": I,
            "createdAt": P,
            "createdBy": I,
            "activatedAt": I,
            "activatedBy": I,
            "retiredAt": I,
            "targets": I,
        },
        "SlaTarget": dict.fromkeys(("tier", "severity", "firstResponseMinutes", "resolutionMinutes"), I),
        "SurveyInvitation": {
            "id": P,
            "survey": I,
            "customer": I,
            "complaint": I,
            "channel": I,
            "trigger": I,
            "tierAtInvitation": I,
            "sentAt": I,
            "requestedChannel": I,
            "channelReason": I,
        },
        "InvitationSkip": {"customerId": P, "reason": P},
        "Reports": {"complaints": I, "surveyScores": I, "fairness": I, "churnRisk": I},
        "ComplaintAnalytics": dict.fromkeys(("perThousandCustomers", "topRootCauses", "reopenRates"), P),
        "ComplaintRate": dict.fromkeys(
            ("tier", "category", "categoryLabel", "complaints", "customers", "perThousand"), P
        ),
        "RootCauseCount": dict.fromkeys(("code", "label", "complaints", "sharePercent"), P),
        "ReopenRate": dict.fromkeys(("tier", "overall", "resolved", "reopened", "reopens", "rate"), P),
        "ScoreRow": dict.fromkeys(
            (
                "surveyId",
                "survey",
                "tier",
                "channel",
                "dimension",
                "periodStart",
                "responses",
                "answers",
                "positive",
                "negative",
                "score",
                "invitations",
                "answeredInvitations",
                "responseRate",
            ),
            P,
        ),
        "FairnessReport": dict.fromkeys(("from", "to", "lowestTier", "highestTier", "tiers", "comparisons"), P),
        "FairnessTier": dict.fromkeys(
            (
                "tier",
                "rank",
                "complaints",
                "complaintsWithSla",
                "breachedComplaints",
                "medianFirstResponseMinutes",
                "medianResolutionMinutes",
                "slaBreachRate",
                "customers",
                "customersInvited",
                "customersAnswered",
                "invitedShare",
                "answeredShare",
                "npsAnswers",
                "nps",
            ),
            P,
        ),
        "FairnessComparison": dict.fromkeys(("measure", "lowest", "highest", "ratio", "difference"), P),
        "ChurnReport": dict.fromkeys(("levels", "signals"), P),
        "ChurnLevelCount": dict.fromkeys(("tier", "level", "customers", "meanScore"), P),
        "ChurnSignalCount": dict.fromkeys(("code", "customers"), P),
    }
)

# Data quality and the rights of the data subject (api/graphql/privacy/resolvers.py, issue 8). The pair's customers meet
# their own Customer guards; report rows are aggregates behind the report's own grant. An export is
# all-or-nothing: Query.exportCustomerData plus FULL read of every customer-data field it holds
# (api/graphql/privacy/resolvers.py, EXPORTED_TYPES; admins and data stewards), and audited.
_FIELDS["Query"].update({"customerDuplicates": I, "dataQualityReport": I, "exportCustomerData": I})
_FIELDS["Mutation"].update(
    {
        "mergeCustomers": I,
        "eraseCustomer": I,
        "setCustomerConsent": I,
        "dismissDuplicatePair": I,
        "restoreDuplicatePair": I,
    }
)
# Identity checks (api/usecases/identity.py, issue 17): match / no match through the blind index, its own grant.
_FIELDS["Mutation"]["verifyCustomerIdentity"] = I
_FIELDS.update(
    {
        "DuplicatePair": {
            "a": I,
            "b": I,
            "reasons": I,
            "dismissed": I,
            "dismissedBy": I,
            "dismissedAt": I,
            "dismissalReason": I,
        },
        "DataQualityReport": dict.fromkeys(
            (
                "liveCustomers",
                "erasedCustomers",
                "mergedCustomers",
                "missing",
                "duplicatePairs",
                "duplicates",
                "mergesByMonth",
                "metricsStaleness",
            ),
            P,
        ),
        "MissingField": dict.fromkeys(("field", "missing", "share"), P),
        "DuplicateCount": dict.fromkeys(("criterion", "pairs"), P),
        "MonthCount": dict.fromkeys(("month", "merges"), P),
        "MetricsStaleness": dict.fromkeys(
            (
                "customers",
                "withoutMetrics",
                "medianHours",
                "p90Hours",
                "p99Hours",
                "maxHours",
                "olderThanDays",
                "staleCustomers",
            ),
            P,
        ),
        "CustomerMerge": {
            "id": P,
            "survivorId": P,
            "duplicateId": P,
            "reasons": I,
            "filledFields": I,
            "moved": I,
            "actor": I,
            "mergedAt": I,
        },
    }
)

# Events out (api/usecases/events.py, issue 16): webhook endpoints and their delivery log. A partner reaches
# its own endpoints only (infra/repos/scope.py); a URL and its failures are the caller's own configuration.
_FIELDS["Query"].update({"webhookEndpoints": I, "webhookDeliveries": I})
_FIELDS["Mutation"].update(
    {
        "registerWebhookEndpoint": I,
        "updateWebhookEndpoint": I,
        "disableWebhookEndpoint": I,
        "deleteWebhookEndpoint": I,
        "replayWebhookDelivery": I,
    }
)
_FIELDS.update(
    {
        "WebhookEndpoint": {
            "id": P,
            "version": P,
            "createdAt": P,
            "updatedAt": P,
            "url": I,
            "eventTypes": I,
            "partnerId": I,
            "description": I,
            "enabled": I,
            "disabledReason": I,
            "disabledAt": I,
            "consecutiveFailures": I,
            "createdBy": I,
        },
        "WebhookDelivery": {
            "id": P,
            "createdAt": P,
            "endpointId": I,
            "eventId": I,
            "eventType": I,
            "occurredAt": I,
            "status": I,
            "attempts": I,
            "lastAttemptAt": I,
            "lastStatusCode": I,
            "lastError": I,
            "nextAttemptAt": I,
            "deliveredAt": I,
        },
    }
)

# GraphQL subscriptions (graphql-transport-ws): the same events, filtered by the subscriber's partner scope and
# by what each event type reveals (EVENT_REVEALS, under the subscriber's decisions as they are at each event).
_FIELDS["Subscription"] = {"events": I}
_FIELDS["Event"] = {"id": P, "type": P, "occurredAt": P, "customerId": I, "data": I}

# What each event type reveals (its payload, webhook or subscription): who may not read these fields may
# not subscribe to the type (api/usecases/events.py). Every event type of domain/events.py is listed (a
# test checks); ids alone reveal nothing.
EVENT_REVEALS: dict[str, tuple[str, ...]] = {
    "tier.changed": ("Customer.tier",),
    "complaint.sla_breached": ("Complaint.breached",),
    "complaint.escalated": ("Complaint.escalatedAt",),
    "churn.risk_raised": ("Customer.churnRisk",),
    "customer.merged": (),
    "customer.erased": (),
}

_HISTORY = "Customer.tierHistory"

# What each churn signal (domain/churn.py) says of a customer beyond its churn risk: a caller whose decisions
# deny one of these fields gets ``ChurnRisk.signals`` without that signal, and may not filter the churn queue
# by it (api/usecases/queues.py). A code not listed is never shown. The money of a signal is the other rule:
# shown only with FULL read of ``CustomerMetrics.spend12m`` (domain/churn.py ``MONETARY_VALUES``).
CHURN_SIGNALS: dict[str, tuple[str, ...]] = {
    "silence": ("CustomerMetrics.lastPurchaseAt",),
    "strong_silence": ("CustomerMetrics.lastPurchaseAt",),
    "spend_drop": (),  # the share only, unless the money rule lets the amounts through
    "repeated_complaints": ("Customer.complaints", "Complaint.openedAt"),
    "breached_complaints": ("Customer.complaints", "Complaint.breached"),
    "reopened_complaints": ("Customer.complaints", "Complaint.events"),
    "detractor": ("CustomerMetrics.latestNps", "CustomerMetrics.latestCsat"),
    "falling_score": ("Customer.surveyResponses", "SurveyAnswer.score"),
    "tier_downgrade": (_HISTORY, "TierChange.fromTier", "TierChange.toTier", "TierChange.changedAt"),
}
_CLOCKS = ("Complaint.firstResponseBreached", "Complaint.resolutionBreached")
# What each key of an event's payload reveals. A receiver whose decisions deny one of these fields gets the
# payload without that key: a subscription under the subscriber's decisions at each event, a webhook under
# those of the caller who registered or last changed its endpoint (kept with it as ``withheld``,
# api/usecases/events.py). Ids reveal nothing. Every key an event carries is listed (a test checks).
EVENT_DATA: dict[str, dict[str, tuple[str, ...]]] = {
    "tier.changed": {
        "customerId": (),
        "toTier": ("Customer.tier",),
        "fromTier": (_HISTORY, "TierChange.fromTier"),
        "changeType": (_HISTORY, "TierChange.changeType"),
        "policyVersion": (_HISTORY, "TierChange.policyVersion"),
    },
    "complaint.sla_breached": {"complaintId": (), "customerId": (), "clocks": _CLOCKS},
    "complaint.escalated": {
        "complaintId": (),
        "customerId": (),
        # first_response_breached, resolution_breached or critical_resolution_at_risk
        "reason": (*_CLOCKS, "Complaint.resolutionTimeLeft", "Complaint.severity"),
    },
    "churn.risk_raised": {
        "customerId": (),
        "fromLevel": ("ChurnRisk.level",),
        "toLevel": ("ChurnRisk.level",),
        "modelVersion": ("ChurnRisk.modelVersion",),
    },
    "customer.merged": {"customerId": (), "duplicateId": ()},
    "customer.erased": {"customerId": ()},
}


# Work queues, name search and the customer import (issue 16; api/graphql/queues/, api/usecases/queues.py and
# imports.py). A churn-queue entry's churn risk and last contact need grants of their own; its customer meets
# the Customer guards. A search hit's customer meets them too, and its score says only how close the name
# is to the term the caller gave (readable only with FULL read of Customer.name, see ARGUMENTS). The import's
# rows and duplicate candidates are reachable only through its own grant; a candidate's reasons are only
# criteria over fields the caller reads in full (api/usecases/duplicates.py), its customer meets the guards.
_FIELDS["Query"].update({"churnQueue": I, "complaintQueue": I, "searchCustomers": I})
_FIELDS["Mutation"].update({"addComplaintNote": I, "assignComplaint": I, "importCustomers": I})
_FIELDS.update(
    {
        "ChurnQueueEntry": {"customer": I, "churnRisk": I, "lastContactAt": I},
        "CustomerSearchHit": {"customer": P, "score": P},
        "DuplicateCandidate": {"id": P, "customer": P, "reasons": P},
        "ImportRowProblem": {"row": P, "field": P, "message": P},
        "ImportRowDuplicate": {"row": P, "candidates": P},
        "ImportSummary": dict.fromkeys(("rows", "valid", "invalid", "created", "existing", "duplicates", "written"), P),
    }
)
# Teams of staff (migration 0022): the team a complaint is assigned to is read like its assignee; a team's
# name and members need grants of their own (a partner reads the team's name on its complaints, not who is
# in it); the list of teams and their administration are operations (refused to partners, authz/confinement.py).
# Renaming and retiring a team (0026) are administration like its creation; when it was retired is read
# with its members (``Team.*``).
_FIELDS["Query"]["teams"] = I
_FIELDS["Mutation"].update(
    {"createTeam": I, "renameTeam": I, "archiveTeam": I, "addTeamMember": I, "removeTeamMember": I}
)
_FIELDS["Complaint"]["team"] = I
_FIELDS["Team"] = {"id": P, "name": I, "createdAt": I, "archivedAt": I, "members": I}
# Refunds, benefits and what tiers earn (api/graphql/benefits/, issue 15). Refunds are written like purchases and
# read like them (support agents see no amounts: migration 0019). Costs, budgets and contribution are
# financial: internal fields granted to analysts (admins hold '*'), not to support agents or partners.
_FIELDS["Mutation"]["recordRefunds"] = I
# simulateTierPolicy projects the benefit cost of the moves: financial, like the rest of it
_FIELDS["TierSimulation"]["benefitCost"] = I
_FIELDS["TierBenefitCost"] = dict.fromkeys(
    (
        "lookbackDays",
        "monthlyNow",
        "monthlyAtActivation",
        "monthlyEventual",
        "changeAtActivation",
        "rates",
        "unobservedBenefits",
    ),
    I,
)
_FIELDS["TierBenefitRate"] = dict.fromkeys(("tier", "now", "simulated"), I)
_FIELDS["Refund"] = {
    "id": P,
    "externalId": I,
    "purchaseId": I,
    "amount": I,
    "reason": I,
    "refundedAt": I,
    "customer": I,
    "createdAt": P,
}

_FIELDS["Query"].update({"benefitCatalogue": I, "tierEconomics": I, "tierEffect": I})
_FIELDS.update(
    {
        "TierEconomics": dict.fromkeys(
            ("from", "to", "hourlyServiceCost", "surveyCost", "tierBasis", "rows", "csv"), I
        ),
        "TierEconomicsRow": dict.fromkeys(
            (
                "tier",
                "rank",
                "customers",
                "revenue",
                "refunds",
                "netRevenue",
                "benefitUses",
                "benefitCost",
                "complaints",
                "complaintHours",
                "surveyResponses",
                "serviceCost",
                "contribution",
                "contributionPerCustomer",
                "againstTierBelow",
            ),
            I,
        ),
        "TierEffect": dict.fromkeys(
            ("tier", "threshold", "start", "end", "windowDays", "bandwidth", "method", "outcomes"), I
        ),
        "TierEffectOutcome": dict.fromkeys(
            ("outcome", "effect", "ciLow", "ciHigh", "stdError", "below", "above", "tooSmall", "note"), I
        ),
    }
)
_FIELDS["Mutation"].update({"setTierPolicyBenefits": I, "recordBenefitRedemptions": I})
_FIELDS.update(
    {
        "Benefit": {
            "code": I,
            "name": I,
            "kind": I,
            "tiers": I,
            "description": I,
            "costModel": I,
            "costValue": I,
            "budget": I,
            "budgetPeriod": I,
        },
        "BenefitChange": dict.fromkeys(("code", "change", "fields"), I),
        "BenefitCatalogue": {
            "policyId": P,
            "policyVersion": P,
            "status": P,
            "benefits": P,
            "comparedWithVersion": P,
            "changes": P,
        },
        "BenefitRedemption": {
            "id": P,
            "externalId": I,
            "benefitCode": I,
            "policyVersion": I,
            "tier": I,
            "orderAmount": I,
            "cost": I,
            "redeemedAt": I,
            "customer": I,
            "createdAt": P,
        },
        "BudgetWarning": dict.fromkeys(
            ("benefit", "tier", "periodStart", "exceeded", "budget", "spent", "share", "message"), I
        ),
    }
)
# The benefit holdout (migration 0020): who is held out is the experiment's business, read by analysts; setting
# it is an admin's.
_FIELDS["BenefitCatalogue"]["holdout"] = I
_FIELDS["Query"]["benefitHoldout"] = I
_FIELDS["Mutation"]["setTierPolicyHoldout"] = I
_FIELDS.update(
    {
        "BenefitHoldout": dict.fromkeys(("share", "days", "enabled"), I),
        "BenefitHoldoutReport": dict.fromkeys(("tier", "from", "to", "treated", "held", "method", "outcomes"), I),
        "BenefitHoldoutGroup": dict.fromkeys(("customers", "complete"), I),
        "BenefitHoldoutOutcome": dict.fromkeys(
            (
                "outcome",
                "treatedMean",
                "heldMean",
                "effect",
                "ciLow",
                "ciHigh",
                "stdError",
                "treated",
                "held",
                "tooSmall",
                "note",
            ),
            I,
        ),
    }
)


def _build() -> dict[str, FieldSpec]:
    out: dict[str, FieldSpec] = {}
    for type_name, fields in _FIELDS.items():
        for field_name, spec in fields.items():
            sens, mask, consent = (spec, None, None) if isinstance(spec, Sensitivity) else (*spec, None)[:3]
            out[f"{type_name}.{field_name}"] = FieldSpec(f"{type_name}.{field_name}", sens, mask, consent)
    return out


CATALOGUE: dict[str, FieldSpec] = _build()
GUARDED: dict[str, FieldSpec] = {k: v for k, v in CATALOGUE.items() if v.sensitivity is not Sensitivity.PUBLIC}


def is_structural(type_name: str) -> bool:
    return any(fnmatch.fnmatchcase(type_name, p) for p in STRUCTURAL_TYPE_PATTERNS)


def classification(type_name: str, field_name: str) -> FieldSpec | None:
    spec = CATALOGUE.get(f"{type_name}.{field_name}")
    if spec is None and is_structural(type_name):
        return FieldSpec(f"{type_name}.{field_name}", Sensitivity.PUBLIC)
    return spec


# ================================================================ arguments (issue 17 F5, issue 13 item 4)
# Which guarded fields an argument reveals. A filter, a sort order, a search term or a lookup key that
# selects rows by the value of a field is an oracle on that field (``email: "x"`` with ``totalCount``
# answers whether a customer has that address), so the caller must be allowed to read the field in
# FULL to use it; otherwise the field is refused with FORBIDDEN_ARGUMENT before any SQL runs
# (api/graphql/core/guard.py, ``argument_check``). Every argument of every field is declared here, and so is every
# field of an input object type (wherever that type is used) — an argument that reveals nothing guarded
# says so with ``NOTHING``. The schema build and tests/unit/test_argument_catalogue.py fail on any
# argument missing here, so a new one can't slip through unclassified.
#
# Keys: ``Type.field(argument)`` for an argument of an output field, ``InputType.field`` for a field of
# an input object (an argument or input field whose type is an input object is covered by the fields of
# that type). Values: the guarded fields revealed when the argument is given (not null, not an empty
# list; a default counts as given), or, for an enum argument such as a sort order, per enum value.

Reveals = tuple[str, ...]
NOTHING: Reveals = ()


@dataclass(frozen=True)
class ArgumentSpec:
    key: str
    reveals: Reveals = NOTHING  # guarded fields the caller must read in FULL when the argument is given
    by_value: dict[str, Reveals] | None = None  # an enum argument: what each of its values reveals


def _nothing(owner: str, *names: str) -> dict[str, Reveals | dict[str, Reveals]]:
    """Arguments (``owner`` = ``Type.field``) or input fields (``owner`` = ``InputType``) that reveal nothing."""
    if "." in owner:
        return {f"{owner}({name})": NOTHING for name in names}
    return {f"{owner}.{name}": NOTHING for name in names}


_ARGUMENTS: dict[str, Reveals | dict[str, Reveals]] = {
    # ---- filters and sorts of the lists
    "CustomerFilter.tiers": ("Customer.tier",),
    "CustomerFilter.lifecycleStages": ("Customer.lifecycleStage",),
    "CustomerFilter.nameContains": ("Customer.name",),
    "CustomerFilter.email": ("Customer.email",),
    "CustomerFilter.phone": ("Customer.phone",),
    "CustomerFilter.minSpend12m": ("CustomerMetrics.spend12m",),
    **_nothing("CustomerFilter", "createdAfter", "createdBefore"),  # Customer.createdAt is public
    "Query.customers(orderBy)": {
        "CREATED_AT": NOTHING,
        "CREATED_AT_DESC": NOTHING,
        "UPDATED_AT_DESC": NOTHING,
        "NAME": ("Customer.name",),
        "SPEND_12M_DESC": ("CustomerMetrics.spend12m",),
        "LIFETIME_SPEND_DESC": ("CustomerMetrics.lifetimeSpend",),
    },
    "ComplaintFilter.statuses": ("Complaint.status",),
    "ComplaintFilter.severities": ("Complaint.severity",),
    "ComplaintFilter.categories": ("Complaint.category",),
    "ComplaintFilter.customerId": ("Complaint.customer",),
    "ComplaintFilter.openedAfter": ("Complaint.openedAt",),
    "ComplaintFilter.openedBefore": ("Complaint.openedAt",),
    "ComplaintFilter.breached": ("Complaint.breached",),
    "Query.complaints(orderBy)": {
        "OPENED_AT_DESC": ("Complaint.openedAt",),
        "OPENED_AT": ("Complaint.openedAt",),
        "UPDATED_AT_DESC": NOTHING,  # Complaint.updatedAt is public
    },
    "Query.surveys(status)": ("Survey.status",),
    "Query.customerDuplicates(criteria)": {
        "EMAIL": ("Customer.email",),
        "PHONE": ("Customer.phone",),
        "NATIONAL_ID": ("Customer.nationalId",),
        "NAME_DOB": ("Customer.name", "Customer.birthDate"),
    },
    "Query.customerDuplicates(includeDismissed)": ("DuplicatePair.dismissed",),
    "AuditFilter.actor": ("AuditEntry.actor",),
    "AuditFilter.action": ("AuditEntry.action",),
    "AuditFilter.targetId": ("AuditEntry.targetIds",),
    "AuditFilter.since": ("AuditEntry.at",),
    "AuditFilter.until": ("AuditEntry.at",),
    # ---- lookups by a guarded value inside a write: the customer a purchase is recorded for, by its reference
    "PurchaseInput.customerExternalRef": ("Customer.externalRef",),
    # ---- paging, and objects picked by their (public) global id
    **_nothing("Query.customers", "first", "after"),
    **_nothing("Query.complaints", "first", "after"),
    **_nothing("Query.surveys", "first", "after"),
    **_nothing("Query.customerDuplicates", "first", "after"),
    **_nothing("Query.auditLog", "first", "after"),
    **_nothing("Query.tierRuns", "first"),
    **_nothing("Customer.complaints", "first"),
    **_nothing("Customer.purchases", "first"),
    **_nothing("Customer.surveyResponses", "first"),
    **_nothing("Customer.tierHistory", "first"),
    **_nothing("Query.node", "id"),
    **_nothing("Query.customer", "id"),
    **_nothing("Query.complaint", "id"),
    **_nothing("Query.survey", "id"),
    **_nothing("Query.tierPolicy", "id"),
    **_nothing("Query.simulateTierPolicy", "draftId"),
    **_nothing("Query.exportCustomerData", "id"),  # and FULL read of everything exported (api/graphql/privacy/)
    # ---- what a UI asks about itself, and access administration (its own grants guard it)
    **_nothing("Viewer.fieldAccess", "type"),
    **_nothing("Query.explainAccess", "subject", "field", "action"),
    # ---- aggregates: a report's window and dimensions are what its own grant (Query.x, Reports.x) gives;
    #      its rows are counts and shares, never a customer, a complaint or a response
    **_nothing("Query.tierMigrations", "since", "until"),
    **_nothing("Reports.complaints", "from", "to", "tier", "topRootCauses"),
    **_nothing("Reports.surveyScores", "metric", "groupBy", "period", "from", "to", "surveyId"),
    **_nothing("Reports.fairness", "from", "to"),
    # ---- mutations: values written (each checked by the field's write grant), ids, expected versions,
    #      and idempotency keys (scoped to the caller's own partner: they find only what that caller wrote)
    **_nothing("Mutation.createRole", "name", "description", "inherits"),
    **_nothing("Mutation.deleteRole", "name"),
    **_nothing("Mutation.grantAccess", "role", "object", "action", "effect"),
    **_nothing("Mutation.revokeAccess", "role", "object", "action", "effect"),
    **_nothing("Mutation.assignRole", "user", "role"),
    **_nothing("Mutation.unassignRole", "user", "role"),
    **_nothing(
        "Mutation.createPartnerToken", "partner", "name", "scopes", "role", "expiresAt", "allowArbitraryDocuments"
    ),
    **_nothing("Mutation.revokePartnerToken", "id"),
    **_nothing("Mutation.setPartnerTokenRateLimit", "id", "perMinute"),
    **_nothing("Mutation.setPartnerTokenArbitraryDocuments", "id", "allow"),
    **_nothing("Mutation.discardTierPolicyDraft", "id", "expectedRevision"),
    **_nothing("Mutation.activateTierPolicy", "id", "expectedRevision"),
    **_nothing("Mutation.activateSlaPolicy", "id"),
    **_nothing("Mutation.addComplaintCategory", "code", "label"),
    **_nothing("Mutation.deactivateComplaintCategory", "code"),
    **_nothing("Mutation.addRootCause", "code", "label"),
    **_nothing("Mutation.deactivateRootCause", "code"),
    **_nothing(
        "Mutation.mergeCustomers", "survivorId", "duplicateId", "expectedSurvivorVersion", "expectedDuplicateVersion"
    ),
    **_nothing("Mutation.dismissDuplicatePair", "customerId", "otherId", "reason"),
    **_nothing("Mutation.restoreDuplicatePair", "customerId", "otherId"),
    **_nothing("Mutation.eraseCustomer", "id"),
    **_nothing("Mutation.setCustomerConsent", "customerId", "channel", "given", "expectedVersion"),
    **_nothing(
        "CreateCustomerInput",
        "name",
        "externalRef",
        "email",
        "phone",
        "nationalId",
        "birthDate",
        "locale",
        "lifecycleStage",
    ),
    **_nothing(
        "UpdateCustomerInput",
        "id",
        "expectedVersion",
        "name",
        "externalRef",
        "email",
        "phone",
        "nationalId",
        "birthDate",
        "locale",
        "lifecycleStage",
    ),
    **_nothing("AddressInput", "line1", "line2", "postalCode", "city", "country"),
    **_nothing("DeleteCustomerInput", "id", "expectedVersion"),
    **_nothing("PurchaseInput", "customerId", "externalId", "amount", "currency", "channel", "purchasedAt"),
    **_nothing(
        "OpenComplaintInput",
        "customerId",
        "subject",
        "description",
        "category",
        "severity",
        "channel",
        "externalId",
        "followUpOf",
    ),
    **_nothing(
        "TransitionComplaintInput", "id", "expectedVersion", "to", "assignee", "resolutionCode", "rootCauseCode", "note"
    ),
    **_nothing("CreateSurveyInput", "title", "channels", "description", "trigger", "perComplaint", "status"),
    **_nothing("SurveyQuestionInput", "kind", "dimension", "prompt", "options", "required"),
    **_nothing("SubmitSurveyResponseInput", "surveyId", "customerId", "channel", "complaintId", "externalId"),
    **_nothing("AnswerInput", "questionId", "score", "choices", "text"),
    **_nothing(
        "CreateTierPolicyDraftInput",
        "name",
        "description",
        "graceDays",
        "minStayDays",
        "spendWindowDays",
        "copyFrom",
    ),
    **_nothing(
        "UpdateTierPolicyDraftInput",
        "id",
        "expectedRevision",
        "name",
        "description",
        "graceDays",
        "minStayDays",
        "spendWindowDays",
    ),
    **_nothing("TierInput", "code", "name", "rank", "entryRule", "retainRule", "benefits"),
    **_nothing("OverrideCustomerTierInput", "customerId", "tier", "reason", "expiresAt"),
    **_nothing("ClearCustomerTierOverrideInput", "customerId", "reason"),
    **_nothing("CreateSlaPolicyInput", "name"),
    **_nothing("SlaTargetInput", "tier", "severity", "firstResponseMinutes", "resolutionMinutes"),
    **_nothing("InviteToSurveyInput", "surveyId", "customerIds", "channel"),
}
_ARGUMENTS.update(
    {
        **_nothing("RefundInput", "purchaseId", "externalId", "amount", "reason", "refundedAt"),
        "RefundInput.purchaseExternalId": ("Purchase.externalId",),
        **_nothing("Query.benefitCatalogue", "policyId"),
        **_nothing("Query.tierEconomics", "from", "to", "hourlyServiceCost", "surveyCost"),
        **_nothing("Query.tierEffect", "tier", "windowDays", "bandwidth", "start"),
        **_nothing("SetTierPolicyBenefitsInput", "policyId", "expectedRevision"),
        **_nothing(
            "BenefitInput",
            "code",
            "name",
            "kind",
            "costModel",
            "costValue",
            "tiers",
            "budget",
            "budgetPeriod",
            "description",
        ),
        **_nothing("RedemptionInput", "benefitCode", "customerId", "externalId", "orderAmount", "redeemedAt"),
        **_nothing("SetTierPolicyHoldoutInput", "policyId", "expectedRevision", "share", "days"),
        **_nothing("Query.benefitHoldout", "tier", "from", "to"),
        "RedemptionInput.customerExternalRef": ("Customer.externalRef",),
    }
)
# verifyCustomerIdentity answers match / no match about the value given: a deliberate oracle, granted on
# its own, rate-limited per (caller, customer) and audited (api/usecases/identity.py), not a read of the field.
_ARGUMENTS.update(_nothing("Mutation.verifyCustomerIdentity", "customerId", "attribute", "value"))
# Webhooks: the caller's own endpoints and deliveries, looked up by id or listed (scoped, not filtered by data).
_ARGUMENTS.update(
    {
        "Query.webhookDeliveries(endpointId)": ("WebhookDelivery.endpointId",),
        "Query.webhookDeliveries(status)": ("WebhookDelivery.status",),
        **_nothing("Query.webhookDeliveries", "first", "after"),
        **_nothing("Subscription.events", "types"),
        **_nothing("Mutation.disableWebhookEndpoint", "id"),
        **_nothing("Mutation.deleteWebhookEndpoint", "id"),
        **_nothing("Mutation.replayWebhookDelivery", "id"),
        **_nothing("RegisterWebhookEndpointInput", "url", "eventTypes", "partnerId", "description"),
        **_nothing(
            "UpdateWebhookEndpointInput",
            "id",
            "expectedVersion",
            "url",
            "eventTypes",
            "description",
            "enabled",
            "rotateSecret",
        ),
    }
)
# createCustomer's duplicate handling: what it matches on follows the caller's FULL reads (api/usecases/duplicates.py).
_ARGUMENTS.update(_nothing("CreateCustomerInput", "onDuplicate"))
# Work queues and name search (issue 16). Every call of a queue selects rows by what its default filter
# says (the churn queue: red and yellow; the complaint queue: the active statuses), so its ordering, which
# always has a value, declares those fields too. The name search selects by the name: FULL read of it.
_DUE = ("Complaint.firstResponseDueAt", "Complaint.resolutionDueAt")
_ARGUMENTS.update(
    {
        "ChurnQueueFilter.levels": ("ChurnRisk.level",),
        "ChurnQueueFilter.minScore": ("ChurnRisk.score",),
        "ChurnQueueFilter.maxScore": ("ChurnRisk.score",),
        "ChurnQueueFilter.tiers": ("Customer.tier",),
        "ChurnQueueFilter.signals": ("ChurnRisk.signals",),
        "Query.churnQueue(orderBy)": {
            "SCORE_DESC": ("ChurnRisk.level", "ChurnRisk.score"),
            "TIER_DESC": ("ChurnRisk.level", "ChurnRisk.score", "Customer.tier"),
            "LAST_CONTACT": ("ChurnRisk.level", "ChurnQueueEntry.lastContactAt"),
        },
        "ComplaintQueueFilter.assignedToMe": ("Complaint.assignee",),
        "ComplaintQueueFilter.assignee": ("Complaint.assignee",),
        "ComplaintQueueFilter.unassigned": ("Complaint.assignee",),
        "ComplaintQueueFilter.team": ("Complaint.team",),
        "ComplaintQueueFilter.myTeams": ("Complaint.team",),
        "ComplaintQueueFilter.tiers": ("Complaint.tierAtOpen",),
        "ComplaintQueueFilter.categories": ("Complaint.category",),
        "ComplaintQueueFilter.severities": ("Complaint.severity",),
        "ComplaintQueueFilter.statuses": ("Complaint.status",),
        "ComplaintQueueFilter.dueWithinHours": ("Complaint.status", *_DUE),
        "ComplaintQueueFilter.breached": ("Complaint.breached",),
        "Query.complaintQueue(orderBy)": {
            "DUE_AT": ("Complaint.status", *_DUE),
            "OPENED_AT": ("Complaint.status", "Complaint.openedAt"),
        },
        "Query.searchCustomers(query)": ("Customer.name",),
        **_nothing("Query.churnQueue", "first", "after"),
        **_nothing("Query.complaintQueue", "first", "after"),
        **_nothing("Query.searchCustomers", "first"),
        **_nothing("AddComplaintNoteInput", "id", "note"),
        **_nothing("AssignComplaintInput", "id", "expectedVersion", "assignee", "toMe", "team", "note"),
        **_nothing("Query.teams", "includeArchived"),
        **_nothing("Mutation.createTeam", "name"),
        **_nothing("Mutation.renameTeam", "team", "name"),
        **_nothing("Mutation.archiveTeam", "team"),
        **_nothing("Mutation.addTeamMember", "team", "user"),
        **_nothing("Mutation.removeTeamMember", "team", "user"),
        # values written (each column checked by its field's write grant, api/usecases/imports.py), as createCustomer
        **_nothing("ImportCustomersInput", "dryRun", "allOrNothing"),
        **_nothing("ImportCustomerRowInput", *("externalRef", "name", "email", "phone", "nationalId", "birthDate")),
        **_nothing("ImportCustomerRowInput", *("addressLine1", "addressLine2", "addressPostalCode", "addressCity")),
        **_nothing("ImportCustomerRowInput", "addressCountry", "locale", "lifecycleStage"),
    }
)


def _build_arguments() -> dict[str, ArgumentSpec]:
    out: dict[str, ArgumentSpec] = {}
    for key, value in _ARGUMENTS.items():
        out[key] = ArgumentSpec(key, by_value=value) if isinstance(value, dict) else ArgumentSpec(key, value)
    return out


ARGUMENTS: dict[str, ArgumentSpec] = _build_arguments()


# ================================================================ storage (issue 12, issue 13 item 4)
# Where the value of a field lives, for the read compiler (api/graphql/compiler.py, infra/readsql.py): its
# table and column, or an SQL expression over the table (``{t}``: the table's alias; ``{customer}``: the
# alias of the customer the row belongs to), and whether the column is encrypted at rest (infra/crypto.py:
# the statement then carries the ciphertext, and Python decrypts and masks it). A field not listed here is
# not compiled: strawberry answers the operations that select it. Relations (a customer's tier, metrics,
# complaints; a complaint's customer) are the compiler's own joins; their fields are listed with their
# table. tests/unit/test_catalogue_storage.py keeps ``encrypted`` equal to infra/crypto.ENCRYPTED_COLUMNS.


@dataclass(frozen=True)
class Stored:
    table: str
    column: str  # a column of ``table``, or an SQL expression (see above) when ``expression``
    encrypted: bool = False
    expression: bool = False


def _stored(type_name: str, table: str, **columns: str) -> dict[str, Stored]:
    """``Type.field`` -> its plain column of ``table``, for each ``field=column``."""
    return {f"{type_name}.{field}": Stored(table, column) for field, column in columns.items()}


STORAGE: dict[str, Stored] = {
    **_stored(
        "Customer",
        "customers",
        id="id",
        version="version",
        createdAt="created_at",
        updatedAt="updated_at",
        externalRef="external_ref",
        name="name",
        locale="locale",
        lifecycleStage="lifecycle_stage",
        tierSince="tier_since",
        tier="tier_code",
    ),
    "Customer.email": Stored("customers", "email", encrypted=True),
    "Customer.phone": Stored("customers", "phone", encrypted=True),
    "Customer.nationalId": Stored("customers", "national_id", encrypted=True),
    "Customer.birthDate": Stored("customers", "birth_date", encrypted=True),
    "Customer.address": Stored("customers", "address", encrypted=True),
    "Consent.email": Stored("customers", "consent_email_at"),
    "Consent.sms": Stored("customers", "consent_sms_at"),
    "Consent.phone": Stored("customers", "consent_phone_at"),
    **_stored(
        "CustomerMetrics",
        "customer_metrics",
        lifetimeSpend="lifetime_spend",
        orderCount="order_count",
        spend12m="spend_12m",
        orders12m="orders_12m",
        firstPurchaseAt="first_purchase_at",
        lastPurchaseAt="last_purchase_at",
        openComplaints="open_complaints",
        latestNps="latest_nps",
        latestCsat="latest_csat",
        computedAt="computed_at",
    ),
    "CustomerMetrics.tenureDays": Stored(
        "customer_metrics", "floor(extract(epoch FROM now() - {customer}.created_at) / 86400)::int", expression=True
    ),
    "Tier.code": Stored("tiers", "code"),
    "Tier.name": Stored("tiers", "name"),
    "Tier.rank": Stored("tiers", "rank"),
    "Tier.benefits": Stored("tiers", "benefits"),
    **_stored(
        "Complaint",
        "complaints",
        id="id",
        version="version",
        externalId="external_id",
        subject="subject",
        severity="severity",
        channel="channel",
        status="status",
        assignee="assignee",
        resolutionCode="resolution_code",
        tierAtOpen="tier_at_open",
        firstResponseDueAt="first_response_due_at",
        firstRespondedAt="first_responded_at",
        resolvedAt="resolved_at",
        closedAt="closed_at",
        reopenCount="reopen_count",
        openedAt="opened_at",
        updatedAt="updated_at",
        slaPolicyVersion="sla_policy_version",
        escalatedAt="escalated_at",
        customer="customer_id",
    ),
    # a complaint's team is a join of the read compiler (its ``team_id``, api/graphql/compiler.py _RELATIONS)
    **_stored("Team", "teams", id="id", name="name", createdAt="created_at", archivedAt="archived_at"),
    "Complaint.description": Stored("complaints", "description", encrypted=True),
    # the breach verdicts: the SLA clocks' one definition (infra/repos/clocks.py), as the complaint rows select it
    "Complaint.firstResponseBreached": Stored("complaints", clocks.first_response_breached_sql("{t}"), expression=True),
    "Complaint.resolutionBreached": Stored("complaints", clocks.resolution_breached_sql("{t}"), expression=True),
    "Complaint.breached": Stored(
        "complaints",
        f"({clocks.first_response_breached_sql('{t}')} OR {clocks.resolution_breached_sql('{t}')})",
        expression=True,
    ),
    "Complaint.followUpOf": Stored("complaints", "follow_up_of_id"),
    **_stored(
        "ChurnRisk",
        "churn_scores",
        level="level",
        score="score",
        signals="signals",
        computedAt="computed_at",
        modelVersion="model_version",
    ),
    **_stored(
        "Survey",
        "surveys",
        id="id",
        version="version",
        title="title",
        description="description",
        status="status",
        trigger="trigger",
        channels="channels",
        perComplaint="per_complaint",
        createdAt="created_at",
    ),
    **_stored(
        "SurveyQuestion",
        "survey_questions",
        id="id",
        position="position",
        kind="kind",
        dimension="dimension",
        prompt="prompt",
        options="options",
        required="required",
    ),
    **_stored(
        "SurveyResponse",
        "survey_responses",
        id="id",
        externalId="external_id",
        channel="channel",
        tierAtResponse="tier_at_response",
        submittedAt="submitted_at",
    ),
    **_stored("SurveyAnswer", "survey_answers", score="score", choices="choices"),
    "SurveyAnswer.text": Stored("survey_answers", "text", encrypted=True),
    "TierChange.metrics": Stored("tier_changes", "metrics"),
    "Partner.id": Stored("partners", "id"),
    "Partner.name": Stored("partners", "name"),
    # a complaint's category and root cause: complaint_categories or root_causes, alike
    "Taxon.code": Stored("complaint_categories", "code"),
    "Taxon.label": Stored("complaint_categories", "label"),
    "Taxon.active": Stored("complaint_categories", "active"),
    **_stored(
        "ComplaintEvent",
        "complaint_events",
        id="id",
        fromStatus="from_status",
        toStatus="to_status",
        actor="actor",
        at="at",
        kind="kind",
    ),
    "ComplaintEvent.note": Stored("complaint_events", "note", encrypted=True),
    **_stored(
        "Purchase",
        "purchases",
        id="id",
        externalId="external_id",
        amount="amount",
        currency="currency",
        channel="channel",
        purchasedAt="purchased_at",
        createdAt="created_at",
        customer="customer_id",
    ),
    **_stored(
        "TierChange",
        "tier_changes",
        id="id",
        fromTier="from_tier",
        toTier="to_tier",
        policyVersion="policy_version",
        changeType="change_type",
        reason="reason",
        actor="actor",
        changedAt="changed_at",
    ),
}
