"""HPR (Healthcare Professionals Registry) client: mobile-OTP sign-in and professional profiles.

Shapes follow NHPR's published API (base ``…/v4/int``; ../shared/reference/abdm_hpr_fhir.md §6.2): a gateway
session token (``POST {gateway}/gateway/v3/sessions``) on every call, mobile and OTP encrypted with the
registry's RSA certificate (``GET /api/v1/auth/cert``, cipher ``RSA/ECB/PKCS1Padding``), sign-in via
``/api/v2/auth/loginViaMobileSendOTP`` → ``/api/v2/auth/login/userAuthorizedToken``, profile via
``/v1/account/information`` (HPR token in ``X-Token``) and ``/v1/search/searchByHprId/{hprId}``.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class HprError(Exception):
    """Base of what the registry can answer that is not success."""

    def __init__(self, message: str, *, code: str | None = None, remaining: int | None = None):
        super().__init__(message)
        self.code = code
        self.remaining = remaining


class HprMobileUnknown(HprError):
    """No professional holds this mobile number."""


class HprOtpInvalid(HprError):
    """Wrong OTP for the transaction."""


class HprOtpExpired(HprError):
    """The OTP (or its transaction) has expired or been used up."""


class HprUnavailable(HprError):
    """The registry or the gateway did not answer usefully (network, 5xx, bad credentials)."""


@dataclass(frozen=True)
class Professional:
    """A professional's registry record, as IntegMed stores it."""

    hpr_id: str  # 14 digits, no dashes
    hpr_address: str | None
    name: str
    mobile: str | None
    qualification: str | None
    system_of_medicine: str | None
    registration_council: str | None
    registration_number: str | None
    state: str | None
    category: str | None

    @classmethod
    def from_registry(cls, data: dict[str, Any]) -> Professional:
        return cls(
            hpr_id=str(data["hprIdNumber"]).replace("-", ""),
            hpr_address=data.get("hprId"),
            name=str(data["name"]),
            mobile=data.get("mobile"),
            qualification=data.get("qualification"),
            system_of_medicine=data.get("systemOfMedicine"),
            registration_council=data.get("registrationCouncil"),
            registration_number=data.get("registrationNumber"),
            state=data.get("stateName"),
            category=data.get("category"),
        )


def _timestamp() -> str:
    # The gateway rejects IST and wants UTC with milliseconds and Z (reference §1.4).
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}Z"


def _error_code(body: Any) -> tuple[str | None, str]:
    """Pull (code, message) out of the several error shapes the registry uses (reference §1.4)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code")
        message = inner.get("message") or inner.get("description") or ""
        return (str(code).rstrip(": ") if code else None), str(message)
    return None, str(body)[:200]


class HprClient:
    """Async client; one instance per server process (created in the app's lifespan)."""

    def __init__(
        self, http: httpx.AsyncClient, *, hpr_url: str, gateway_url: str, client_id: str, client_secret: str
    ) -> None:
        self._http = http
        self._hpr = hpr_url.rstrip("/")
        self._gateway = gateway_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._session: tuple[str, float] | None = None
        self._cert: rsa.RSAPublicKey | None = None
        self._lock = asyncio.Lock()

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise HprUnavailable(f"HPR registry unreachable: {type(exc).__name__}") from exc

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "REQUEST-ID": str(uuid.uuid4()),
            "TIMESTAMP": _timestamp(),
        }

    async def _gateway_token(self) -> str:
        async with self._lock:
            if self._session and self._session[1] > time.monotonic():
                return self._session[0]
            resp = await self._request(
                "POST",
                f"{self._gateway}/gateway/v3/sessions",
                json={
                    "clientId": self._client_id,
                    "clientSecret": self._client_secret,
                    "grantType": "client_credentials",
                },
                headers={"REQUEST-ID": str(uuid.uuid4()), "TIMESTAMP": _timestamp(), "X-CM-ID": "sbx"},
            )
            if resp.status_code != 200:
                raise HprUnavailable(f"ABDM gateway session refused ({resp.status_code})")
            body = resp.json()
            # Refresh 30 s early; `expiresIn` is read every time because its unit is disputed (ref §1.2).
            self._session = (body["accessToken"], time.monotonic() + max(30, int(body["expiresIn"]) - 30))
            return self._session[0]

    async def _public_key(self, token: str) -> rsa.RSAPublicKey:
        if self._cert is None:
            resp = await self._request("GET", f"{self._hpr}/api/v1/auth/cert", headers=self._headers(token))
            if resp.status_code != 200:
                raise HprUnavailable(f"HPR certificate not available ({resp.status_code})")
            text = resp.text.strip()
            der = base64.b64decode("".join(line for line in text.splitlines() if "-----" not in line))
            key = serialization.load_der_public_key(der)
            if not isinstance(key, rsa.RSAPublicKey):
                raise HprUnavailable("HPR certificate is not an RSA key")
            self._cert = key
        return self._cert

    async def _encrypt(self, token: str, value: str) -> str:
        key = await self._public_key(token)
        return base64.b64encode(key.encrypt(value.encode(), padding.PKCS1v15())).decode()

    async def _call(
        self, method: str, path: str, *, json: Any = None, extra_headers: dict[str, str] | None = None
    ) -> httpx.Response:
        token = await self._gateway_token()
        headers = self._headers(token) | (extra_headers or {})
        resp = await self._request(method, f"{self._hpr}{path}", json=json, headers=headers)
        if resp.status_code == 401 and _error_code(_json(resp))[0] == "900902":
            # Gateway token expired or revoked early: drop it and retry once (ref §1.2). Only for that code,
            # so a business 401 is never sent twice (an OTP guess must count once).
            self._session = None
            token = await self._gateway_token()
            headers = self._headers(token) | (extra_headers or {})
            resp = await self._request(method, f"{self._hpr}{path}", json=json, headers=headers)
        if resp.status_code >= 500:
            raise HprUnavailable(f"HPR registry error ({resp.status_code})")
        return resp

    async def send_mobile_otp(self, mobile: str) -> str:
        """Ask the registry to send an OTP to a professional's mobile. Returns the registry's txnId."""
        token = await self._gateway_token()
        enc = await self._encrypt(token, mobile.removeprefix("+91"))
        resp = await self._call("POST", "/api/v2/auth/loginViaMobileSendOTP", json={"mobile": enc})
        if resp.status_code == 200:
            return str(resp.json()["txnId"])
        code, message = _error_code(_json(resp))
        if resp.status_code in (404, 422) and code == "HIS-1041":
            raise HprMobileUnknown(message, code=code)
        raise HprUnavailable(f"HPR refused the OTP request ({resp.status_code} {code}: {message})", code=code)

    async def verify_mobile_otp(self, txn_id: str, otp: str) -> str:
        """Check the OTP with the registry. Returns the professional's HPR token."""
        token = await self._gateway_token()
        enc = await self._encrypt(token, otp)
        resp = await self._call("POST", "/api/v2/auth/login/userAuthorizedToken", json={"txnId": txn_id, "otp": enc})
        if resp.status_code == 200:
            return str(resp.json()["token"])
        body = _json(resp)
        code, message = _error_code(body)
        remaining = body.get("remainingAttempts") if isinstance(body, dict) else None
        if code == "HIS-2001":
            raise HprOtpInvalid(message, code=code, remaining=remaining)
        if code in ("HIS-2002", "HIS-2003"):
            raise HprOtpExpired(message, code=code)
        raise HprUnavailable(f"HPR refused the OTP ({resp.status_code} {code}: {message})", code=code)

    async def account(self, hpr_token: str) -> Professional:
        resp = await self._call(
            "GET", "/v1/account/information?masked=false", extra_headers={"X-Token": f"Bearer {hpr_token}"}
        )
        if resp.status_code != 200:
            raise HprUnavailable(f"HPR account information refused ({resp.status_code})")
        return Professional.from_registry(resp.json())

    async def search_by_hpr_id(self, hpr_id: str) -> Professional | None:
        """The public record of an HPR ID; None when the registry says it is invalid (HIS-3008)."""
        resp = await self._call("GET", f"/v1/search/searchByHprId/{hpr_id}")
        if resp.status_code == 200:
            return Professional.from_registry(resp.json())
        code, _ = _error_code(_json(resp))
        if code == "HIS-3008":
            return None
        raise HprUnavailable(f"HPR search refused ({resp.status_code} {code})")


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text
