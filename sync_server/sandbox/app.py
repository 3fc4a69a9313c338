"""The national-services sandbox: our stand-in for the ABDM gateway and the HPR registry.

It implements the published request/response shapes the production clients use (gateway sessions; NHPR
certificate, mobile-OTP sign-in, account information, search by HPR ID), with the registry's own rules
(OTP valid 5 minutes, 5 tries per transaction), and adds sandbox-only endpoints under ``/sandbox/``: the
list of sandbox professionals and the outbox of OTPs it "sent", so tests and demos can sign in. There is no
fixed magic OTP: every OTP is random.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

OTP_TTL_S = 300
OTP_MAX_TRIES = 5
SESSION_TTL_S = 1800
HPR_TOKEN_TTL_S = 1800
SANDBOX_CLIENTS = {"integmed-dev": "integmed-dev-secret"}


def load_professionals() -> list[dict[str, Any]]:
    text = resources.files("sync_server.sandbox").joinpath("professionals.json").read_text("utf-8")
    return list(json.loads(text)["professionals"])


@dataclass
class _Txn:
    mobile: str
    otp: str
    created: float
    tries: int = 0
    done: bool = False


@dataclass
class SandboxState:
    professionals: list[dict[str, Any]]
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    sessions: dict[str, float] = field(default_factory=dict)
    hpr_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    txns: dict[str, _Txn] = field(default_factory=dict)
    outbox: list[dict[str, str]] = field(default_factory=list)

    def by_mobile(self, mobile: str) -> dict[str, Any] | None:
        return next((p for p in self.professionals if p["mobile"] == mobile), None)

    def by_hpr_id(self, hpr_id: str) -> dict[str, Any] | None:
        key = hpr_id.replace("-", "")
        return next(
            (p for p in self.professionals if p["hprIdNumber"].replace("-", "") == key or p["hprId"] == hpr_id),
            None,
        )


Auth = Annotated[str | None, Header()]
XToken = Annotated[str | None, Header()]


def _err(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}, **extra}, status_code=status)


def create_sandbox_app(professionals: list[dict[str, Any]] | None = None) -> FastAPI:
    """Build the sandbox ASGI app (state lives in memory for the life of the process)."""
    app = FastAPI(title="IntegMed national-services sandbox (ABDM gateway + HPR)", docs_url="/docs")
    state = SandboxState(professionals or load_professionals())

    def gateway_ok(authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        expiry = state.sessions.get(authorization[7:])
        return expiry is not None and expiry > time.time()

    def decrypt(value: str) -> str | None:
        try:
            return state.key.decrypt(base64.b64decode(value), padding.PKCS1v15()).decode()
        except (ValueError, TypeError):
            return None

    @app.post("/api/hiecm/gateway/v3/sessions")
    async def session(request: Request) -> JSONResponse:
        body = await request.json()
        if SANDBOX_CLIENTS.get(body.get("clientId")) != body.get("clientSecret"):
            return _err(401, "ABDM-1001", "Invalid client credentials")
        token = secrets.token_urlsafe(24)
        state.sessions[token] = time.time() + SESSION_TTL_S
        return JSONResponse(
            {
                "accessToken": token,
                "expiresIn": SESSION_TTL_S,
                "refreshExpiresIn": 2 * SESSION_TTL_S,
                "refreshToken": secrets.token_urlsafe(24),
                "tokenType": "bearer",
            }
        )

    @app.get("/v4/int/api/v1/auth/cert", response_class=PlainTextResponse)
    async def cert(authorization: Auth = None) -> Any:
        if not gateway_ok(authorization):
            return _err(401, "900902", "Invalid Credentials")
        der = state.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @app.post("/v4/int/api/v2/auth/loginViaMobileSendOTP")
    async def send_otp(request: Request, authorization: Auth = None) -> JSONResponse:
        if not gateway_ok(authorization):
            return _err(401, "900902", "Invalid Credentials")
        body = await request.json()
        digits = decrypt(str(body.get("mobile", "")))
        if digits is None:
            return _err(400, "HIS-1002", "Mobile number could not be decrypted")
        pro = state.by_mobile("+91" + digits)
        if pro is None:
            return _err(422, "HIS-1041", "No HPR account is linked to this mobile number")
        txn_id = str(uuid.uuid4())
        otp = f"{secrets.randbelow(1_000_000):06d}"
        state.txns[txn_id] = _Txn(pro["mobile"], otp, time.time())
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        state.outbox.append({"mobile": pro["mobile"], "otp": otp, "txn_id": txn_id, "sent_at": sent_at})
        return JSONResponse({"txnId": txn_id, "mobileNumber": "******" + digits[-4:]})

    @app.post("/v4/int/api/v2/auth/login/userAuthorizedToken")
    async def verify_otp(request: Request, authorization: Auth = None) -> JSONResponse:
        if not gateway_ok(authorization):
            return _err(401, "900902", "Invalid Credentials")
        body = await request.json()
        txn = state.txns.get(str(body.get("txnId")))
        if txn is None or txn.done or txn.tries >= OTP_MAX_TRIES:
            return _err(422, "HIS-2003", "Transaction is not valid: request a new OTP")
        if time.time() - txn.created > OTP_TTL_S:
            return _err(422, "HIS-2002", "OTP expired")
        otp = decrypt(str(body.get("otp", "")))
        if otp is None or not secrets.compare_digest(otp, txn.otp):
            txn.tries += 1
            return _err(422, "HIS-2001", "Invalid OTP", remainingAttempts=OTP_MAX_TRIES - txn.tries)
        txn.done = True
        pro = state.by_mobile(txn.mobile)
        assert pro is not None
        token = secrets.token_urlsafe(24)
        state.hpr_tokens[token] = (pro["hprIdNumber"], time.time() + HPR_TOKEN_TTL_S)
        return JSONResponse(
            {
                "token": token,
                "expiresIn": HPR_TOKEN_TTL_S,
                "hprIdNumber": pro["hprIdNumber"],
                "hprId": pro["hprId"],
            }
        )

    @app.get("/v4/int/v1/account/information")
    async def account(authorization: Auth = None, x_token: XToken = None) -> JSONResponse:
        if not gateway_ok(authorization):
            return _err(401, "900902", "Invalid Credentials")
        held = state.hpr_tokens.get((x_token or "").removeprefix("Bearer "))
        if held is None or held[1] < time.time():
            return _err(401, "HIS-1011", "Invalid or expired X-Token")
        pro = state.by_hpr_id(held[0])
        assert pro is not None
        return JSONResponse(pro)

    @app.get("/v4/int/v1/search/searchByHprId/{hpr_id}")
    async def search(hpr_id: str, authorization: Auth = None) -> JSONResponse:
        if not gateway_ok(authorization):
            return _err(401, "900902", "Invalid Credentials")
        pro = state.by_hpr_id(hpr_id)
        if pro is None:
            return _err(422, "HIS-3008", "Invalid HPID.")
        return JSONResponse(pro)

    # ---- sandbox-only endpoints (never part of the real services) ----

    @app.get("/sandbox/professionals")
    async def professionals() -> list[dict[str, Any]]:
        return [
            {
                "hpr_id": p["hprIdNumber"],
                "hpr_address": p["hprId"],
                "name": p["name"],
                "mobile": p["mobile"],
                "category": p["category"],
                "qualification": p["qualification"],
                "system_of_medicine": p["systemOfMedicine"],
                "state": p["stateName"],
                "registration_council": p["registrationCouncil"],
                "registration_number": p["registrationNumber"],
            }
            for p in state.professionals
        ]

    @app.get("/sandbox/otp-outbox")
    async def otp_outbox(mobile: Annotated[str, Query(max_length=20)]) -> list[dict[str, str]]:
        wanted = mobile.replace(" ", "")
        if not wanted.startswith("+"):
            wanted = "+91" + wanted[-10:]
        sent = [m for m in state.outbox if m["mobile"] == wanted]
        return [{"otp": m["otp"], "txn_id": m["txn_id"], "sent_at": m["sent_at"]} for m in reversed(sent)]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
