"""Composition root of the server: `create_app(settings)` builds every concrete dependency."""

from __future__ import annotations

import logging
import secrets
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.clock import HLC
from sync_server.api import auth, clinical, encounters, health, patients, prescriptions, problems, signing, sync
from sync_server.api.deps import AppState
from sync_server.db.feed_listener import FeedListener, drain_on_stop_signals
from sync_server.db.migrate import head_revision
from sync_server.hpr.client import HprClient
from sync_server.services.readings import DailyFolder
from sync_server.settings import Settings
from sync_server.signing.issuer import SigningContext

log = logging.getLogger(__name__)

DESCRIPTION = """
Central API of IntegMed: clinics sync patients and clinical records here; only this server talks to ABDM
and the HPR registry. Errors are RFC 9457 `application/problem+json` with a stable `code`; validation
errors (422) carry a field-level `errors` list.
"""


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


class GunzipRequests:
    """Accept ``Content-Encoding: gzip`` request bodies (sync batches), inflating at most `limit` bytes.

    Runs inside `BodyLimit`, which bounds the compressed size; this bounds the inflated size, so a small
    "zip bomb" cannot exhaust memory. A body that is not valid gzip is a 400 problem.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        if headers.get(b"content-encoding", b"").lower() != b"gzip":
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = inflater.decompress(b"".join(chunks), self.limit + 1)
            if len(body) > self.limit or inflater.unconsumed_tail:
                await _send_problem(
                    send,
                    413,
                    "body.too_large",
                    "Request body too large",
                    f"Inflated bodies are limited to {self.limit} bytes",
                )
                return
            if not inflater.eof:
                raise zlib.error("truncated gzip stream")
        except zlib.error as exc:
            await _send_problem(send, 400, "body.bad_encoding", "The gzip body could not be decoded", str(exc))
            return
        new_headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")]
        new_headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def inflated() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": new_headers}, inflated, send)


async def _send_problem(send: Send, status: int, code: str, title: str, detail: str) -> None:
    resp = problems.problem_response(status, code, title, detail)
    await send({"type": "http.response.start", "status": status, "headers": resp.raw_headers})
    await send({"type": "http.response.body", "body": resp.body})


async def _too_large(send: Send, limit: int) -> None:
    await _send_problem(send, 413, "body.too_large", "Request body too large", f"Bodies are limited to {limit} bytes")


def create_app(settings: Settings) -> FastAPI:
    """Build the API for these settings; the lifespan opens the pool and the HTTP clients."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            command_timeout=30,
            # Parameterised LIKE prefixes and trigram searches need the parameter's value to pick an index;
            # a cached generic plan scans the clinic instead (measured: 50 ms vs 0.4 ms, BENCHMARKS.md).
            server_settings={"plan_cache_mode": "force_custom_plan"},
        )
        http = httpx.AsyncClient(timeout=settings.national_timeout_s, trust_env=False)
        hpr = HprClient(
            http,
            hpr_url=settings.hpr_url,
            gateway_url=settings.abdm_gateway_url,
            client_id=settings.abdm_client_id,
            client_secret=settings.abdm_client_secret.get_secret_value(),
        )
        # One clock per process; the random node id keeps stamps of several workers distinct.
        clock = HLC(f"srv-{secrets.token_hex(6)}")
        app.state.integmed = AppState(settings, pool, http, hpr, head_revision(), clock)
        # One LISTEN connection wakes the waiting pulls of this process (sync_server.db.feed_listener).
        app.state.feed_listener = listener = FeedListener(settings.database_url)
        listener.start()
        folder = DailyFolder(pool)  # wearable daily averages, folded in the background (services.readings)
        folder.start()
        try:
            # A stop signal wakes the waiting pulls at once (they answer their page with 200), so uvicorn's
            # graceful shutdown is not held for up to 25 s by PCs' open pulls (docs/sync.md, "Shutdown").
            with drain_on_stop_signals(listener.drain):
                yield
        finally:
            await folder.close()
            await listener.close()
            await http.aclose()
            await pool.close()

    app = FastAPI(
        title="IntegMed sync server",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url="/api/redoc",
        openapi_url="/api/openapi.json",
    )
    problems.install(app)
    app.state.signing = SigningContext.from_settings(settings)  # None without keys: signing routes answer 503
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(patients.router)
    app.include_router(sync.router)
    app.include_router(prescriptions.router)
    app.include_router(encounters.router)
    app.include_router(signing.router)
    app.include_router(clinical.router)
    # Outermost first: bound the wire size, then inflate gzip bodies (bounded again), and gzip big answers.
    # Level 5, not the default 9: on a pull page of JSON, 9 cost 3-4x the CPU of 5 for a few % fewer bytes
    # (BENCHMARKS.md, P2); the desktop compresses its push bodies at 5 too.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)
    app.add_middleware(GunzipRequests, limit=settings.max_inflated_body_bytes)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in components["Problem"].pop("$defs", {}).items():
                components.setdefault(name, sub)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
