"""`SyncClient.run_once`: one sync round, in one fixed order.

1. **Push.** First re-send a batch that was handed out but never answered (same batch id: the server answers
   a replay with its first answer, so nothing is applied twice); then send the unsent outbox in batches.
   Each change gets its own result: applied and merged changes are acknowledged; a change rejected for a
   reason that can pass (``clock_skew``) goes back to the queue; a change rejected for good is acknowledged,
   recorded with its reason in the report and kept locally (the record itself is never touched).
2. **Pull** pages after the stored cursor until the server says there is no more, applying each page and its
   cursor in one transaction (`desktop.sync.apply`). Our own echoed changes merge to nothing.

Like kinto.js ``Collection.sync()``: the cursor is stored only together with a successfully applied page.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from desktop.errors import Cancelled, KnownError
from desktop.progress import NullProgress, Progress
from desktop.rx.revocations import RevocationImportError, import_list
from desktop.store.outbox import OutboxEntry, QueuedChange
from desktop.store.unit_of_work import UnitOfWorkFactory
from desktop.sync.apply import ApplyStats, apply_in, apply_page
from desktop.sync.apply_prescriptions import note_refused_drafts
from desktop.sync.coalesce import coalesce
from desktop.sync.transport import EncodedBody, RawPage, Transport, encode_json
from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, ClockSkewError, decode
from shared.ids import uuid7
from shared.signing.trust import default_trust
from shared.sync.protocol import MAX_PUSH_CHANGES, ChangeStatus, JsonValue, PullResponse, PushResponse, RejectCode

log = logging.getLogger(__name__)
RETRYABLE = {RejectCode.CLOCK_SKEW}


@dataclass(frozen=True)
class Rejection:
    record_id: uuid.UUID
    kind: str
    reason: str
    message: str


@dataclass
class SyncReport:
    """What one round did (per-change lists, not a boolean)."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    pushed: int = 0
    applied: int = 0
    merged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    held_back: int = 0  # rejected for a reason that can pass: still queued
    pulled: int = 0
    pages: int = 0
    inserted: int = 0
    updated: int = 0
    conflicts: int = 0
    pending: int = 0  # changes still waiting to be sent after the round
    caught_up: bool = False

    @property
    def complete(self) -> bool:
        """Nothing left unsent and the PC has caught up with the server."""
        return self.caught_up and self.pending == 0 and not self.held_back


def wire_change(entry: OutboxEntry) -> dict[str, JsonValue]:
    """An outbox entry as a push change (`shared.sync.protocol.Change` JSON), whatever its record kind."""
    return {
        "kind": entry.kind,
        "id": str(entry.record_id),
        "op": entry.op,
        "hlc": entry.hlc,
        "fields": entry.fields,
        "field_hlcs": dict(entry.field_hlcs),
    }


class SyncClient:
    def __init__(
        self,
        uows: UnitOfWorkFactory,
        transport: Transport,
        clock: HLC,
        *,
        device_id: uuid.UUID,
        batch_size: int = 500,
        page_size: int = 1000,
        revocations_dir: Path | None = None,
    ) -> None:
        self._revocations_dir = revocations_dir
        self._uows = uows
        self._transport = transport
        self._clock = clock
        self._device_id = device_id
        self._batch_size = min(batch_size, MAX_PUSH_CHANGES)
        self._page_size = page_size

    def run_once(self, progress: Progress | None = None) -> SyncReport:
        progress = progress or NullProgress()
        report = SyncReport()
        try:
            pending, cursor = self._read_start()
            if pending:  # else nothing unsent and nothing in flight: no batch to make (saves a write transaction)
                self._push_all(report, progress, pending)
                cursor = self._read_cursor()
            # The last page's transaction also clears the last error and counts what is still to send.
            self._pull_all(report, progress, cursor)
        except Exception as exc:
            self._uows.writer.run(self._remember_error, str(exc))
            raise
        report.finished_at = datetime.now(UTC)
        self._refresh_revocations()
        return report

    def _refresh_revocations(self) -> None:
        """Install the server's signed revocation list in the data folder's cache (P4), so this PC's signing
        and its Verify dialog know revoked keys offline. Never fails the round: a refusal is logged."""
        if self._revocations_dir is None:
            return
        try:
            data = self._transport.get_revocations()
            import_list(self._revocations_dir, data, default_trust())
        except KnownError as exc:  # the server's own words (e.g. 503 "Signing is not configured") go in the log
            log.warning("revocation list not refreshed: %s — %s", exc, exc.detail or "no detail")
        except RevocationImportError as exc:
            log.warning("revocation list not refreshed: %s", exc)

    # ---- push ---------------------------------------------------------------------------------------

    def _push_all(self, report: SyncReport, progress: Progress, pending: int) -> None:
        progress.set_status(f"Sending {pending} change(s)")
        # Batches handed out before and never answered go first, one at a time, each with its own id.
        while True:
            if progress.cancelled:
                raise Cancelled()
            batch = self._uows.writer.run(self._unacked_batch)
            if batch is None:
                break
            response = self._transport.push_encoded(self._encode(*batch))
            if self._acknowledge(*batch, response, report, progress):
                return
        self._push_unsent(report, progress)

    def _push_unsent(self, report: SyncReport, progress: Progress) -> None:
        """Send the unsent queue in batches, taking and encoding batch n+1 while batch n is on the wire.

        Batches still reach the server one after the other, in queue order (never two at once from one PC);
        only the PC's work on the next batch overlaps the server's work on this one. A batch taken but not yet
        answered when the round stops (an error, a ``clock_skew`` hold) is an unacknowledged batch like any
        other: the next round re-sends it with its id first.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="integmed-push") as wire:
            in_flight: tuple[uuid.UUID, list[QueuedChange], Future[PushResponse]] | None = None
            try:
                while True:
                    if progress.cancelled:
                        raise Cancelled()
                    batch = self._uows.writer.run(self._take_unsent)
                    body = self._encode(*batch) if batch is not None else None
                    if in_flight is not None:
                        batch_id, entries, answer = in_flight
                        in_flight = None
                        if self._acknowledge(batch_id, entries, answer.result(), report, progress):
                            return
                    if batch is None or body is None:
                        return
                    in_flight = (batch[0], batch[1], wire.submit(self._transport.push_encoded, body))
            finally:
                if in_flight is not None:
                    in_flight[2].cancel()  # not started yet: never sent; started: its answer is not recorded

    def _encode(self, batch_id: uuid.UUID, entries: list[QueuedChange]) -> EncodedBody:
        """The push body of a batch (`PushRequest` JSON), built as text straight from the outbox's stored JSON.

        The entries hold JSON text already (validated when queued; `desktop.store.outbox.wire_text`); the
        server validates the request as a whole. Entries of every record kind go out alike: the kind is the
        entry's own text. The same JSON as ``json.dumps`` of the dict with `wire_change` of each entry.
        """
        head = (
            f'{{"batch_id":"{batch_id}","device_id":"{self._device_id}","schema_version":{RECORD_SCHEMA_VERSION},'
            f'"protocol_version":{PROTOCOL_VERSION},"changes":['
        )
        return encode_json((head + ",".join(coalesce(entries).wires) + "]}").encode())

    def _acknowledge(
        self,
        batch_id: uuid.UUID,
        entries: list[QueuedChange],
        response: PushResponse,
        report: SyncReport,
        progress: Progress,
    ) -> bool:
        """Record a batch's answer; True when some changes are held back (stop pushing this round)."""
        held = self._uows.writer.run(self._record_push, batch_id, entries, response, report)
        report.pushed += len(entries)
        progress.advance(len(entries))
        return bool(held)

    def _unacked_batch(self) -> tuple[uuid.UUID, list[QueuedChange]] | None:
        with self._uows.read() as uow:
            return uow.outbox.unacked_batch_wire()

    def _take_unsent(self) -> tuple[uuid.UUID, list[QueuedChange]] | None:
        with self._uows.write() as uow:
            batch_id = uuid7()
            entries = uow.outbox.take_unsent(batch_id, self._batch_size)
            if not entries:
                return None
            uow.commit()
            return batch_id, entries

    def _record_push(
        self, batch_id: uuid.UUID, entries: list[QueuedChange], response: PushResponse, report: SyncReport
    ) -> int:
        # One result per change sent; adjacent edits of one record went as one change (`coalesce`).
        results = coalesce(entries, with_wires=False).results_per_entry(response.results)
        done: list[int] = []
        retry: list[int] = []
        for entry, result in zip(entries, results, strict=True):
            if result.status is ChangeStatus.APPLIED:
                report.applied += 1
                done.append(entry.seq)
            elif result.status is ChangeStatus.MERGED:
                report.merged += 1
                done.append(entry.seq)
            elif result.reason in RETRYABLE:
                retry.append(entry.seq)
            else:
                done.append(entry.seq)
                report.rejected.append(Rejection(entry.record_id, entry.kind, str(result.reason), result.message or ""))
                log.warning("server rejected %s %s: %s", entry.kind, entry.record_id, result.message)
        with self._uows.write() as uow:
            if done:
                # Every entry answered for good (the usual case): one UPDATE for the batch's unacked entries,
                # which are exactly the entries sent.
                uow.outbox.ack(batch_id, None if len(done) == len(entries) else done)
            if retry:
                uow.outbox.release(batch_id, retry)
            note_refused_drafts(uow, entries, results)  # shown in the Rx pad; the draft stays local
            try:
                self._clock.update(decode(response.server_hlc))
            except ClockSkewError:
                log.warning("server clock is far ahead of this PC's; not folding it in")
            else:
                uow.sync_state.remember_stamp(decode(response.server_hlc))
            uow.sync_state.set_last_push_at(datetime.now(UTC))
            uow.commit()
        report.held_back += len(retry)
        if retry:
            held = set(retry)
            report.rejected += [
                Rejection(e.record_id, e.kind, str(RejectCode.CLOCK_SKEW), r.message or "")
                for e, r in zip(entries, results, strict=True)
                if e.seq in held
            ]
        return len(retry)

    # ---- pull ---------------------------------------------------------------------------------------

    def _pull_all(self, report: SyncReport, progress: Progress, cursor: str | None) -> None:
        """Pull pages after ``cursor`` until caught up, three stages at once: page n is applied on the writer
        thread while this thread parses page n+1 and the wire thread fetches page n+2 (`_PageFeed`). The
        cursor is still stored only with an applied page, and each page applied is the answer to the parsed
        ``next_cursor`` of the page before it; a failure anywhere just drops the pages fetched ahead.

        The last page is applied together with the round's closing writes (`_apply_last`), so an idle round
        is one read, one request and one write transaction.
        """
        with _PageFeed(self._transport, self._page_size) as feed:
            raw = feed.page_after(cursor)
            page = raw.parse()
            progress.set_total(len(page.changes) + raw.remaining)
            if raw.remaining:
                progress.set_status(f"Receiving {len(page.changes) + raw.remaining} record(s)")
            while True:
                if progress.cancelled:
                    raise Cancelled()
                if not page.has_more:
                    stats, report.pending = self._uows.writer.run(self._apply_last, page)
                    self._count(report, progress, page, stats)
                    report.caught_up = True
                    return
                feed.ask(page.next_cursor)  # usually on the wire already: the server named the cursor
                applied = self._uows.writer.submit(apply_page, self._uows, page, self._clock)
                try:
                    following = feed.page_after(page.next_cursor).parse()
                finally:
                    stats = applied.result()  # waited for even when the next page failed: never left running
                self._count(report, progress, page, stats)
                page = following

    @staticmethod
    def _count(report: SyncReport, progress: Progress, page: PullResponse, stats: ApplyStats) -> None:
        report.pages += 1
        report.pulled += len(page.changes)
        report.inserted += stats.inserted
        report.updated += stats.updated
        report.conflicts += stats.conflicts
        progress.advance(len(page.changes))

    def _apply_last(self, page: PullResponse) -> tuple[ApplyStats, int]:
        """Apply the round's last page, clear the last error (the round succeeded) and count the changes still
        to send (queued meanwhile, or held back), in one transaction."""
        with self._uows.write() as uow:
            stats = apply_in(uow, page, self._clock)
            uow.sync_state.set_last_error(None)
            pending = uow.outbox.pending_count()
            uow.commit()
        return stats, pending

    # ---- waiting pull ---------------------------------------------------------------------------------

    def watch(self, wait_s: float) -> SyncReport:
        """Hold a waiting pull open up to ``wait_s`` seconds and apply what it brings (the idle sync worker).

        The server answers as soon as another PC's change commits, so it shows here within tens of ms. The
        page is applied only if the stored cursor is still the one it was asked with (checked on the writer
        thread, where every apply runs): a round that pulled meanwhile keeps its later cursor. The report says
        ``caught_up`` False when more pages wait (the worker then runs a full round).
        """
        report = SyncReport()
        cursor = self._read_cursor()
        page, _ = self._transport.wait_pull(cursor, self._page_size, wait_s)
        if page.changes:
            stats = self._uows.writer.run(self._apply_if_cursor, cursor, page)
            if stats is not None:
                report.pages = 1
                report.pulled = len(page.changes)
                report.inserted, report.updated, report.conflicts = stats.inserted, stats.updated, stats.conflicts
        report.caught_up = not page.has_more
        report.finished_at = datetime.now(UTC)
        return report

    def cancel_watch(self) -> None:
        """End a `watch` in flight (any thread); the transport refuses waiting pulls from then on."""
        self._transport.cancel_wait()

    def _apply_if_cursor(self, cursor: str | None, page: PullResponse) -> ApplyStats | None:
        if self._read_cursor() != cursor:
            return None  # a round applied these (or later) changes meanwhile
        return apply_page(self._uows, page, self._clock)

    # ---- small reads/writes ---------------------------------------------------------------------------

    def _read_start(self) -> tuple[int, str | None]:
        """What a round starts from: changes still to send, and the stored pull cursor (one snapshot)."""
        with self._uows.read() as uow:
            return uow.outbox.pending_count(), uow.sync_state.pull_cursor()

    def _read_cursor(self) -> str | None:
        with self._uows.read() as uow:
            return uow.sync_state.pull_cursor()

    def _remember_error(self, text: str | None) -> None:
        with self._uows.write() as uow:
            if uow.sync_state.last_error() == text:
                return  # already stored: no commit for every quiet round
            uow.sync_state.set_last_error(text)
            uow.commit()


class _PageFeed:
    """Pull pages fetched ahead on a thread of their own, one request at a time, in the order asked.

    `ask` says the page after a cursor is wanted (and fetches it unless that is under way); `page_after` waits
    for it. When a wanted page has arrived and its answer named the next cursor
    (`desktop.sync.transport.NEXT_CURSOR_HEADER`), that next page is fetched at once: the server builds page
    n+2 while the client parses page n+1, and no page beyond that is fetched before it is wanted. A page is
    handed out only for the cursor it was fetched with, so a hint that differs from the parsed cursor costs
    one wasted request and nothing else; such fetches are dropped. Closing drops what was fetched ahead (and
    waits for a request already on the wire).
    """

    def __init__(self, transport: Transport, limit: int) -> None:
        self._transport = transport
        self._limit = limit
        self._wire = ThreadPoolExecutor(max_workers=1, thread_name_prefix="integmed-pull")
        self._lock = threading.Lock()
        self._fetches: dict[str | None, Future[RawPage]] = {}
        self._wanted: set[str | None] = set()
        self._handed: set[str | None] = set()
        self._closed = False

    def __enter__(self) -> _PageFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            fetches, self._fetches = self._fetches, {}
        for fetch in fetches.values():
            fetch.cancel()
        self._wire.shutdown(wait=True, cancel_futures=True)

    def ask(self, cursor: str | None) -> None:
        """Want the page after ``cursor``: fetch it unless that is under way, then fetch the one it names."""
        with self._lock:
            if cursor in self._wanted:
                return
            self._wanted.add(cursor)
            fetch = self._fetches.get(cursor)
            if fetch is None:
                fetch = self._fetches[cursor] = self._wire.submit(self._transport.pull_raw, cursor, self._limit)
        fetch.add_done_callback(self._fetch_named)  # now if it is done already

    def page_after(self, cursor: str | None) -> RawPage:
        """The page after ``cursor`` as received (wanting it first if need be); raises what its fetch raised."""
        self.ask(cursor)
        with self._lock:
            fetch = self._fetches[cursor]
        try:
            return fetch.result()
        finally:
            with self._lock:
                self._fetches.pop(cursor, None)
                self._wanted.discard(cursor)
                self._handed.add(cursor)
                named = _named(fetch)
                for other in [c for c in self._fetches if c not in self._wanted and c != named]:
                    self._fetches.pop(other).cancel()  # fetched on a hint the parsed cursor did not confirm

    def _fetch_named(self, fetch: Future[RawPage]) -> None:
        named = _named(fetch)
        if named is None:
            return
        with self._lock:
            if not self._closed and named not in self._fetches and named not in self._handed:
                self._fetches[named] = self._wire.submit(self._transport.pull_raw, named, self._limit)


def _named(fetch: Future[RawPage]) -> str | None:
    """The next cursor a finished fetch's answer named, if any."""
    if not fetch.done() or fetch.cancelled() or fetch.exception() is not None:
        return None
    return fetch.result().next_cursor
