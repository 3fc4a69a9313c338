"""HTTP to the IntegMed server: device auth, gzip, protocol headers, retry with backoff, typed errors.

Retries cover what a flaky clinic link does: refused or reset connections, timeouts and 5xx answers (with
exponential backoff and jitter). A push is safe to retry because the server answers a repeated batch id with
its first answer. 4xx answers are not retried: they become `ServerRefused` (or a more specific error).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from desktop.errors import Cancelled, ServerUnreachable
from desktop.sync.errors import (
    AppOutdated,
    DeviceSignInRequired,
    ServerError,
    ServerOutdated,
    ServerRefused,
    ServiceUnavailable,
)
from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.sync.protocol import PullResponse, PushRequest, PushResponse

log = logging.getLogger(__name__)
NEXT_CURSOR_HEADER = "X-IntegMed-Next-Cursor"
"""Pull answer header: the page's ``next_cursor``, sent when ``has_more`` (an older server sends none)."""
GZIP_ABOVE = 1024
GZIP_LEVEL = 5
USER_AGENT = "IntegMed-Desktop/0.1"


@dataclass
class RetryPolicy:
    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2**attempt) * (0.5 + random.random() / 2)


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"detail": resp.text[:300]}
    return body if isinstance(body, dict) else {"detail": str(body)[:300]}


def raise_for_problem(resp: httpx.Response) -> None:
    """Turn a non-2xx answer into the matching `KnownError`."""
    if resp.status_code < 400:
        return
    problem = _problem(resp)
    code = str(problem.get("code", ""))
    detail = str(problem.get("detail") or problem.get("title") or resp.reason_phrase)
    if resp.status_code == 426 or code == "sync.client_outdated":
        raise AppOutdated(detail=detail)
    if code == "sync.server_outdated":
        raise ServerOutdated(detail=detail)
    if code in ("auth.device_invalid",):
        raise DeviceSignInRequired(detail=detail)
    if resp.status_code == 503 and code:  # the server's own refusal (a missing part), not a crash
        raise ServiceUnavailable(str(problem.get("title") or detail), detail=detail)
    if resp.status_code >= 500:
        raise ServerError(detail=detail)
    extra = {k: v for k, v in problem.items() if k not in ("type", "title", "status", "code", "detail", "instance")}
    raise ServerRefused(detail, status=resp.status_code, problem_code=code or None, detail=detail, extra=extra)


@dataclass(frozen=True)
class RawPage:
    """A pull answer as received, before its body is parsed.

    Args:
        content: the page's `PullResponse` JSON.
        remaining: feed entries after the page (``X-IntegMed-Remaining``).
        next_cursor: the page's ``next_cursor`` when the server says another page is ready
            (`NEXT_CURSOR_HEADER`), so the next page can be asked for before this one is parsed; ``None``
            otherwise. A hint only: the parsed page's own ``next_cursor`` is what the client stores.
    """

    content: bytes
    remaining: int
    next_cursor: str | None

    def parse(self) -> PullResponse:
        """The page; `pydantic.ValidationError` when the body is not a valid `PullResponse`."""
        return PullResponse.model_validate_json(self.content)


@dataclass(frozen=True)
class EncodedBody:
    """A JSON request body made ready for the wire (gzip above `GZIP_ABOVE` bytes), with its headers."""

    content: bytes
    headers: dict[str, str]


def encode_body(body: Any) -> EncodedBody:
    """JSON-encode (compact) and, when larger than `GZIP_ABOVE` bytes, gzip a request body."""
    return encode_json(json.dumps(body, separators=(",", ":")).encode())


def encode_json(content: bytes) -> EncodedBody:
    """A request body already JSON-encoded (UTF-8), gzipped when larger than `GZIP_ABOVE` bytes."""
    headers = {"Content-Type": "application/json"}
    if len(content) > GZIP_ABOVE:
        content = gzip.compress(content, compresslevel=GZIP_LEVEL)
        headers["Content-Encoding"] = "gzip"
    return EncodedBody(content, headers)


class Transport:
    """One server, one device; thread-safe enough for one sync worker at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.Client(timeout=timeout_s, trust_env=False, headers={"User-Agent": USER_AGENT})
        self._timeout_s = timeout_s
        self._wait_http: httpx.Client | None = None  # waiting pulls get their own connection (see wait_pull)
        self._wait_lock = threading.Lock()
        self._wait_socket: socket.socket | None = None
        self._wait_cancelled = False
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._device: tuple[uuid.UUID, str] | None = None
        self._access: tuple[str, float] | None = None

    def close(self) -> None:
        self.cancel_wait()
        if self._wait_http is not None:
            self._wait_http.close()
        self._http.close()

    def use_device(self, device_id: uuid.UUID, device_token: str) -> None:
        self._device = (device_id, device_token)
        self._access = None

    # ---- low level -----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        headers = {
            "X-IntegMed-Protocol": str(PROTOCOL_VERSION),
            "X-IntegMed-Schema": str(RECORD_SCHEMA_VERSION),
            "Accept-Encoding": "gzip",
        }
        content = None
        if isinstance(body, EncodedBody):
            content = body.content
            headers |= body.headers
        elif body is not None:
            encoded = encode_body(body)
            content = encoded.content
            headers |= encoded.headers
        if token:
            headers["Authorization"] = f"Bearer {token}"
        attempts = self._retry.attempts if retry else 1
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                resp = self._http.request(method, self.base_url + path, content=content, headers=headers, params=params)
            except httpx.TransportError as exc:
                last = exc
                log.info("%s %s failed (%s), attempt %d", method, path, type(exc).__name__, attempt + 1)
            else:
                if resp.status_code < 500 or attempt == attempts - 1:
                    return resp
                last = ServerError(detail=f"{resp.status_code}")
            if attempt < attempts - 1:
                self._sleep(self._retry.delay(attempt))
        if isinstance(last, ServerError):
            raise last
        raise ServerUnreachable(detail=f"{type(last).__name__}: {last}")

    def _access_token(self) -> str:
        if self._access and self._access[1] > time.monotonic():
            return self._access[0]
        if self._device is None:
            raise DeviceSignInRequired("This PC is not enrolled yet.")
        device_id, token = self._device
        resp = self._send(
            "POST", "/api/v1/auth/device/token", body={"device_id": str(device_id), "device_token": token}
        )
        raise_for_problem(resp)
        data = resp.json()
        self._access = (data["access_token"], time.monotonic() + max(10, int(data["expires_in"]) - 30))
        return self._access[0]

    def _authed(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = self._send(method, path, token=self._access_token(), **kw)
        if resp.status_code == 401:  # access token expired early or the server restarted with a new secret
            self._access = None
            resp = self._send(method, path, token=self._access_token(), **kw)
        raise_for_problem(resp)
        return resp

    # ---- sync ------------------------------------------------------------------------------------------

    def push(self, request: PushRequest) -> PushResponse:
        return self.push_encoded(encode_body(request.model_dump(mode="json")))

    def push_encoded(self, body: EncodedBody) -> PushResponse:
        """`push` of a body already encoded (`encode_body` of a `PushRequest`'s JSON): the sync client encodes
        the next batch while this one is on the wire."""
        resp = self._authed("POST", "/api/v1/sync/push", body=body)
        return PushResponse.model_validate_json(resp.content)

    def pull(self, cursor: str | None, limit: int) -> tuple[PullResponse, int]:
        """One page after ``cursor``, and how many feed entries remain after it."""
        raw = self.pull_raw(cursor, limit)
        return raw.parse(), raw.remaining

    def pull_raw(self, cursor: str | None, limit: int) -> RawPage:
        """`pull` without parsing the body (the sync client parses a page while the next one is on the wire)."""
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        resp = self._authed("GET", "/api/v1/sync/pull", params=params)
        remaining = resp.headers.get("x-integmed-remaining", "0")
        return RawPage(
            resp.content, int(remaining) if remaining.isdigit() else 0, resp.headers.get(NEXT_CURSOR_HEADER) or None
        )

    def wait_pull(self, cursor: str | None, limit: int, wait_s: float) -> tuple[PullResponse, int]:
        """`pull` that the server holds open up to ``wait_s`` seconds until a change after ``cursor`` exists.

        An empty page with the same cursor means nothing happened in time. It goes over its own connection, so
        `cancel_wait` (any thread) can end it at once: that raises `Cancelled`. Not retried: the caller (the
        sync worker) backs off on errors. An older server ignores ``wait`` and answers at once.
        """
        params: dict[str, Any] = {"limit": limit, "wait": wait_s} | ({"cursor": cursor} if cursor else {})
        with self._wait_lock:
            if self._wait_cancelled:
                raise Cancelled()
            if self._wait_http is None:
                self._wait_http = httpx.Client(
                    timeout=httpx.Timeout(self._timeout_s, read=wait_s + self._timeout_s),
                    trust_env=False,
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=1),
                )
            http = self._wait_http
        headers = {
            "X-IntegMed-Protocol": str(PROTOCOL_VERSION),
            "X-IntegMed-Schema": str(RECORD_SCHEMA_VERSION),
            "Accept-Encoding": "gzip",
        }
        try:
            for attempt in range(2):  # a second time only with a fresh access token after a 401
                headers["Authorization"] = f"Bearer {self._access_token()}"
                resp = http.get(
                    self.base_url + "/api/v1/sync/pull",
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(self._timeout_s, read=wait_s + self._timeout_s),
                    extensions={"trace": self._trace_wait},
                )
                if resp.status_code != 401 or attempt:
                    break
                self._access = None
        except httpx.TransportError as exc:
            if self._wait_cancelled:
                raise Cancelled() from exc
            raise ServerUnreachable(detail=f"{type(exc).__name__}: {exc}") from exc
        raise_for_problem(resp)
        remaining = resp.headers.get("x-integmed-remaining", "0")
        return PullResponse.model_validate_json(resp.content), int(remaining) if remaining.isdigit() else 0

    def cancel_wait(self) -> None:
        """End a `wait_pull` in flight (from any thread) and refuse new ones: the app is closing."""
        with self._wait_lock:
            self._wait_cancelled = True
            sock, self._wait_socket = self._wait_socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading the answer

    def _trace_wait(self, event: str, info: dict[str, Any]) -> None:
        # httpcore reports each new connection of the waiting client; its socket is what `cancel_wait` shuts.
        if event == "connection.connect_tcp.complete" and info.get("return_value") is not None:
            sock = info["return_value"].get_extra_info("socket")
            with self._wait_lock:
                self._wait_socket = sock
                cancelled = self._wait_cancelled
            if cancelled and sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def get_revocations(self) -> bytes:
        """The server's current signed revocation list (CBOR, public like any CRL)."""
        try:
            resp = self._http.get(
                self.base_url + "/api/v1/signing/revocations", headers={"Accept": "application/cbor"}, timeout=10
            )
        except httpx.HTTPError as exc:
            raise ServerUnreachable(detail=f"{type(exc).__name__}: {exc}") from exc
        raise_for_problem(resp)
        return resp.content

    def ping(self) -> bool:
        """Cheap reachability probe for the status bar; never raises."""
        try:
            return self._http.get(self.base_url + "/health", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    # ---- sign-in and enrolment (user tokens) ----------------------------------------------------------------

    def sign_in_init(self, mobile: str) -> dict[str, Any]:
        resp = self._send("POST", "/api/v1/auth/doctor/init", body={"mobile": mobile, "purpose": "login"}, retry=False)
        raise_for_problem(resp)
        return dict(resp.json())

    def sign_in_verify(self, txn_id: str, otp: str, clinic_id: str | None = None) -> dict[str, Any]:
        body = {"txn_id": txn_id, "otp": otp} | ({"clinic_id": clinic_id} if clinic_id else {})
        resp = self._send("POST", "/api/v1/auth/doctor/verify", body=body, retry=False)
        raise_for_problem(resp)
        return dict(resp.json())

    def certify_doctor_key(self, access_token: str, public_key_b64url: str) -> dict[str, Any]:
        """Have the server certify the signed-in doctor's PC-held public key (P4 signing chain)."""
        resp = self._send(
            "POST",
            "/api/v1/signing/doctor-certificates",
            body={"public_key": public_key_b64url},
            token=access_token,
            retry=False,
        )
        raise_for_problem(resp)
        return dict(resp.json())

    def enroll_device(self, access_token: str, name: str, device_id: uuid.UUID) -> dict[str, Any]:
        resp = self._send(
            "POST", "/api/v1/devices", body={"name": name, "device_id": str(device_id)}, token=access_token, retry=False
        )
        raise_for_problem(resp)
        return dict(resp.json())
