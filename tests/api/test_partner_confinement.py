"""Partner confinement as a rule of the principal (issue 17): whatever roles a partner token holds, every
operation of the schema is either refused (FORBIDDEN / NOT_FOUND) or answers with nothing of another
partner. The operations are taken from the built schema, so a new one fails ``test_every_operation_has_a_call``
until it is given a call here (and so a decision)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api.graphql.schema import build_schema
from tests.api.security_helpers import (
    ADA,
    ADA_COMPLAINT,
    BRUNO,
    BRUNO_COMPLAINT,
    PARTNER_A,
    PARTNER_B,
    READ_PATHS,
    World,
    complaint_input,
    gid,
    sql,
    world_on_read_path,
)

IN_A_MONTH = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
SHIPPED_ROLES = ("partner", "support_agent", "analyst", "marketing", "data_steward", "admin")
REFUSED = {"FORBIDDEN", "NOT_FOUND"}


def token_id(token: str) -> uuid.UUID:
    return uuid.UUID(hex=token.removeprefix("tw_pat_").partition("_")[0])


@dataclass
class Fixture:
    world: World
    ids: dict[str, str]  # variables the calls use (the other partner's ids, reference data)
    tokens: dict[str, str]  # role -> a partner A token holding it

    async def own(self, query: str) -> int:
        rows = await sql(self.world.url, query, self.world.partner_a)
        return int(rows[0][0])


@pytest.fixture(scope="module", params=READ_PATHS)
async def fx(template_db: str, request: pytest.FixtureRequest) -> AsyncIterator[Fixture]:
    """On both read paths: the compiled one and strawberry's."""
    async with world_on_read_path(template_db, request.param) as w:
        api = w.api
        admin = w.tokens["admin"]
        ref = (
            await api.gql(
                admin,
                """{ activeTierPolicy { id } activeSlaPolicy { id }
            rootCauses { code } }""",
            )
        )["data"]
        ids = {
            "other": w.bruno,
            "unowned": w.ada,
            "own": w.paula,
            "otherComplaint": w.bruno_complaint,
            "survey": w.survey,
            "nps": w.question_nps,
            "policy": ref["activeTierPolicy"]["id"],
            "sla": ref["activeSlaPolicy"]["id"],
            "rootCause": ref["rootCauses"][0]["code"],
            "otherToken": str(token_id(w.tokens["partner_b"])),
            "otherPurchase": gid(
                "Purchase", (await sql(w.url, "SELECT id FROM purchases WHERE external_id = 'seed-partner_b'"))[0][0]
            ),
        }
        # partner B's webhook endpoint (registered by an admin for B) and a delivery to it (B's new customer)
        endpoint = (
            await api.gql(
                admin,
                """mutation($b: ID!) { registerWebhookEndpoint(input: {url: "https://hooks.example.com/b",
                eventTypes: [TIER_CHANGED], partnerId: $b}) { endpoint { id } } }""",
                {"b": str(w.partner_b)},
            )
        )["data"]["registerWebhookEndpoint"]["endpoint"]["id"]
        await api.gql(
            w.tokens["partner_b"],
            'mutation { createCustomer(input: {name: "Bea Hook", externalRef: "b-hook-1"}) { customer { id } } }',
        )
        delivery = (
            await api.gql(
                admin, "query($e: ID) { webhookDeliveries(endpointId: $e) { edges { node { id } } } }", {"e": endpoint}
            )
        )["data"]["webhookDeliveries"]["edges"][0]["node"]["id"]
        ids |= {"otherPartner": str(w.partner_b), "otherEndpoint": endpoint, "otherDelivery": delivery}
        tokens: dict[str, str] = {}
        for role in SHIPPED_ROLES:
            if role == "admin":  # refused at creation: forced into the database (defence in depth)
                tokens[role], _ = await api.forced_partner_token(PARTNER_A, role)
            else:
                tokens[role], _ = await api.partner_token(PARTNER_A, role=role)
        yield Fixture(w, ids, tokens)


def _v(*names: str, **fixed: Any) -> Callable[[dict[str, str]], dict[str, Any]]:
    return lambda ids: {**{n: ids[n] for n in names}, **fixed}


SOME_TEAM = "VGVhbTowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA"  # Team:00000000-0000-4000-8000-000000000000

# Every Query and Mutation field: (document, variables from the fixture's ids). Calls aim at the other
# partner wherever an operation takes an id or a partner.
CALLS: dict[str, tuple[str, Callable[[dict[str, str]], dict[str, Any]]]] = {
    # ------------------------------------------------------------------ Query
    "explainAccess": (
        """query($s: String!) { explainAccess(subject: $s, field: "Customer.email") {
        subject roles allowed reason } }""",
        lambda ids: {"s": f"token:{ids['otherToken']}"},
    ),
    "auditLog": (
        "{ auditLog(first: 100) { totalCount edges { node { actor action targetIds before after } } } }",
        _v(),
    ),
    "roles": ("{ roles { name grants { object action } } }", _v()),
    "policies": ("{ policies { subject object action } }", _v()),
    "accessMatrix": ("{ accessMatrix { roles rows { field decisions } } }", _v()),
    "apiTokens": ("{ apiTokens { id name partnerId role } }", _v()),
    "tierPolicy": ("query($policy: ID!) { tierPolicy(id: $policy) { id name } }", _v("policy")),
    "simulateTierPolicy": (
        "query($policy: ID!) { simulateTierPolicy(draftId: $policy) { customers changing } }",
        _v("policy"),
    ),
    "tierDistribution": ("{ tierDistribution { customers tiers { tier customers } } }", _v()),
    "tierMigrations": (
        """{ tierMigrations(since: "2000-01-01T00:00:00Z") { customers moved
        cells { fromTier toTier customers } } }""",
        _v(),
    ),
    "tierRuns": ("{ tierRuns { id customersTotal } }", _v()),
    "reports": (
        """{ reports {
        complaints { perThousandCustomers { tier category complaints customers }
                     topRootCauses { code complaints } reopenRates { tier resolved reopened } }
        surveyScores(metric: NPS, groupBy: [TIER]) { tier responses answers invitations }
        fairness { tiers { tier complaints customers customersInvited customersAnswered npsAnswers } }
        churnRisk { levels { tier level customers } signals { code customers } } } }""",
        _v(),
    ),
    "slaPolicies": ("{ slaPolicies { id name } }", _v()),
    "activeSlaPolicy": ("{ activeSlaPolicy { id name } }", _v()),
    "customerDuplicates": (
        """{ customerDuplicates(first: 50, includeDismissed: true) { totalCount
        edges { node { reasons a { id name } b { id name } } } } }""",
        _v(),
    ),
    "dataQualityReport": (
        """{ dataQualityReport { liveCustomers erasedCustomers mergedCustomers duplicatePairs
        missing { field missing } metricsStaleness { customers } } }""",
        _v(),
    ),
    "exportCustomerData": ("query($other: ID!) { exportCustomerData(id: $other) }", _v("other")),
    "viewer": ("{ viewer { subject kind roles partnerId } }", _v()),
    "node": ("query($other: ID!) { node(id: $other) { id ... on Customer { name } } }", _v("other")),
    "customer": ("query($other: ID!) { customer(id: $other) { id name } }", _v("other")),
    "customers": ("{ customers(first: 100) { totalCount edges { node { id name partner { id name } } } } }", _v()),
    "complaint": ("query($c: ID!) { complaint(id: $c) { id description } }", lambda ids: {"c": ids["otherComplaint"]}),
    "complaints": ("{ complaints(first: 100) { totalCount edges { node { id description customer { id } } } } }", _v()),
    "survey": ("query($survey: ID!) { survey(id: $survey) { id title } }", _v("survey")),
    "surveys": ("{ surveys(first: 20) { edges { node { id title } } } }", _v()),
    "tierPolicies": ("{ tierPolicies { id name } }", _v()),
    "activeTierPolicy": ("{ activeTierPolicy { id name } }", _v()),
    "complaintCategories": ("{ complaintCategories { code } }", _v()),
    "churnQueue": (
        """{ churnQueue(first: 100, filter: {levels: [GREEN, YELLOW, RED]}) { totalCount
        edges { node { customer { id name } churnRisk { level score } lastContactAt } } } }""",
        _v(),
    ),
    "complaintQueue": (
        """{ complaintQueue(first: 100, filter: {statuses: [NEW, OPEN, PENDING_CUSTOMER, ON_HOLD, RESOLVED, CLOSED]}) {
        totalCount edges { node { id description customer { id } } } } }""",
        _v(),
    ),
    "searchCustomers": (
        'query { searchCustomers(query: "Bruno Southwind-Kunde") { score customer { id name } } }',
        _v(),
    ),
    "rootCauses": ("{ rootCauses { code } }", _v()),
    "webhookEndpoints": ("{ webhookEndpoints { id url partnerId eventTypes } }", _v()),
    "webhookDeliveries": (
        "{ webhookDeliveries(first: 50) { edges { node { id endpointId eventId eventType status } } } }",
        _v(),
    ),
    # ------------------------------------------------------------------ Mutation
    "createRole": ('mutation { createRole(name: "escalated") { ok userErrors { code } } }', _v()),
    "deleteRole": ('mutation { deleteRole(name: "analyst") { ok userErrors { code } } }', _v()),
    "grantAccess": (
        """mutation { grantAccess(role: "partner", object: "Mutation.createRole", action: WRITE) {
        ok userErrors { code } } }""",
        _v(),
    ),
    "revokeAccess": (
        """mutation { revokeAccess(role: "support_agent", object: "Query.customers", action: READ) {
        ok userErrors { code } } }""",
        _v(),
    ),
    "assignRole": ('mutation { assignRole(user: "mallory", role: "admin") { ok userErrors { code } } }', _v()),
    "unassignRole": ('mutation { unassignRole(user: "alice", role: "admin") { ok userErrors { code } } }', _v()),
    "createPartnerToken": (
        f"""mutation {{ createPartnerToken(partner: "{PARTNER_B}", name: "stolen") {{
        token apiToken {{ id partnerId }} userErrors {{ code }} }} }}""",
        _v(),
    ),
    "revokePartnerToken": (
        "mutation($otherToken: ID!) { revokePartnerToken(id: $otherToken) { ok userErrors { code } } }",
        _v("otherToken"),
    ),
    "setPartnerTokenRateLimit": (
        """mutation($otherToken: ID!) { setPartnerTokenRateLimit(id: $otherToken,
        perMinute: 1) { apiToken { id } userErrors { code } } }""",
        _v("otherToken"),
    ),
    "setPartnerTokenArbitraryDocuments": (
        """mutation($otherToken: ID!) { setPartnerTokenArbitraryDocuments(id: $otherToken,
        allow: true) { apiToken { id } userErrors { code } } }""",
        _v("otherToken"),
    ),
    "createTierPolicyDraft": (
        """mutation($policy: ID!) { createTierPolicyDraft(input: {name: "mine",
        copyFrom: $policy}) { policy { id } userErrors { code } } }""",
        _v("policy"),
    ),
    "updateTierPolicyDraft": (
        """mutation($policy: ID!) { updateTierPolicyDraft(input: {id: $policy,
        expectedRevision: 1, name: "renamed"}) { policy { id } userErrors { code } } }""",
        _v("policy"),
    ),
    "discardTierPolicyDraft": (
        """mutation($policy: ID!) { discardTierPolicyDraft(id: $policy) {
        discardedId userErrors { code } } }""",
        _v("policy"),
    ),
    "activateTierPolicy": (
        """mutation($policy: ID!) { activateTierPolicy(id: $policy) {
        retiredVersion userErrors { code } } }""",
        _v("policy"),
    ),
    "overrideCustomerTier": (
        """mutation($other: ID!, $until: DateTime!) { overrideCustomerTier(input: {
        customerId: $other, tier: "silver", reason: "x", expiresAt: $until}) { customer { id } userErrors { code } } }""",
        lambda ids: {"other": ids["other"], "until": IN_A_MONTH},
    ),
    "clearCustomerTierOverride": (
        """mutation($other: ID!) { clearCustomerTierOverride(input: {customerId: $other,
        reason: "x"}) { customer { id } userErrors { code } } }""",
        _v("other"),
    ),
    "createSlaPolicy": (
        """mutation { createSlaPolicy(input: {name: "mine", targets: []}) {
        slaPolicy { id } userErrors { code } } }""",
        _v(),
    ),
    "activateSlaPolicy": (
        """mutation($sla: ID!) { activateSlaPolicy(id: $sla) {
        slaPolicy { id } userErrors { code } } }""",
        _v("sla"),
    ),
    "addComplaintCategory": (
        """mutation { addComplaintCategory(code: "mine", label: "Mine") {
        taxon { code } userErrors { code } } }""",
        _v(),
    ),
    "deactivateComplaintCategory": (
        """mutation { deactivateComplaintCategory(code: "delivery") {
        taxon { code } userErrors { code } } }""",
        _v(),
    ),
    "addRootCause": (
        """mutation { addRootCause(code: "mine", label: "Mine") {
        taxon { code } userErrors { code } } }""",
        _v(),
    ),
    "deactivateRootCause": (
        """mutation($rootCause: String!) { deactivateRootCause(code: $rootCause) {
        taxon { code } userErrors { code } } }""",
        _v("rootCause"),
    ),
    "inviteToSurvey": (
        """mutation($survey: ID!, $other: ID!) { inviteToSurvey(input: {surveyId: $survey,
        customerIds: [$other]}) { invitations { id customer { id } } skipped { customerId reason }
        userErrors { code } } }""",
        _v("survey", "other"),
    ),
    "mergeCustomers": (
        """mutation($own: ID!, $other: ID!) { mergeCustomers(survivorId: $own, duplicateId: $other) {
        survivor { id } userErrors { code } } }""",
        _v("own", "other"),
    ),
    "dismissDuplicatePair": (
        """mutation($own: ID!, $other: ID!) { dismissDuplicatePair(customerId: $own,
        otherId: $other) { changed pair { a { id } b { id } } userErrors { code } } }""",
        _v("own", "other"),
    ),
    "restoreDuplicatePair": (
        """mutation($own: ID!, $other: ID!) { restoreDuplicatePair(customerId: $own,
        otherId: $other) { changed userErrors { code } } }""",
        _v("own", "other"),
    ),
    "eraseCustomer": (
        "mutation($other: ID!) { eraseCustomer(id: $other) { erasedId erased userErrors { code } } }",
        _v("other"),
    ),
    "setCustomerConsent": (
        """mutation($other: ID!) { setCustomerConsent(customerId: $other, channel: EMAIL,
        given: true) { changed customer { id } userErrors { code } } }""",
        _v("other"),
    ),
    "verifyCustomerIdentity": (
        """mutation($other: ID!) { verifyCustomerIdentity(customerId: $other, attribute: EMAIL,
        value: "bruno.kunde@example.com") { matched attemptsLeft userErrors { code } } }""",
        _v("other"),
    ),
    "registerWebhookEndpoint": (
        """mutation($otherPartner: ID!) { registerWebhookEndpoint(input: {url: "https://hooks.example.com/a",
        eventTypes: [TIER_CHANGED], partnerId: $otherPartner}) { endpoint { id partnerId } secret userErrors { code } } }""",
        _v("otherPartner"),
    ),
    "updateWebhookEndpoint": (
        """mutation($otherEndpoint: ID!) { updateWebhookEndpoint(input: {id: $otherEndpoint,
        url: "https://evil.example.com/", rotateSecret: true}) { endpoint { id url } secret userErrors { code } } }""",
        _v("otherEndpoint"),
    ),
    "disableWebhookEndpoint": (
        """mutation($otherEndpoint: ID!) { disableWebhookEndpoint(id: $otherEndpoint) {
        endpoint { id enabled } userErrors { code } } }""",
        _v("otherEndpoint"),
    ),
    "deleteWebhookEndpoint": (
        """mutation($otherEndpoint: ID!) { deleteWebhookEndpoint(id: $otherEndpoint) {
        deletedId userErrors { code } } }""",
        _v("otherEndpoint"),
    ),
    "replayWebhookDelivery": (
        """mutation($otherDelivery: ID!) { replayWebhookDelivery(id: $otherDelivery) {
        delivery { id status } userErrors { code } } }""",
        _v("otherDelivery"),
    ),
    "addComplaintNote": (
        """mutation($c: ID!) { addComplaintNote(input: {id: $c, note: "confined"}) {
        complaint { id } userErrors { code } } }""",
        lambda ids: {"c": ids["otherComplaint"]},
    ),
    "assignComplaint": (
        """mutation($c: ID!) { assignComplaint(input: {id: $c, expectedVersion: 1, assignee: "mallory"}) {
        complaint { id } userErrors { code } } }""",
        lambda ids: {"c": ids["otherComplaint"]},
    ),
    "importCustomers": (
        """mutation { importCustomers(input: {rows: [{externalRef: "sw-0001", name: "Bruno Twin",
        email: "bruno.kunde@example.com"}]}) { summary { created existing duplicates }
        duplicates { candidates { id customer { id name } } } userErrors { code } } }""",
        _v(),
    ),
    "createCustomer": (
        """mutation { createCustomer(input: {name: "Confined New", externalRef: "sw-0001"}) {
        customer { id name } userErrors { code } } }""",
        _v(),
    ),
    "updateCustomer": (
        """mutation($other: ID!) { updateCustomer(input: {id: $other, expectedVersion: 1,
        name: "Hijacked"}) { customer { id name } userErrors { code } } }""",
        _v("other"),
    ),
    "deleteCustomer": (
        """mutation($other: ID!) { deleteCustomer(input: {id: $other, expectedVersion: 1}) {
        deletedId userErrors { code } } }""",
        _v("other"),
    ),
    "recordPurchases": (
        """mutation($other: ID!) { recordPurchases(input: {purchases: [{customerId: $other,
        amount: "1.00", externalId: "confined-1"}]}) { insertedCount userErrors { code } } }""",
        _v("other"),
    ),
    "recordRefunds": (
        """mutation($otherPurchase: ID!) { recordRefunds(input: {refunds: [{purchaseId: $otherPurchase,
        amount: "1.00", externalId: "confined-r1"}]}) { insertedCount refunds { id } userErrors { code } } }""",
        _v("otherPurchase"),
    ),
    "tierEconomics": (
        """{ tierEconomics(from: "2000-01-01T00:00:00Z", to: "2002-01-01T00:00:00Z") {
        rows { tier customers revenue } csv } }""",
        _v(),
    ),
    "tierEffect": (
        """{ tierEffect(tier: "silver", windowDays: 30) { tier outcomes { outcome below above effect } } }""",
        _v(),
    ),
    "benefitCatalogue": ("{ benefitCatalogue { policyVersion benefits { code tiers } } }", _v()),
    "benefitHoldout": (
        """{ benefitHoldout(tier: "silver") { treated { customers } held { customers } outcomes { outcome } } }""",
        _v(),
    ),
    "setTierPolicyHoldout": (
        """mutation($policy: ID!) { setTierPolicyHoldout(input: {policyId: $policy, expectedRevision: 1,
        share: "0.1", days: 30}) { catalogue { policyVersion } userErrors { code } } }""",
        _v("policy"),
    ),
    "setTierPolicyBenefits": (
        """mutation($policy: ID!) { setTierPolicyBenefits(input: {policyId: $policy, expectedRevision: 1,
        benefits: []}) { catalogue { policyVersion } userErrors { code } } }""",
        _v("policy"),
    ),
    "recordBenefitRedemptions": (
        """mutation($other: ID!) { recordBenefitRedemptions(input: {redemptions: [{customerId: $other,
        benefitCode: "any", externalId: "confined-b1"}]}) { insertedCount userErrors { code } } }""",
        _v("other"),
    ),
    "openComplaint": (
        """mutation($input: OpenComplaintInput!) { openComplaint(input: $input) {
        complaint { id } userErrors { code } } }""",
        lambda ids: {"input": complaint_input(ids["other"], "confined", externalId="confined-1")},
    ),
    "transitionComplaint": (
        """mutation($c: ID!) { transitionComplaint(input: {id: $c, expectedVersion: 1,
        to: OPEN}) { complaint { id } userErrors { code } } }""",
        lambda ids: {"c": ids["otherComplaint"]},
    ),
    "createSurvey": (
        """mutation { createSurvey(input: {title: "Mine", channels: [EMAIL],
        questions: [{kind: NPS, dimension: "nps", prompt: "?"}]}) { survey { id } userErrors { code } } }""",
        _v(),
    ),
    # teams: the staff's organisation (any team id: a partner is refused before it is looked up)
    "teams": ("{ teams { id name members } }", _v()),
    "createTeam": ('mutation { createTeam(name: "Partner team") { team { id } userErrors { code } } }', _v()),
    "renameTeam": (
        f'mutation {{ renameTeam(team: "{SOME_TEAM}", name: "Partner team") {{ team {{ id }} userErrors {{ code }} }} }}',
        _v(),
    ),
    "archiveTeam": (
        f'mutation {{ archiveTeam(team: "{SOME_TEAM}") {{ team {{ id }} activeComplaints userErrors {{ code }} }} }}',
        _v(),
    ),
    "addTeamMember": (
        f'mutation {{ addTeamMember(team: "{SOME_TEAM}", user: "mallory") {{ team {{ id }} userErrors {{ code }} }} }}',
        _v(),
    ),
    "removeTeamMember": (
        f'mutation {{ removeTeamMember(team: "{SOME_TEAM}", user: "bob") {{ team {{ id }} userErrors {{ code }} }} }}',
        _v(),
    ),
    "submitSurveyResponse": (
        """mutation($survey: ID!, $other: ID!, $nps: ID!) { submitSurveyResponse(input: {
        surveyId: $survey, customerId: $other, channel: EMAIL, answers: [{questionId: $nps, score: 1}]}) {
        response { id } userErrors { code } } }""",
        _v("survey", "other", "nps"),
    ),
}


def schema_operations() -> set[str]:
    schema = build_schema()._schema
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    return set(schema.query_type.fields) | set(schema.mutation_type.fields)


def test_every_operation_has_a_call() -> None:
    """A new Query or Mutation field fails here until it has a call (and so a confinement decision)."""
    operations = schema_operations()
    assert operations - set(CALLS) == set(), f"operations without a call in CALLS: {sorted(operations - set(CALLS))}"
    assert set(CALLS) - operations == set(), f"calls of operations the schema lacks: {sorted(set(CALLS) - operations)}"


def _refused(body: dict[str, Any], op: str) -> bool:
    """Refused as a whole: an error with FORBIDDEN / NOT_FOUND at the operation, or a payload whose
    userErrors are all FORBIDDEN / NOT_FOUND."""
    codes = {e.get("extensions", {}).get("code") for e in body.get("errors") or [] if e.get("path") == [op]}
    if codes and codes <= REFUSED and (body.get("data") or {}).get(op) is None:
        return True
    payload = (body.get("data") or {}).get(op)
    if isinstance(payload, dict) and payload.get("userErrors"):
        return {e["code"] for e in payload["userErrors"]} <= REFUSED
    return False


async def _others_markers(fx: Fixture) -> list[str]:
    """Strings naming another partner's (or an unowned, staff-only) customer, complaint, token or partner."""
    w = fx.world
    rows = await sql(
        w.url,
        "SELECT id::text FROM customers WHERE partner_id IS DISTINCT FROM $1"
        " UNION ALL SELECT k.id::text FROM complaints k JOIN customers c ON c.id = k.customer_id"
        "  WHERE c.partner_id IS DISTINCT FROM $1"
        " UNION ALL SELECT id::text FROM api_tokens WHERE partner_id <> $1"
        " UNION ALL SELECT id::text FROM partners WHERE id <> $1"
        " UNION ALL SELECT name FROM partners WHERE id <> $1",
        w.partner_a,
    )
    hooks = await sql(
        w.url,
        "SELECT w.id::text, d.id::text FROM webhook_endpoints w LEFT JOIN webhook_deliveries d ON d.endpoint_id = w.id"
        " WHERE w.partner_id IS DISTINCT FROM $1",
        w.partner_a,
    )
    return [
        *(r[0] for r in rows),
        *(gid("WebhookEndpoint", r[0]) for r in hooks),
        *(gid("WebhookDelivery", r[1]) for r in hooks if r[1] is not None),
        w.bruno, w.ada, w.bruno_complaint, w.ada_complaint,
        BRUNO.name, BRUNO.email, ADA.name, ADA.email, BRUNO_COMPLAINT, ADA_COMPLAINT,
    ]  # fmt: skip


async def _answer_is_own(fx: Fixture, op: str, data: Any) -> list[str]:
    """Counts an answer carries are at most the partner's own (a count equal to a global one otherwise)."""
    own_customers = await fx.own(
        "SELECT count(*) FROM customers WHERE partner_id = $1 AND deleted_at IS NULL AND merged_into_id IS NULL"
    )
    own_complaints = await fx.own(
        "SELECT count(*) FROM complaints k JOIN customers c ON c.id = k.customer_id WHERE c.partner_id = $1"
    )
    own_responses = await fx.own(
        "SELECT count(*) FROM survey_responses r JOIN customers c ON c.id = r.customer_id WHERE c.partner_id = $1"
    )
    problems: list[str] = []

    def at_most(value: Any, limit: int, what: str) -> None:
        if value is not None and value > limit:
            problems.append(f"{op}: {what} = {value} > own {limit}")

    if data is None:
        return problems
    if op == "customers":
        at_most(data["totalCount"], own_customers, "totalCount")
    elif op == "complaints":
        at_most(data["totalCount"], own_complaints, "totalCount")
    elif op == "churnQueue":
        at_most(data["totalCount"], own_customers, "totalCount")
    elif op == "complaintQueue":
        at_most(data["totalCount"], own_complaints, "totalCount")
    elif op == "tierDistribution":
        at_most(data["customers"], own_customers, "customers")
    elif op == "tierEconomics":
        at_most(sum(r["customers"] for r in data["rows"]), own_customers, "customers")
    elif op == "tierEffect":
        at_most(max((o["below"] + o["above"] for o in data["outcomes"]), default=0), own_customers, "customers")
    elif op == "benefitHoldout":
        at_most(data["treated"]["customers"] + data["held"]["customers"], own_customers, "holdout customers")
    elif op == "tierMigrations":
        at_most(data["customers"], own_customers, "customers")
    elif op == "dataQualityReport":
        at_most(data["liveCustomers"], own_customers, "liveCustomers")
        at_most(data["metricsStaleness"]["customers"], own_customers, "staleness customers")
    elif op == "reports":
        c = data["complaints"]
        if c is not None:
            for row in c["perThousandCustomers"]:
                at_most(row["customers"], own_customers, "perThousand customers")
            at_most(sum(r["complaints"] for r in c["perThousandCustomers"]), own_complaints, "complaints")
            at_most(sum(r["complaints"] for r in c["topRootCauses"]), own_complaints, "root-cause complaints")
        if data["surveyScores"] is not None:
            at_most(sum(r["responses"] for r in data["surveyScores"]), own_responses, "survey responses")
        if data["fairness"] is not None:
            at_most(sum(t["customers"] for t in data["fairness"]["tiers"]), own_customers, "fairness customers")
            at_most(sum(t["complaints"] for t in data["fairness"]["tiers"]), own_complaints, "fairness complaints")
        if data["churnRisk"] is not None:
            at_most(sum(r["customers"] for r in data["churnRisk"]["levels"]), own_customers, "churn customers")
    elif op == "apiTokens":
        others = [t for t in data if t["partnerId"] != str(fx.world.partner_a)]
        if others:
            problems.append(f"apiTokens: other partners' tokens {others}")
    elif op == "auditLog":
        mine = {
            f"token:{r[0]}"
            for r in await sql(fx.world.url, "SELECT id FROM api_tokens WHERE partner_id = $1", fx.world.partner_a)
        }
        foreign = {e["node"]["actor"] for e in data["edges"]} - mine
        if foreign:
            problems.append(f"auditLog: entries of other actors {sorted(foreign)}")
    return problems


async def _others_state(fx: Fixture) -> list[Any]:
    """Everything of the other partner (and of the whole system) that a confined write could change."""
    w = fx.world
    return [
        await sql(
            w.url,
            "SELECT id, version, name, deleted_at, erased_at, merged_into_id, tier_override_code,"
            " consent_email_at FROM customers WHERE partner_id IS DISTINCT FROM $1 ORDER BY id",
            w.partner_a,
        ),
        await sql(
            w.url,
            "SELECT k.id, k.version, k.status FROM complaints k JOIN customers c ON c.id = k.customer_id"
            " WHERE c.partner_id IS DISTINCT FROM $1 ORDER BY k.id",
            w.partner_a,
        ),
        await sql(
            w.url,
            "SELECT p.id FROM purchases p JOIN customers c ON c.id = p.customer_id"
            " WHERE c.partner_id IS DISTINCT FROM $1 ORDER BY p.id",
            w.partner_a,
        ),
        await sql(
            w.url,
            "SELECT r.id, r.amount FROM refunds r JOIN customers c ON c.id = r.customer_id"
            " WHERE c.partner_id IS DISTINCT FROM $1 ORDER BY r.id",
            w.partner_a,
        ),
        await sql(
            w.url,
            "SELECT id, revoked_at, rate_limit_per_minute FROM api_tokens WHERE partner_id <> $1 ORDER BY id",
            w.partner_a,
        ),
        await sql(w.url, "SELECT count(*) FROM api_tokens"),
        await sql(w.url, "SELECT ptype, v0, v1, v2, v3 FROM casbin_rules ORDER BY id"),
        await sql(w.url, "SELECT id, status FROM tier_policies ORDER BY id"),
        await sql(w.url, "SELECT id, status FROM sla_policies ORDER BY id"),
        await sql(w.url, "SELECT code, active FROM complaint_categories ORDER BY code"),
        await sql(w.url, "SELECT code, active FROM root_causes ORDER BY code"),
        await sql(w.url, "SELECT count(*) FROM surveys"),
        await sql(w.url, "SELECT count(*) FROM survey_invitations"),
        await sql(w.url, "SELECT count(*) FROM duplicate_dismissals"),
        await sql(w.url, "SELECT name FROM partners ORDER BY name"),
        await sql(
            w.url,
            "SELECT id, url, enabled, version, secret FROM webhook_endpoints"
            " WHERE partner_id IS DISTINCT FROM $1 ORDER BY id",
            w.partner_a,
        ),
        await sql(w.url, "SELECT id, status, attempts FROM webhook_deliveries ORDER BY id"),
    ]


@pytest.mark.parametrize("role", SHIPPED_ROLES)
async def test_a_partner_token_of_every_role_stays_in_its_partner(fx: Fixture, role: str) -> None:
    token = fx.tokens[role]
    markers = await _others_markers(fx)
    before = await _others_state(fx)
    problems: list[str] = []
    refused: list[str] = []
    answers: dict[str, Any] = {}
    for op, (document, variables) in CALLS.items():
        sent = variables(fx.ids)
        body = answers[op] = await fx.world.api.gql(token, document, sent)
        assert body["_status"] == 200, (op, body)
        codes = {e.get("extensions", {}).get("code") for e in body.get("errors") or []}
        if "INTERNAL" in codes or "INTERNAL_SERVER_ERROR" in codes:
            problems.append(f"{op}: INTERNAL {body['errors']}")
            continue
        if _refused(body, op):
            refused.append(op)
            continue
        # an id the caller sent may come back as sent (inviteToSurvey skips it as "not_found", exactly like
        # an unknown id); anything else of another partner may not
        text = json.dumps(body.get("data"), ensure_ascii=False)
        echoed = json.dumps(sent)
        leaked = [m for m in markers if m in text and m not in echoed]
        if leaked:
            problems.append(f"{op}: answer names another partner's {leaked}")
        problems += await _answer_is_own(fx, op, (body.get("data") or {}).get(op))
    assert problems == [], "\n".join(problems)
    assert await _others_state(fx) == before, "a confined call changed another partner's or the system's data"
    # the operations without a partner scope are refused to every role, the admin role included
    for op in (
        "roles",
        "policies",
        "accessMatrix",
        "explainAccess",
        "createRole",
        "grantAccess",
        "assignRole",
        "createTierPolicyDraft",
        "activateTierPolicy",
        "setPartnerTokenRateLimit",
        "setPartnerTokenArbitraryDocuments",
        "createSurvey",
        "tierRuns",
        "simulateTierPolicy",
        "setTierPolicyBenefits",
        "setTierPolicyHoldout",
        "teams",
        "createTeam",
        "renameTeam",
        "archiveTeam",
        "addTeamMember",
        "removeTeamMember",
    ):
        assert op in refused, (op, role, answers.get(op))
    # and what aims at the other partner's objects is refused
    for op in (
        "customer",
        "node",
        "complaint",
        "exportCustomerData",
        "updateCustomer",
        "deleteCustomer",
        "eraseCustomer",
        "setCustomerConsent",
        "verifyCustomerIdentity",
        "mergeCustomers",
        "addComplaintNote",
        "assignComplaint",
        "revokePartnerToken",
        "createPartnerToken",
        "overrideCustomerTier",
        "transitionComplaint",
        "openComplaint",
        "submitSurveyResponse",
        "registerWebhookEndpoint",
        "updateWebhookEndpoint",
        "disableWebhookEndpoint",
        "deleteWebhookEndpoint",
        "replayWebhookDelivery",
        "recordRefunds",
        "recordBenefitRedemptions",
    ):
        assert op in refused, (op, role, answers.get(op))
