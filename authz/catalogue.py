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
        "viewer": P, "node": P, "customer": I, "customers": I, "complaint": I, "complaints": I, "survey": I,
        "surveys": I, "tierPolicies": I, "activeTierPolicy": I, "complaintCategories": I, "rootCauses": I,
        "explainAccess": I, "auditLog": I, "roles": I, "policies": I, "apiTokens": I,
    },
    "Mutation": {
        "createCustomer": I, "updateCustomer": I, "deleteCustomer": I, "recordPurchases": I, "openComplaint": I,
        "transitionComplaint": I, "createSurvey": I, "submitSurveyResponse": I,
        "createRole": I, "deleteRole": I, "grantAccess": I, "revokeAccess": I, "assignRole": I, "unassignRole": I,
        "createPartnerToken": I, "revokePartnerToken": I,
    },
    "Customer": {
        "id": P, "version": P, "createdAt": P, "updatedAt": P,
        "externalRef": I, "name": I, "locale": I, "lifecycleStage": I,
        "email": (S, "email", "email"), "phone": (S, "phone", "phone"), "nationalId": (S, "tail"),
        "birthDate": (S, "year"), "address": (S, "address"),
        "tier": I, "tierSince": I, "metrics": I, "churnRisk": I, "consent": I, "partner": I,
        "complaints": I, "surveyResponses": I, "tierHistory": I, "purchases": I,
    },
    "Address": {"line1": P, "line2": P, "postalCode": P, "city": P, "country": P},
    "Consent": {"email": P, "sms": P, "phone": P},
    "CustomerMetrics": {
        "lifetimeSpend": (S, "magnitude"), "orderCount": I, "spend12m": I, "orders12m": I, "firstPurchaseAt": I,
        "lastPurchaseAt": I, "tenureDays": I, "openComplaints": I, "latestNps": I, "latestCsat": I,
        "computedAt": I,
    },
    "ChurnRisk": {"level": I, "score": I, "signals": I, "computedAt": I},
    "Tier": {"code": P, "name": P, "rank": P, "benefits": P},
    "TierPolicy": {
        "id": P, "version": P, "name": I, "status": I, "graceDays": I, "minStayDays": I, "tiers": I,
        "createdBy": I, "createdAt": P, "activatedBy": I, "activatedAt": I,
    },
    "TierRule": {"code": P, "entryRule": I, "retainRule": I},
    "TierChange": {
        "id": P, "fromTier": I, "toTier": I, "policyVersion": I, "changeType": I, "reason": I, "metrics": I,
        "actor": I, "changedAt": I,
    },
    "Partner": {"id": P, "name": I},
    "Purchase": {
        "id": P, "externalId": I, "amount": I, "currency": I, "channel": I, "purchasedAt": I, "customer": I,
        "createdAt": P,
    },
    "Complaint": {
        "id": P, "version": P, "externalId": I, "customer": I, "subject": I, "description": (S, "text"),
        "category": I, "rootCause": I, "severity": I, "channel": I, "status": I, "assignee": I,
        "resolutionCode": I, "tierAtOpen": I, "firstResponseDueAt": I, "resolutionDueAt": I,
        "firstRespondedAt": I, "resolvedAt": I, "closedAt": I, "reopenCount": I, "followUpOf": I, "events": I,
        "openedAt": I, "updatedAt": P,
    },
    "Taxon": {"code": P, "label": P},
    "ComplaintEvent": {"id": P, "fromStatus": I, "toStatus": I, "actor": I, "note": (S, "text"), "at": I},
    "Survey": {
        "id": P, "version": P, "title": I, "description": I, "status": I, "trigger": I, "channels": I,
        "perComplaint": I, "questions": I, "createdAt": P,
    },
    "SurveyQuestion": {
        "id": P, "position": I, "kind": I, "dimension": I, "prompt": I, "options": I, "required": I,
    },
    "SurveyResponse": {
        "id": P, "externalId": I, "survey": I, "customer": I, "complaint": I, "channel": I, "tierAtResponse": I,
        "submittedAt": I, "answers": I,
    },
    "SurveyAnswer": {"question": I, "score": I, "choices": I, "text": (S, "text")},
    # Administration: reachable only through admin operations, and guarded field by field too.
    "AuditEntry": {
        "id": P, "at": I, "actor": I, "action": I, "requestId": I, "targetType": I, "targetIds": I, "fields": I,
        "before": I, "after": I,
    },
    "Role": {"name": I, "description": I, "inherits": I, "grants": I},
    "PolicyRule": {"subject": I, "object": I, "action": I, "effect": I},
    "ApiToken": {
        "id": P, "name": I, "partnerId": I, "role": I, "scopes": I, "createdBy": I, "createdAt": I, "expiresAt": I,
        "revokedAt": I,
    },
    "AccessExplanation": {
        "subject": I, "roles": I, "field": I, "action": I, "allowed": I, "decision": I, "rules": I, "reason": I,
        "policyVersion": I,
    },
}


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
