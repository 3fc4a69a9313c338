"""Server settings, read from ``INTEGMED_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me-dev-only-secret-change-me"


class DatabaseSettings(BaseSettings):
    """Just the database: what `migrate` and `audit-verify` need (no secrets required)."""

    model_config = SettingsConfigDict(env_prefix="INTEGMED_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/integmed"


class Settings(DatabaseSettings):
    """Everything the server needs to start; validated once, passed to `create_app`."""

    environment: Literal["dev", "test", "production"] = "production"
    db_pool_min: int = 0  # no connection at start: the server comes up and /ready explains a down database
    db_pool_max: int = 10

    jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    jwt_issuer: str = "integmed"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600

    # National services: in dev and tests our sandbox plays both (sync_server/sandbox).
    abdm_gateway_url: str = "https://dev.abdm.gov.in/api/hiecm"
    hpr_url: str = "https://apihspsbx.abdm.gov.in/v4/int"
    abdm_client_id: str = "integmed-dev"
    abdm_client_secret: SecretStr = SecretStr("integmed-dev-secret")
    national_timeout_s: float = 15.0

    otp_ttl_s: int = 5 * 60
    otp_max_attempts: int = 5
    # Rate limits: at most N requests per window, per mobile and per client IP.
    otp_init_per_mobile: int = 5
    otp_init_per_ip: int = 30
    otp_verify_per_ip: int = 60
    rate_window_s: int = 15 * 60
    trust_forwarded_for: bool = False

    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    max_inflated_body_bytes: int = Field(default=8_000_000, ge=1024)

    @model_validator(mode="after")
    def _no_default_secrets_outside_dev(self) -> Settings:
        if self.environment == "production":
            if self.jwt_secret.get_secret_value() == DEV_SECRET:
                raise ValueError("INTEGMED_JWT_SECRET must be set to a real secret in production")
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("INTEGMED_JWT_SECRET must be at least 32 characters")
        return self
