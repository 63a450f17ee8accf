"""events out (issue 16): the outbox, webhook endpoints and their delivery log, the fan-out trigger, grants.

- events: the outbox. One row per event (type, the customer it concerns and that customer's partner at
  the time, ``data``: ids and non-sensitive facts), inserted by the statement that makes the change, in
  its transaction (infra/repos/events.py): it exists if and only if the change committed.
- webhook_endpoints: URL, event types, the signing secret (encrypted at rest, bound to its row like every
  encrypted value), the partner whose customers' events it receives (NULL: staff, every event), whether
  it is enabled and the run of failed attempts that disables it.
- webhook_deliveries: one row per (endpoint, event), unique: status, attempts, the last answer, when the
  next attempt is due.
- tierwise_events_fan_out(): an AFTER INSERT statement trigger on events (its transition table), in the
  same transaction: a delivery row for every enabled endpoint subscribed to the type (a partner's endpoint
  only for its own customers' events), one procrastinate job per delivery (queue ``tierwise_webhooks``),
  and a ``pg_notify('tierwise_events', …)`` per event that PostgreSQL sends at commit only, for the
  GraphQL subscriptions of every instance.
- Grants: the webhook operations and types, and the events subscription, to the partner role (its endpoints are confined to its
  partner, api/usecases/events.py); admins hold '*' already (the explicit rows keep the grant if that rule
  is ever narrowed).

Revision ID: 0016
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import add_policy_rules, remove_policy_rules

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPERATIONS_READ = (
    "Query.webhookEndpoints",
    "Query.webhookDeliveries",
    "WebhookEndpoint.*",
    "WebhookDelivery.*",
    "Subscription.events",
    "Event.*",
)
_OPERATIONS_WRITE = (
    "Mutation.registerWebhookEndpoint",
    "Mutation.updateWebhookEndpoint",
    "Mutation.disableWebhookEndpoint",
    "Mutation.deleteWebhookEndpoint",
    "Mutation.replayWebhookDelivery",
)
POLICIES: list[tuple[str, str, str, str]] = [
    *[(f"role:{role}", obj, "read", "allow") for role in ("partner", "admin") for obj in _OPERATIONS_READ],
    *[(f"role:{role}", obj, "write", "allow") for role in ("partner", "admin") for obj in _OPERATIONS_WRITE],
]

_TABLES = """
CREATE TABLE events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq bigint GENERATED ALWAYS AS IDENTITY,
    type text NOT NULL,
    customer_id uuid,
    partner_id uuid,
    data jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_events_seq UNIQUE (seq)
);
CREATE INDEX ix_events_occurred_at ON events (occurred_at);
CREATE INDEX ix_events_customer_id ON events (customer_id);

CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url text NOT NULL,
    event_types text[] NOT NULL,
    secret text NOT NULL,
    partner_id uuid REFERENCES partners (id),
    description text,
    enabled boolean NOT NULL DEFAULT true,
    disabled_reason text,
    disabled_at timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1
);
CREATE INDEX ix_webhook_endpoints_partner_id ON webhook_endpoints (partner_id);

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id uuid NOT NULL REFERENCES events (id),
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error text,
    next_attempt_at timestamptz DEFAULT now(),
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_webhook_deliveries_status CHECK (status IN ('pending', 'delivered', 'failed')),
    CONSTRAINT uq_webhook_deliveries_endpoint_id UNIQUE (endpoint_id, event_id)
);
CREATE INDEX ix_webhook_deliveries_event_id ON webhook_deliveries (event_id);
CREATE INDEX ix_webhook_deliveries_endpoint_created ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
"""

_FAN_OUT = """
CREATE FUNCTION tierwise_events_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS (
        INSERT INTO webhook_deliveries (endpoint_id, event_id)
        SELECT w.id, e.id
        FROM new_events e
        JOIN webhook_endpoints w
          ON w.enabled AND e.type = ANY (w.event_types)
         AND (w.partner_id IS NULL OR w.partner_id = e.partner_id)
        RETURNING id
    )
    SELECT procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW('tierwise_webhooks', 'tierwise.webhook_deliver', 0, NULL, NULL,
                   jsonb_build_object('delivery_id', d.id::text), NULL)::procrastinate_job_to_defer_v1
        FROM d))
    INTO STRICT _unused_ids;
    PERFORM pg_notify('tierwise_events', jsonb_build_object(
                'id', e.id, 'type', e.type, 'partnerId', e.partner_id, 'data', e.data,
                'occurredAt', e.occurred_at)::text)
    FROM new_events e ORDER BY e.seq;
    RETURN NULL;
END
$$;
"""

_TRIGGER = """
CREATE TRIGGER events_fan_out AFTER INSERT ON events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION tierwise_events_fan_out();
"""


def upgrade() -> None:
    for statement in _TABLES.split(";"):  # one statement per call (asyncpg prepares each)
        if statement.strip():
            op.execute(statement)
    # plpgsql needs the INTO target declared: the job ids are not used
    op.execute(_FAN_OUT.replace("BEGIN\n", "DECLARE _unused_ids bigint[];\nBEGIN\n", 1))
    op.execute(_TRIGGER)
    conn = op.get_bind()
    add_policy_rules(conn, POLICIES)


def downgrade() -> None:
    conn = op.get_bind()
    remove_policy_rules(conn, POLICIES)
    op.execute("DROP TRIGGER events_fan_out ON events")
    op.execute("DROP FUNCTION tierwise_events_fan_out()")
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP TABLE webhook_endpoints")
    op.execute("DROP TABLE events")
