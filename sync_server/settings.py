"""Server settings, read from ``INTEGMED_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
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

    # Prescription signing (docs/signing_server.md): the issuing key (PEM, Ed25519) and its certificate from
    # the IntegMed root (`integmed-server keys issuer-create`), and the key-encryption key that seals the
    # server-held doctor keys at rest (base64url of 32 random bytes). Required in production; without them
    # the signing endpoints answer 503.
    signing_issuer_key: Path | None = None
    signing_issuer_cert: Path | None = None
    signing_kek: SecretStr | None = None
    signing_doctor_cert_days: int = Field(default=730, ge=1, le=3650)
    signing_rx_valid_days: int = Field(default=30, ge=1, le=365)

    @property
    def signing_configured(self) -> bool:
        return None not in (self.signing_issuer_key, self.signing_issuer_cert, self.signing_kek)

    def signing_kek_bytes(self) -> bytes:
        """The 32-byte key-encryption key (validated at start-up)."""
        if self.signing_kek is None:
            raise ValueError("INTEGMED_SIGNING_KEK is not set")
        return decode_kek(self.signing_kek.get_secret_value())

    @model_validator(mode="after")
    def _signing_settings(self) -> Settings:
        if self.signing_kek is not None:
            decode_kek(self.signing_kek.get_secret_value())
        for name in ("signing_issuer_key", "signing_issuer_cert"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"INTEGMED_{name.upper()} names no readable file: {path}")
        if self.environment == "production" and not self.signing_configured:
            raise ValueError(
                "INTEGMED_SIGNING_ISSUER_KEY, INTEGMED_SIGNING_ISSUER_CERT and INTEGMED_SIGNING_KEK must be set in "
                "production (see docs/signing_server.md)"
            )
        return self

    @model_validator(mode="after")
    def _no_default_secrets_outside_dev(self) -> Settings:
        if self.environment == "production":
            if self.jwt_secret.get_secret_value() == DEV_SECRET:
                raise ValueError("INTEGMED_JWT_SECRET must be set to a real secret in production")
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("INTEGMED_JWT_SECRET must be at least 32 characters")
        return self


def decode_kek(text: str) -> bytes:
    """A key-encryption key from its base64url text (padding optional); exactly 32 bytes."""
    try:
        text = text.strip()
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("INTEGMED_SIGNING_KEK must be base64url text") from exc
    if len(raw) != 32:
        raise ValueError(f"INTEGMED_SIGNING_KEK must decode to 32 bytes, not {len(raw)}")
    return raw
