"""Real servers for tests: uvicorn on a free loopback port in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ThreadServer(uvicorn.Server):
    loop: asyncio.AbstractEventLoop | None = None

    def install_signal_handlers(self) -> None:  # older uvicorn
        pass

    async def startup(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29: leave the test runner's signals alone
        yield


@contextlib.contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 in a thread; yields its base URL; stops it on exit."""
    port = port or free_port()
    server = _ThreadServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # What a stop signal does in production (`sync_server.db.feed_listener.drain_on_stop_signals`; a thread
        # gets no signals): waiting pulls answer at once, so uvicorn's graceful stop does not wait up to their
        # deadline while the test's database is dropped under them.
        listener = getattr(getattr(app, "state", None), "feed_listener", None)
        if listener is not None and server.loop is not None and not server.loop.is_closed():
            server.loop.call_soon_threadsafe(listener.drain)
        server.should_exit = True
        thread.join(30)


def signing_settings(base: Path) -> dict[str, Any]:
    """Settings fields for prescription signing: an issuing key under the SANDBOX root in ``base/signing``.

    The same function `integmed-server dev` uses, so the test server signs exactly as the dev server does
    (created once, reused by every test of the run).
    """
    from sync_server.signing.issuer import ensure_dev_signing

    key, cert, kek = ensure_dev_signing(base)
    return {"signing_issuer_key": key, "signing_issuer_cert": cert, "signing_kek": kek}
