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
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from desktop.errors import Cancelled
from desktop.progress import NullProgress, Progress
from desktop.store.outbox import OutboxEntry
from desktop.store.unit_of_work import UnitOfWorkFactory
from desktop.sync.apply import ApplyStats, apply_page
from desktop.sync.transport import Transport
from shared import PROTOCOL_VERSION, RECORD_SCHEMA_VERSION
from shared.clock import HLC, ClockSkewError, decode
from shared.ids import uuid7
from shared.sync.protocol import MAX_PUSH_CHANGES, ChangeStatus, PushRequest, PushResponse, RejectCode

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
    ) -> None:
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
            self._push_all(report, progress)
            self._pull_all(report, progress)
        except Exception as exc:
            self._uows.writer.run(self._remember_error, str(exc))
            raise
        report.pending = self._read_pending()
        report.finished_at = datetime.now(UTC)
        self._uows.writer.run(self._remember_error, None)
        return report

    # ---- push ---------------------------------------------------------------------------------------

    def _push_all(self, report: SyncReport, progress: Progress) -> None:
        pending = self._read_pending()
        if not pending:
            return  # nothing unsent and nothing in flight: no batch to make (saves a write transaction)
        progress.set_status(f"Sending {pending} change(s)")
        while True:
            if progress.cancelled:
                raise Cancelled()
            batch = self._uows.writer.run(self._next_batch)
            if batch is None:
                return
            batch_id, entries = batch
            request = PushRequest(
                batch_id=batch_id,
                device_id=self._device_id,
                schema_version=RECORD_SCHEMA_VERSION,
                protocol_version=PROTOCOL_VERSION,
                changes=[e.to_change() for e in entries],
            )
            response = self._transport.push(request)
            held = self._uows.writer.run(self._record_push, batch_id, entries, response, report)
            report.pushed += len(entries)
            progress.advance(len(entries))
            if held:
                return  # the rest waits for the clock to be fixed; do not spin on the same changes

    def _next_batch(self) -> tuple[uuid.UUID, list[OutboxEntry]] | None:
        with self._uows.write() as uow:
            unacked = uow.outbox.find_unacked_batch()
            if unacked is not None:
                return unacked
            entries = uow.outbox.peek_unsent(self._batch_size)
            if not entries:
                return None
            batch_id = uuid7()
            uow.outbox.mark_batch(batch_id, [e.seq for e in entries])
            uow.commit()
            return batch_id, entries

    def _record_push(
        self, batch_id: uuid.UUID, entries: list[OutboxEntry], response: PushResponse, report: SyncReport
    ) -> int:
        done, retry = [], []
        for entry, result in zip(entries, response.results, strict=True):
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
                uow.outbox.ack(batch_id, done)
            if retry:
                uow.outbox.release(batch_id, retry)
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
            report.rejected += [
                Rejection(e.record_id, e.kind, str(RejectCode.CLOCK_SKEW), r.message or "")
                for e, r in zip(entries, response.results, strict=True)
                if e.seq in set(retry)
            ]
        return len(retry)

    # ---- pull ---------------------------------------------------------------------------------------

    def _pull_all(self, report: SyncReport, progress: Progress) -> None:
        cursor = self._read_cursor()
        first = True
        while True:
            if progress.cancelled:
                raise Cancelled()
            page, remaining = self._transport.pull(cursor, self._page_size)
            if first:
                progress.set_total(len(page.changes) + remaining)
                if remaining:
                    progress.set_status(f"Receiving {len(page.changes) + remaining} record(s)")
                first = False
            stats: ApplyStats = self._uows.writer.run(apply_page, self._uows, page, self._clock)
            report.pages += 1
            report.pulled += len(page.changes)
            report.inserted += stats.inserted
            report.updated += stats.updated
            report.conflicts += stats.conflicts
            progress.advance(len(page.changes))
            cursor = page.next_cursor
            if not page.has_more:
                report.caught_up = True
                return

    # ---- small reads/writes ---------------------------------------------------------------------------

    def _read_pending(self) -> int:
        with self._uows.read() as uow:
            return uow.outbox.pending_count()

    def _read_cursor(self) -> str | None:
        with self._uows.read() as uow:
            return uow.sync_state.pull_cursor()

    def _remember_error(self, text: str | None) -> None:
        with self._uows.write() as uow:
            if uow.sync_state.last_error() == text:
                return  # already stored: no commit for every quiet round
            uow.sync_state.set_last_error(text)
            uow.commit()
