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

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.jwt_algorithm == "HS256" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("TIERWISE_JWT_SECRET must be set in production (or use RS256)")
        if self.jwt_algorithm not in ("HS256", "RS256"):
            raise ValueError("TIERWISE_JWT_ALGORITHM must be HS256 or RS256")
        if self.jwt_algorithm == "RS256" and not self.jwt_public_key:
            raise ValueError("TIERWISE_JWT_PUBLIC_KEY is required with RS256")
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION
