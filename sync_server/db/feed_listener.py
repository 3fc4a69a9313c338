"""Wake waiting pulls when a clinic's feed moves: one LISTEN connection per API process, fanned out in memory.

`sync_server.db.sync.bump_feed` sends ``NOTIFY integmed_feed, '<clinic id>'`` in the writing transaction;
PostgreSQL delivers it at commit (never for a rolled-back transaction), to every API process listening, so a
pull waiting in any worker learns of a push handled by another. Within a process each clinic has one
`asyncio.Event`; a notification sets it and drops it, so the next waiter of that clinic gets a fresh one.

Race-free use: take the clinic's `ticket` *before* reading the feed; if the read finds nothing, wait on the
ticket. A commit after the read sets that very ticket, and a commit before it is seen by the read.

The connection is opened in the background and re-opened after a loss (with a growing pause); while it is
down `connected` is False and waiters fall back to a short sleep and a second read (see `api.sync.pull`).

Shutdown: uvicorn runs the lifespan's shutdown only after every open request has answered, so `close` alone
would come too late for a pull waiting 25 s. `drain` is called the moment the process is told to stop (SIGINT
or SIGTERM, see `drain_on_stop_signals`): every waiter wakes and answers its page at once, and pulls arriving
from then on do not wait. The server then finishes its open requests within milliseconds and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import asyncpg

log = logging.getLogger(__name__)
FEED_CHANNEL = "integmed_feed"
MAX_WAITERS = 1000  # waiting pulls per API process; each costs a socket and a small task, no DB connection


class TooManyWaiters(Exception):
    """More waiting pulls than the process allows (the route answers 503 with Retry-After)."""


class FeedListener:
    def __init__(self, dsn: str, *, max_waiters: int = MAX_WAITERS) -> None:
        self._dsn = dsn
        self.max_waiters = max_waiters
        self._events: dict[uuid.UUID, asyncio.Event] = {}
        self._waiting = 0
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closed = False
        self._draining = False
        self._listening = False

    @property
    def connected(self) -> bool:
        """Listening now (a waiter can rely on being woken)."""
        return self._listening and self._conn is not None and not self._conn.is_closed()

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def draining(self) -> bool:
        """The process is stopping: pulls answer their page at once instead of waiting."""
        return self._draining or self._closed

    def drain(self) -> None:
        """The process is stopping: wake every waiting pull now and let no new pull wait (idempotent)."""
        if not self._draining:
            log.info("feed listener: stopping; %d waiting pull(s) answer now", self._waiting)
        self._draining = True
        self._wake_all()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="integmed-feed-listener")

    async def close(self) -> None:
        """Stop listening and wake every waiter (they read the feed once more and answer)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_connection()
        self._wake_all()

    def ticket(self, clinic_id: uuid.UUID) -> asyncio.Event:
        """The event the next commit bumping this clinic's feed will set."""
        event = self._events.get(clinic_id)
        if event is None:
            event = self._events[clinic_id] = asyncio.Event()
        return event

    @contextlib.contextmanager
    def waiter(self) -> Iterator[None]:
        """Count one waiting pull for as long as the block runs; refuse one over `max_waiters`."""
        if self._waiting >= self.max_waiters or self._closed:
            raise TooManyWaiters()
        self._waiting += 1
        log.debug("feed listener: %d waiting pull(s)", self._waiting)
        try:
            yield
        finally:
            self._waiting -= 1

    # ---- connection ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        pause = 0.5
        while not self._closed:
            try:
                self._conn = conn = await asyncpg.connect(self._dsn, timeout=10)  # kept at once: close() closes it
                self._lost.clear()
                conn.add_termination_listener(self._on_lost)
                await conn.add_listener(FEED_CHANNEL, self._on_notify)
                self._listening = True
                pause = 0.5
                self._wake_all()  # anything committed while we were not listening: let waiters read again
                await self._lost.wait()
            except Exception as exc:  # any failure to listen: retry, never end the task
                log.info("feed listener: cannot listen (%s); retrying in %.1f s", exc, pause)
            await self._drop_connection()
            self._wake_all()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)

    def _on_lost(self, _conn: Any) -> None:
        self._lost.set()

    async def _drop_connection(self) -> None:
        conn, self._conn, self._listening = self._conn, None, False
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:  # a dead link or a timeout: drop the socket without the goodbye
                conn.terminate()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            clinic_id = uuid.UUID(payload)
        except ValueError:
            return
        event = self._events.pop(clinic_id, None)
        if event is not None:
            event.set()

    def _wake_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def drain_on_stop_signals(drain: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a SIGINT or SIGTERM first schedules ``drain`` on the running loop, then goes on to
    the handler that was there before (uvicorn's, which starts its graceful shutdown).

    Why here and not in a uvicorn subclass: the same lifespan runs under ``integmed-server serve`` with one or
    many worker processes (uvicorn's supervisor builds its own servers in each worker) and under ``dev``, and in
    each the lifespan runs on the main thread after uvicorn has installed its handlers. Off the main thread
    (an in-process test server) signals cannot be handled and nothing is installed. On exit the previous
    handlers are put back if ours are still in place.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def on_signal(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(drain)
        before = previous.get(sig)
        if callable(before):
            before(sig, frame)
        elif before != signal.SIG_IGN:  # the default action (stop the process): restore it and signal again
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for stop in STOP_SIGNALS:
        previous[stop] = signal.signal(stop, on_signal)
    try:
        yield
    finally:
        for number, handler in previous.items():
            if signal.getsignal(number) is on_signal:
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)
