"""One settings class, read from the environment (prefix ``TIERWISE_``) at startup, never at import."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra import keys


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class DocumentsMode(StrEnum):
    ANY = "any"  # any valid document; registered ones may also be sent by hash
    TRUSTED = "trusted"  # only registered documents (partner tokens may be allowed arbitrary ones)


DEV_JWT_SECRET = "tierwise-development-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERWISE_", env_file=".env", extra="ignore")

    # Every field has a description: the docs' configuration table is generated from them
    # (scripts/mkdocs_hooks.py; `mkdocs build --strict` fails on a field without one).
    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        description="`production` turns off GraphiQL, introspection and suggestions, and requires real JWT and "
        "encryption keys",
    )

    # Database. Unset: an embedded PostgreSQL (pgserver) under ``embedded_pg_dir``.
    database_url: str | None = Field(
        default=None,
        description="`postgresql://user:pass@host:5432/db`; unset: an embedded PostgreSQL (pgserver) in "
        "`TIERWISE_EMBEDDED_PG_DIR`",
    )
    embedded_pg_dir: Path = Field(
        default=Path(".tierwise/pgdata"), description="data folder of the embedded PostgreSQL"
    )
    db_pool_size: int = Field(default=10, description="connections kept in the pool")
    db_max_overflow: int = Field(default=5, description="connections opened beyond the pool under load")
    db_pool_timeout_s: float = Field(
        default=5.0,
        description="seconds to wait for a free connection; then `SERVICE_UNAVAILABLE` at once, not a hang",
    )
    # (one round trip; under load that ping was ~8% of a small request)
    db_ping_idle_s: float = Field(
        default=1.0,
        description="a pooled connection idle longer than this is pinged before use and replaced if dead; one "
        "reused sooner is not (if it died meanwhile its request fails with `SERVICE_UNAVAILABLE`)",
    )
    statement_timeout_ms: int = Field(default=15_000, description="a statement running longer is cancelled: `TIMEOUT`")

    # Staff JWTs.
    jwt_algorithm: str = Field(default="HS256", description="`HS256` (development) or `RS256` (production)")
    jwt_secret: SecretStr = Field(
        default=SecretStr(DEV_JWT_SECRET),
        description="HS256 key; the development default is refused in production",
    )
    jwt_public_key: str | None = Field(default=None, description="PEM public key, for RS256")
    jwt_private_key: str | None = Field(
        default=None, description="PEM private key, only for `tierwise token issue` with RS256"
    )
    jwt_key_id: str | None = Field(default=None, description="when set, tokens must carry this `kid`")
    jwt_issuer: str = Field(default="tierwise", description="required `iss` of staff tokens")
    jwt_audience: str = Field(default="tierwise-api", description="required `aud` of staff tokens")
    jwt_ttl_s: int = Field(default=3600, description="lifetime of tokens made by `tierwise token issue`")
    jwt_leeway_s: int = Field(default=30, description="clock skew allowed when checking `exp`, `iat` and `nbf`")

    # Encryption at rest (infra/crypto.py). Unset outside production: fixed development keys.
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="`<key id>:<base64 of 32 bytes>`, comma-separated; every key that still encrypts a value "
        "must be listed. Required in production",
    )
    encryption_key_id: str | None = Field(
        default=None, description="the key new writes use (default: the last one listed)"
    )
    blind_index_key: SecretStr | None = Field(
        default=None,
        description="base64 of 32 bytes, the HMAC key of the blind indexes; changing it means recomputing every "
        "index. Required in production",
    )

    # Limits.
    max_page_size: int = Field(default=100, description="largest `first` of a connection")
    default_page_size: int = Field(default=20, description="page size when `first` is not given")
    max_batch_size: int = Field(
        default=1000,
        description="items per batch write (`recordPurchases`, `recordRefunds`, `recordBenefitRedemptions`)",
    )
    # The economics report (issue 15): what an hour of complaint handling and a survey response cost.
    service_hourly_cost: Decimal = Field(
        default=Decimal("40.00"), ge=0, description="cost of one hour of complaint handling, in the economics report"
    )
    survey_cost: Decimal = Field(
        default=Decimal("0.50"), ge=0, description="cost of one survey response, in the economics report"
    )
    economics_compact_cron: str = Field(
        default="* * * * *",
        description="schedule of the job that folds the pending deltas of the economics report's summaries, and "
        "of the survey-score and fairness reports' (migration 0027), into the summaries (once per tick across "
        "instances; the reports are exact either way, pending deltas only slow them)",
    )

    # Domain defaults.
    currency: str = Field(default="EUR", description="currency of a purchase that names none")
    default_phone_region: str = Field(
        default="DE", description="region of phone numbers written without `+` (ISO 3166 code)"
    )

    # Jobs (procrastinate).
    run_worker: bool = Field(
        default=True,
        description="run a job worker inside `tierwise serve` (else run `tierwise worker` apart)",
    )
    worker_concurrency: int = Field(default=1, description="jobs a worker runs at the same time")

    host: str = Field(default="127.0.0.1", description="address `tierwise serve` listens on")
    port: int = Field(default=8000, description="port `tierwise serve` listens on")

    # Complaints, surveys and churn (issue 5).
    sla_sweep_cron: str = Field(
        default="*/5 * * * *",
        description="schedule of the SLA sweep: breaches, escalations, auto-close (once per tick across instances)",
    )
    sla_auto_close_days: int = Field(
        default=7, ge=1, description="resolved complaints close by themselves after this many days"
    )
    sla_escalate_critical_at: float = Field(
        default=0.5, gt=0, le=1, description="share of a critical complaint's time after which it escalates"
    )
    survey_throttle_days: int = Field(
        default=14, ge=0, description="no customer is invited more often, across surveys and channels"
    )
    survey_periodic_days: int = Field(default=180, ge=1, description="interval of periodic surveys")
    survey_purchase_delay_hours: int = Field(
        default=48, ge=0, description="purchase surveys go out this long after the purchase"
    )
    survey_invite_cron: str = Field(default="*/15 * * * *", description="schedule of the survey trigger job")
    survey_invite_batch: int = Field(
        default=500, ge=1, description="invitations per run of the trigger job (spreads waves)"
    )
    churn_cron: str = Field(
        default="47 3 * * *", description="schedule of the nightly churn re-score (after the nightly re-tier)"
    )

    # Hardening (issue 6): limits checked before execution (QUERY_TOO_COMPLEX) and on the transport.
    max_query_depth: int = Field(default=12, description="deepest selection a document may have")
    max_aliases: int = Field(default=30, description="aliases per document")
    max_tokens: int = Field(
        default=4000, description="lexical tokens (and comments) a document may have; parsing stops past it"
    )
    max_directives: int = Field(default=20, description="directives per document")
    max_query_cost: int = Field(
        default=12_000,
        description="estimated cost: each object a field returns costs 1, multiplied by `first` (capped at the "
        "page size) of every enclosing list (api/edge/limits.py)",
    )
    cost_default_list_size: int = Field(
        default=10, description="what a list without `first` is assumed to hold when estimating the cost"
    )
    max_input_string_length: int = Field(
        default=10_000, description="longest string argument or variable; NUL characters are refused too"
    )
    max_body_bytes: int = Field(
        default=1_048_576, description="largest request body; larger ones get 413 (also when chunked)"
    )
    db_connect_timeout_s: float = Field(default=5.0, description="seconds to connect to PostgreSQL")

    # Rate limits, in cost points per minute (an operation is charged its estimated cost, at least 1).
    rate_limit_enabled: bool = Field(default=True, description="charge operations against per-caller budgets")
    rate_limit_user_per_minute: int = Field(default=20_000, description="points a minute per staff user")
    rate_limit_partner_per_minute: int = Field(
        default=6_000,
        description="points a minute per partner token, unless an admin set the token's own limit",
    )
    rate_limit_lease_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="share of a caller's per-minute limit an instance leases from the shared bucket at a time and "
        "spends without asking PostgreSQL again (0: every operation is charged in PostgreSQL)",
    )
    rate_limit_lease_s: float = Field(
        default=1.0,
        gt=0,
        description="seconds an instance may spend a leased slice; then what is left goes back to the bucket. "
        "All instances together admit at most a bucket's limit plus this many seconds of its refill",
    )
    rate_limit_refusal_cost: int = Field(
        default=100,
        ge=1,
        description="points a refused document costs (syntax, validation or limit failure, untrusted document), "
        "or all the bucket holds if less: schema guessing meets the budget after a few hundred refusals",
    )

    # The HTTP edge (docs/sec-edge.md).
    auth_failure_limit: int = Field(
        default=30,
        ge=1,
        description="failed authentications per client address (uvicorn's, X-Forwarded-For behind a trusted "
        "proxy) within the window; past it: 429 with Retry-After, without a token lookup",
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, description="the window of `auth_failure_limit`, in seconds"
    )
    allow_get_queries: bool | None = Field(
        default=None,
        description="queries over GET (mutations never): unset means on in development, off in production",
    )
    documents_mode: DocumentsMode = Field(
        default=DocumentsMode.ANY,
        description="`any`: any valid document runs (registered ones may be sent by hash); `trusted`: only "
        "documents registered with `tierwise documents register`, except for partner tokens allowed arbitrary ones",
    )
    documents_poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="seconds between checks of the registered documents' version, behind LISTEN/NOTIFY",
    )
    max_validation_errors: int = Field(
        default=10, ge=1, description="validation errors reported per document (identical messages once)"
    )
    max_variables_depth: int = Field(
        default=20, ge=1, description="how deep `variables` may nest (checked without recursion, 400 beyond)"
    )
    max_variables_values: int = Field(
        default=50_000, ge=1, description="how many values `variables` may hold in all (400 beyond)"
    )

    # Tested differentially against strawberry's path: the same answers, errors and audit rows.
    compiled_queries: bool = Field(
        default=True,
        description="read queries run as one SQL statement per root field that builds the JSON in PostgreSQL "
        "(api/graphql/compiler.py; what it does not cover: strawberry) instead of strawberry's per-field "
        "resolution",
    )
    # Measured: ~2 ms of GC per page of 50 customers without it, ~0.3 ms with it (bench/results/profile_hot.md).
    gc_freeze: bool = Field(
        default=True,
        description="after startup, `gc.freeze()` keeps the long-lived objects (schema, plans, policy, pools) "
        "out of the cyclic collector's full passes",
    )

    # Data quality (issue 8).
    duplicate_criteria: str = Field(
        default="email,phone,name_dob",
        description="what makes two customers duplicate candidates: any of `email`, `phone`, `national_id`, "
        "`name_dob` (same name and birth date)",
    )
    quality_required_fields: str = Field(
        default="email,phone,birth_date,address",
        description="fields `dataQualityReport` counts as missing (also `national_id`, `locale`, `external_ref`)",
    )
    metrics_stale_days: int = Field(
        default=2, ge=1, description="metrics older than this count as stale in `dataQualityReport`"
    )

    # Identity checks (verifyCustomerIdentity, issue 17): attempts per (caller, customer) within the
    # window, kept in PostgreSQL so that every instance shares them; a spent allowance refills evenly
    # over the window (one attempt every window/attempts seconds).
    verify_attempts: int = Field(
        default=5, ge=1, description="`verifyCustomerIdentity` checks a caller may make of one customer per window"
    )
    verify_window_s: int = Field(
        default=3600, ge=1, description="the window of `verify_attempts`, in seconds (refilled evenly over it)"
    )

    # Webhooks (issue 16, infra/webhooks.py): retries with exponential backoff, then the delivery fails (it
    # can be replayed); a run of failed attempts disables the endpoint.
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="deliver webhooks to loopback, private, link-local and other non-public addresses (checked "
        "on the address resolved at each delivery); off: such targets fail without a connection",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="seconds a webhook receiver has to answer")
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="attempts of one webhook delivery before it is marked failed (replayable)"
    )
    webhook_retry_base_s: float = Field(
        default=30.0, gt=0, description="seconds before the first retry of a webhook; doubled at every retry"
    )
    webhook_retry_max_s: float = Field(default=6 * 3600.0, gt=0, description="the longest wait between two attempts")
    webhook_disable_after: int = Field(
        default=20, ge=1, description="failed attempts in a row (over all its deliveries) that disable an endpoint"
    )
    # Retention: events and their delivery log are purged once old and finished (infra/webhooks.py).
    event_retention_days: int = Field(
        default=30,
        ge=1,
        description="days an event and its webhook delivery log are kept; older ones are deleted by the retention "
        "job once none of their deliveries is pending (a failed delivery can no longer be replayed then)",
    )
    event_retention_cron: str = Field(
        default="23 4 * * *", description="schedule of the event retention job (once per tick across instances)"
    )
    # Finished jobs (a row each in procrastinate_jobs, with its events) are purged once old (infra/jobs.py).
    job_retention_days: int = Field(
        default=7,
        ge=1,
        description="days a finished job (succeeded, cancelled or aborted) of the tierwise queues is kept; failed "
        "ones are kept until their queue's own retention or by hand (they want a look)",
    )
    job_retention_cron: str = Field(
        default="37 4 * * *", description="schedule of the job retention job (once per tick across instances)"
    )

    subscription_reauth_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds between two checks of a subscription socket's token: a revoked or expired token "
        "(or a change of its roles) closes the socket",
    )

    # Observability. Tracing is switched on by the standard OTEL_* variables, not by these.
    log_format: str = Field(
        default="auto", description="`json`, `text`, or `auto` (JSON in production, text otherwise)"
    )
    log_level: str = Field(default="INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`")
    metrics_token: SecretStr | None = Field(
        default=None, description="when set, `GET /metrics` needs `Authorization: Bearer <it>`"
    )

    # Serving.
    shutdown_grace_s: float = Field(
        default=20.0, description="seconds `tierwise serve` waits for requests in flight after SIGTERM"
    )
    keep_alive_timeout_s: float = Field(default=5.0, description="seconds an idle HTTP keep-alive connection is kept")

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.jwt_algorithm == "HS256" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("TIERWISE_JWT_SECRET must be set in production (or use RS256)")
            if self.encryption_keys is None or self.blind_index_key is None:
                raise ValueError("TIERWISE_ENCRYPTION_KEYS and TIERWISE_BLIND_INDEX_KEY must be set in production")
            if keys.uses_development_keys(
                self.encryption_keys.get_secret_value(), self.blind_index_key.get_secret_value()
            ):
                raise ValueError("the development encryption keys cannot be used in production")
        keys.KeyConfig.configured(  # key syntax, lengths and the current key id, checked at startup
            self.encryption_keys.get_secret_value() if self.encryption_keys else None,
            self.blind_index_key.get_secret_value() if self.blind_index_key else None,
            self.encryption_key_id,
        )
        from domain.quality import DUPLICATE_CRITERIA, REPORTABLE_FIELDS, parse_names

        parse_names(self.duplicate_criteria, DUPLICATE_CRITERIA, "TIERWISE_DUPLICATE_CRITERIA")
        parse_names(self.quality_required_fields, REPORTABLE_FIELDS, "TIERWISE_QUALITY_REQUIRED_FIELDS")
        if self.jwt_algorithm not in ("HS256", "RS256"):
            raise ValueError("TIERWISE_JWT_ALGORITHM must be HS256 or RS256")
        if self.jwt_algorithm == "RS256" and not self.jwt_public_key:
            raise ValueError("TIERWISE_JWT_PUBLIC_KEY is required with RS256")
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def get_queries_allowed(self) -> bool:
        return not self.is_production if self.allow_get_queries is None else self.allow_get_queries

    @property
    def trusted_documents_only(self) -> bool:
        return self.documents_mode is DocumentsMode.TRUSTED

    @property
    def generic_validation_messages(self) -> bool:
        """Validation messages name only what the document itself contains (no schema names)."""
        return self.is_production or self.trusted_documents_only
