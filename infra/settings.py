"""One settings class, read from the environment (prefix ``TIERWISE_``) at startup, never at import."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


DEV_JWT_SECRET = "tierwise-development-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERWISE_", env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT

    # Database. Unset: an embedded PostgreSQL (pgserver) under ``embedded_pg_dir``.
    database_url: str | None = Field(default=None, description="postgresql+asyncpg://user:pass@host:port/db")
    embedded_pg_dir: Path = Path(".tierwise/pgdata")
    db_pool_size: int = 10
    db_max_overflow: int = 5
    db_pool_timeout_s: float = 5.0
    # A pooled connection idle longer than this is pinged before use (one round trip) and replaced if
    # dead; one reused sooner is not (under load that ping was ~8% of a small request). A connection
    # that died meanwhile fails its request with SERVICE_UNAVAILABLE and is replaced.
    db_ping_idle_s: float = 1.0
    statement_timeout_ms: int = 15_000

    # Staff JWTs.
    jwt_algorithm: str = "HS256"  # HS256 (development) or RS256 (production)
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_public_key: str | None = None  # PEM, for RS256
    jwt_private_key: str | None = None  # PEM, only for `tierwise token issue` with RS256
    jwt_key_id: str | None = None  # when set, tokens must carry this `kid`
    jwt_issuer: str = "tierwise"
    jwt_audience: str = "tierwise-api"
    jwt_ttl_s: int = 3600
    jwt_leeway_s: int = 30

    # Encryption at rest (infra/crypto.py): "<key id>:<base64 32 bytes>,…"; new writes use
    # encryption_key_id (default: the last listed). Unset outside production: fixed development keys.
    encryption_keys: SecretStr | None = None
    encryption_key_id: str | None = None
    blind_index_key: SecretStr | None = None  # base64 of 32 bytes, for the blind indexes (HMAC)

    # Limits.
    max_page_size: int = 100
    default_page_size: int = 20
    max_batch_size: int = 1000

    # Domain defaults.
    currency: str = "EUR"
    default_phone_region: str = "DE"

    # Jobs (procrastinate): run a worker inside `tierwise serve` (or run `tierwise worker` apart).
    run_worker: bool = True
    worker_concurrency: int = 1

    host: str = "127.0.0.1"
    port: int = 8000

    # Complaints, surveys and churn (issue 5).
    sla_sweep_cron: str = "*/5 * * * *"  # breaches, escalations, auto-close
    sla_auto_close_days: int = Field(default=7, ge=1)  # resolved complaints close by themselves after this
    sla_escalate_critical_at: float = Field(default=0.5, gt=0, le=1)  # share of a critical clock used up
    survey_throttle_days: int = Field(default=14, ge=0)  # no customer invited more often, across channels
    survey_periodic_days: int = Field(default=180, ge=1)  # interval of periodic surveys
    survey_purchase_delay_hours: int = Field(default=48, ge=0)  # purchase surveys go out this long after
    survey_invite_cron: str = "*/15 * * * *"
    survey_invite_batch: int = Field(default=500, ge=1)  # invitations per run of the trigger job (spreads waves)
    churn_cron: str = "47 3 * * *"  # nightly re-score, after the nightly re-tier

    # Hardening (issue 6): limits checked before execution (QUERY_TOO_COMPLEX) and on the transport.
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 4000
    max_directives: int = 20
    max_query_cost: int = 12_000  # estimated: object fields, multiplied by `first` (see api/limits.py)
    cost_default_list_size: int = 10  # what a list without `first` is assumed to hold
    max_input_string_length: int = 10_000
    max_body_bytes: int = 1_048_576  # 413 above this
    db_connect_timeout_s: float = 5.0

    # Rate limits, in cost points per minute (an operation is charged its estimated cost, at least 1).
    # A partner token's own `rate_limit_per_minute` (set by admins) replaces the partner default.
    rate_limit_enabled: bool = True
    rate_limit_user_per_minute: int = 20_000
    rate_limit_partner_per_minute: int = 6_000

    # Read queries whose every field the compiled executor supports skip strawberry's per-field
    # resolution (api/fastpath.py); the same answers, errors and audit rows (tested differentially).
    compiled_queries: bool = True
    # After startup, move every object alive then (schema, plans, policy, pools) out of the cyclic
    # collector's reach (gc.freeze): a full collection then scans only what requests made. Measured:
    # ~2 ms of GC per page of 50 customers without it, ~0.3 ms with it (bench/results/profile_hot.md).
    gc_freeze: bool = True

    # Data quality (issue 8): duplicate criteria (email, phone, national_id, name_dob), the fields the
    # data-quality report counts as required, and when metrics count as stale.
    duplicate_criteria: str = "email,phone,name_dob"
    quality_required_fields: str = "email,phone,birth_date,address"
    metrics_stale_days: int = Field(default=2, ge=1)

    # Observability. Tracing is switched on by the standard OTEL_* variables, not by these.
    log_format: str = "auto"  # json, text, or auto (json in production, text otherwise)
    log_level: str = "INFO"
    metrics_token: SecretStr | None = None  # when set, GET /metrics needs `Authorization: Bearer <it>`

    # Serving: seconds `tierwise serve` waits for requests in flight after SIGTERM.
    shutdown_grace_s: float = 20.0
    keep_alive_timeout_s: float = 5.0

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        from infra import crypto

        if self.environment is Environment.PRODUCTION:
            if self.jwt_algorithm == "HS256" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("TIERWISE_JWT_SECRET must be set in production (or use RS256)")
            if self.encryption_keys is None or self.blind_index_key is None:
                raise ValueError("TIERWISE_ENCRYPTION_KEYS and TIERWISE_BLIND_INDEX_KEY must be set in production")
            if crypto.uses_development_keys(
                self.encryption_keys.get_secret_value(), self.blind_index_key.get_secret_value()
            ):
                raise ValueError("the development encryption keys cannot be used in production")
        crypto.Keyring.from_settings(self)  # key syntax, lengths and the current key id, checked at startup
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
