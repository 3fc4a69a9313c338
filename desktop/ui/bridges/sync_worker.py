"""`SyncWorker`: runs sync rounds off the GUI thread on a timer, after local writes and on demand (STYLE §2.5).

A round is `SyncClient.run_once(progress)` handed to `Runner.run_network`, so the push, the pull and the
writer-thread applies never block the GUI thread. The worker

* never runs two rounds at once: a request during a round is remembered and runs right after it;
* runs a round every `SyncTimings.round_interval_ms`, and `after_write_ms` after each local write (so a
  registration goes out within seconds when the server is reachable);
* probes the server cheaply (`Transport.ping`) every `probe_interval_ms` for the online dot; the probe fails
  silently, and when the server comes back it starts a round (which also refreshes the device's access
  token);
* while idle and online, keeps one **waiting pull** open (`SyncClient.watch`, `watch_wait_s` at a time): the
  server answers it as soon as another PC's change commits, so that change shows here within tens of ms
  instead of at the next round. It runs beside rounds (the page is applied only if no round moved the
  cursor meanwhile), backs off on errors, is never started while offline, and `shut_down` ends it at once
  (`Transport.cancel_wait`);
* reports through signals: a round the user started is flagged, so the main window always tells the user how
  it went, while background failures only change the status area;
* on `DeviceSignInRequired` (or `NotEnrolled`) stops, forgets the rejected device token and emits
  `sign_in_required`, so a doctor can enrol the PC again (Anki's ``handle_sync_error``).

The worker receives plain callables from `app.py` (``make_client``, ``probe``, ``read_status``,
``forget_device``), so nothing here imports the sync package's HTTP code or the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop.errors import Cancelled, KnownError, NotEnrolled, ServerUnreachable
from desktop.progress import Progress
from desktop.services.sync_status import SyncStatus
from desktop.sync.errors import DeviceSignInRequired
from desktop.ui.runner import Runner
from desktop.ui.signals import emit

logger = logging.getLogger(__name__)


class SyncRound(Protocol):
    """What the worker needs of a `desktop.sync.client.SyncClient`."""

    def run_once(self, progress: Progress | None = None) -> Any:
        """One round; returns a `SyncReport`."""

    # Optional (the worker checks for it): ``watch(wait_s) -> SyncReport`` holds a waiting pull open and
    # applies what it brings; ``cancel_watch()`` ends one in flight from another thread.


@dataclass(frozen=True)
class SyncTimings:
    """How often the worker syncs and probes (tests pass short ones).

    Args:
        round_interval_ms: a background round this often.
        probe_interval_ms: a reachability probe this often.
        after_write_ms: a round this long after the last local write.
        watch_wait_s: how long one waiting pull stays open on the server (0: no waiting pull).
        watch_retry_ms: the first pause after a failed waiting pull; doubled per failure up to a minute.
    """

    round_interval_ms: int = 60_000
    probe_interval_ms: int = 15_000
    after_write_ms: int = 2_000
    watch_wait_s: float = 20.0
    watch_retry_ms: int = 1_000


class _RoundProgress:
    """Forwards a round's progress to the worker's signal and, for the first sync, to a dialog's `Progress`."""

    def __init__(self, worker: SyncWorker, outer: Progress | None) -> None:
        self._worker = worker
        self._outer = outer
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0
        self._status = ""

    def set_total(self, total: int) -> None:
        with self._lock:
            self._total = total
        if self._outer is not None:
            self._outer.set_total(total)
        self._report()

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self._done += steps
        if self._outer is not None:
            self._outer.advance(steps)
        self._report()

    def set_status(self, text: str) -> None:
        with self._lock:
            self._status = text
        if self._outer is not None:
            self._outer.set_status(text)
        self._report()

    @property
    def cancelled(self) -> bool:
        return self._worker.is_shutting_down or (self._outer is not None and self._outer.cancelled)

    def _report(self) -> None:
        with self._lock:
            done, total, status = self._done, self._total, self._status
        emit(self._worker.sync_progress, done, total, status)  # queued to the GUI thread


class SyncWorker(QObject):
    """Timer + runner around the sync client; see the module docstring.

    Args:
        runner: the app's runner (rounds and probes go to its network pool, status reads to its query pool).
        make_client: builds a sync client for this PC (raises `NotEnrolled` when it is not enrolled); called
            on the worker thread.
        probe: True when the server answers (never raises); called on the worker thread.
        read_status: the stored `SyncStatus` (waiting count, last sync, last error).
        forget_device: deletes the device token the server no longer accepts.
        timings: intervals.
        parent: Qt parent.
    """

    sync_started = Signal(bool)  # user_started
    sync_progress = Signal(int, int, str)  # done, total, what is happening
    sync_finished = Signal(object, bool)  # SyncReport, user_started
    sync_failed = Signal(object, bool)  # the exception (a KnownError unless it is a bug), user_started
    online_changed = Signal(bool)
    status_changed = Signal(object)  # SyncStatus
    sign_in_required = Signal(object)  # the KnownError that says so

    def __init__(
        self,
        runner: Runner,
        *,
        make_client: Callable[[], SyncRound],
        probe: Callable[[], bool],
        read_status: Callable[[], SyncStatus],
        forget_device: Callable[[], None] | None = None,
        timings: SyncTimings | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._make_client = make_client
        self._probe = probe
        self._read_status = read_status
        self._forget_device = forget_device
        self._timings = timings or SyncTimings()
        self._running = False
        self._round_user_started = False
        self._again = False
        self._again_user_started = False
        self._online: bool | None = None
        self._status: SyncStatus | None = None
        self._active = False
        self._shutting_down = threading.Event()
        self._round_timer = self._timer(self._timings.round_interval_ms, single_shot=False)
        self._probe_timer = self._timer(self._timings.probe_interval_ms, single_shot=False)
        self._write_timer = self._timer(self._timings.after_write_ms, single_shot=True)
        self._watching = False
        self._synced_once = False  # waiting pulls start after a round succeeded (never before the first sync)
        self._watch_client: Any = None
        self._watch_failures = 0
        self._watch_started = 0.0
        self._watch_timer = self._timer(self._timings.watch_retry_ms, single_shot=True)
        self._watch_timer.timeout.connect(self.on_watch_timer_timeout)
        self._round_timer.timeout.connect(self.on_round_timer_timeout)
        self._probe_timer.timeout.connect(self.on_probe_timer_timeout)
        self._write_timer.timeout.connect(self.on_write_timer_timeout)

    def _timer(self, interval_ms: int, *, single_shot: bool) -> QTimer:
        timer = QTimer(self)
        timer.setInterval(interval_ms)
        timer.setSingleShot(single_shot)
        return timer

    # -- state --------------------------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """A round is under way."""
        return self._running

    @property
    def online(self) -> bool | None:
        """Whether the server answered last time we asked (None: not known yet)."""
        return self._online

    @property
    def status(self) -> SyncStatus | None:
        """The last stored status read."""
        return self._status

    @property
    def is_active(self) -> bool:
        """Timers are running (between `start` and `stop`)."""
        return self._active

    # -- control ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the timers, read the status and probe the server now (call once signed in)."""
        self._active = True
        self._round_timer.start()
        self._probe_timer.start()
        self.refresh_status()
        self.probe_now()

    def stop(self) -> None:
        """Stop the timers; a round under way finishes and reports."""
        self._active = False
        for timer in (self._round_timer, self._probe_timer, self._write_timer, self._watch_timer):
            timer.stop()

    def shut_down(self) -> None:
        """The app is closing: stop the timers and ask a round under way to stop after its current batch or page."""
        self._shutting_down.set()
        self.stop()
        watch_client = self._watch_client
        cancel = getattr(watch_client, "cancel_watch", None)
        if self._watching and cancel is not None:
            cancel()  # the waiting pull ends now instead of holding the app's close for up to watch_wait_s

    @property
    def is_watching(self) -> bool:
        """A waiting pull is open."""
        return self._watching

    def watch_now(self) -> bool:
        """Open a waiting pull if none is open and the worker is active, online and not closing."""
        if (
            self._watching
            or not self._synced_once
            or not self._active
            or self._online is not True
            or self._timings.watch_wait_s <= 0
            or self.is_shutting_down
        ):
            return False
        self._watching = True
        self._watch_started = time.monotonic()
        make_client, wait_s = self._make_client, self._timings.watch_wait_s

        def watch() -> Any:
            client = make_client()
            self._watch_client = client  # set before the check below: `shut_down` sets its flag, then reads this
            method = getattr(client, "watch", None)
            return None if method is None or self.is_shutting_down else method(wait_s)

        self._runner.run_network(
            None, watch, self._on_watch_done, self._on_watch_failed, on_cancelled=self._on_watch_cancelled
        )
        return True

    @property
    def is_shutting_down(self) -> bool:
        """`shut_down` was called (any thread)."""
        return self._shutting_down.is_set()

    def sync_now(self, *, progress: Progress | None = None, user_started: bool = True) -> bool:
        """Start a round now; during a round, run one more right after it instead.

        Args:
            progress: also report the round here (the first-sync dialog); it can cancel the round.
            user_started: the user asked for it, so its outcome is reported to them.

        Returns:
            True when a round started now, False when it was queued behind the running one.
        """
        if self._running:
            self._again = True
            self._again_user_started = self._again_user_started or user_started
            return False
        self._running = True
        self._round_user_started = user_started
        emit(self.sync_started, user_started)
        round_progress = _RoundProgress(self, progress)
        make_client = self._make_client
        self._runner.run_network(
            None,
            lambda: make_client().run_once(round_progress),
            self._on_round_done,
            self._on_round_failed,
            on_cancelled=self._on_round_cancelled,
        )
        return True

    def refresh_status(self) -> None:
        """Read the stored status again (waiting count, last sync, last error); `status_changed` follows."""
        self._runner.run_query(None, self._read_status, self._on_status_read, self._on_status_failed)

    def probe_now(self) -> None:
        """Ask the server whether it is there; failures are silent (the dot goes grey)."""
        self._runner.run_network(None, self._probe, self._on_probe_done, self._on_probe_failed)

    # -- slots --------------------------------------------------------------------------------------------

    @Slot(object)
    def on_local_change(self, _result: object = None) -> None:
        """A local write finished: the waiting count changed, and a round should follow soon."""
        self.refresh_status()
        if self._active:
            self._write_timer.start()

    @Slot()
    def on_round_timer_timeout(self) -> None:
        if not self._running:
            self.sync_now(user_started=False)

    @Slot()
    def on_write_timer_timeout(self) -> None:
        self.sync_now(user_started=False)

    @Slot()
    def on_watch_timer_timeout(self) -> None:
        self.watch_now()

    @Slot()
    def on_probe_timer_timeout(self) -> None:
        if not self._running:
            self.probe_now()

    # -- outcomes (GUI thread) ----------------------------------------------------------------------------

    def _finish_round(self) -> bool:
        self._running = False
        return self._round_user_started

    def _on_round_done(self, report: Any) -> None:
        user_started = self._finish_round()
        self._synced_once = True
        self._set_online(True)
        logger.info(
            "Sync round: pushed %s, pulled %s, %s waiting",
            report.pushed,
            report.pulled,
            getattr(report, "pending", "?"),
        )
        emit(self.sync_finished, report, user_started)
        self.refresh_status()
        self._run_again()
        if not self._running:
            self.watch_now()

    def _on_round_failed(self, exc: BaseException) -> None:
        user_started = self._finish_round()
        if isinstance(exc, ServerUnreachable):
            self._set_online(False)
        elif isinstance(exc, KnownError):
            self._set_online(True)  # the server answered, with a refusal
        else:
            logger.error("Sync round failed with a bug", exc_info=(type(exc), exc, exc.__traceback__))
        if isinstance(exc, KnownError):
            logger.info("Sync round failed: %s (%s)", exc.code, exc.detail or exc.message)
        emit(self.sync_failed, exc, user_started)
        self.refresh_status()
        if isinstance(exc, DeviceSignInRequired | NotEnrolled):
            self._need_sign_in(exc)
            return
        self._run_again()

    def _on_round_cancelled(self) -> None:
        user_started = self._finish_round()
        emit(self.sync_failed, Cancelled(), user_started)
        self.refresh_status()
        self._run_again()

    def _on_watch_done(self, report: Any) -> None:
        self._watching = False
        if report is None:
            return  # this client cannot wait (e.g. a test double): rounds only
        self._watch_failures = 0
        if report.pulled:
            logger.info("Waiting pull: %s change(s) from another PC", report.pulled)
            if not self._running:  # during a round its own report follows (and the first-sync dialog waits for it)
                emit(self.sync_finished, report, False)  # views refresh as after a round
            self.refresh_status()
        if not report.caught_up:
            self.sync_now(user_started=False)  # more pages wait: a full round fetches them
        waited = time.monotonic() - self._watch_started
        if not report.pulled and waited < self._timings.watch_wait_s / 2:
            # An empty answer long before the deadline: a server that does not wait (older) or a link that
            # drops idle requests. Pause as after a failure, so the worker never spins.
            self._retry_watch_later()
        else:
            self.watch_now()

    def _on_watch_failed(self, exc: BaseException) -> None:
        self._watching = False
        if isinstance(exc, Cancelled) or self.is_shutting_down:
            return
        if isinstance(exc, DeviceSignInRequired | NotEnrolled):
            return  # rounds deal with sign-in; no waiting until they have
        # The online dot and the error text stay the rounds' and the probe's to set; the watch only backs off.
        logger.info("Waiting pull failed: %r", exc)
        self._retry_watch_later()

    def _on_watch_cancelled(self) -> None:
        self._watching = False

    def _retry_watch_later(self) -> None:
        self._watch_failures += 1
        delay = min(60_000, self._timings.watch_retry_ms * 2 ** min(self._watch_failures - 1, 10))
        if self._active and not self.is_shutting_down:
            self._watch_timer.start(delay)

    def _run_again(self) -> None:
        if self._again and self._active:
            user_started = self._again_user_started
            self._again = self._again_user_started = False
            self.sync_now(user_started=user_started)
        elif self._again and self._again_user_started:
            self._again = self._again_user_started = False
            self.sync_now(user_started=True)  # the user asked while timers were stopped: still answer them

    def _need_sign_in(self, exc: KnownError) -> None:
        self.stop()
        self._again = self._again_user_started = False
        forget = self._forget_device
        if forget is not None and isinstance(exc, DeviceSignInRequired):
            # The token is refused for good; without it `finish_sign_in` enrols the PC again.
            self._runner.run_network(None, forget, lambda _r: None, self._on_forget_failed)
        emit(self.sign_in_required, exc)

    def _on_forget_failed(self, exc: BaseException) -> None:
        logger.info("Could not forget the refused device token: %r", exc)

    def _on_status_read(self, status: SyncStatus) -> None:
        self._status = status
        emit(self.status_changed, status)

    def _on_status_failed(self, exc: BaseException) -> None:
        logger.info("Could not read the sync status: %r", exc)

    def _on_probe_done(self, answered: bool) -> None:
        was_offline = self._online is False
        self._set_online(bool(answered))
        if answered and was_offline and self._active and not self._running:
            self.sync_now(user_started=False)  # back online: send what waited, refresh the access token
        elif answered:
            self.watch_now()

    def _on_probe_failed(self, exc: BaseException) -> None:
        logger.info("Server probe failed: %r", exc)  # e.g. not enrolled yet; the dot just stays as it is

    def _set_online(self, online: bool) -> None:
        if online != self._online:
            self._online = online
            emit(self.online_changed, online)
