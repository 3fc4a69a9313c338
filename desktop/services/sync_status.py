"""What the sync status area shows, read from the local store: changes waiting, last sync, last error (no Qt)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from desktop.store.unit_of_work import UnitOfWorkFactory
from desktop.sync.apply_prescriptions import refused_signed_prescriptions


@dataclass(frozen=True)
class SyncStatus:
    """The stored side of sync, as of one read.

    Args:
        pending: local changes the server has not acknowledged yet.
        last_synced_at: when a pull last reached the server and applied a page (a round that got through).
        last_error: the text of the last failed round, until a round succeeds.
        has_synced: this PC has pulled from its clinic at least once (False: the first sync is still to come).
        refused_signed: signed prescriptions the server sent that did not verify on this PC and were not
            stored (prescription id → reason), until a genuine copy arrives.
    """

    pending: int
    last_synced_at: datetime | None
    last_error: str | None
    has_synced: bool
    refused_signed: Mapping[str, str] = field(default_factory=dict)


class SyncStatusService:
    """Reads `SyncStatus` (any thread; a consistent snapshot).

    Args:
        uow: the store's unit-of-work factory.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def status(self) -> SyncStatus:
        """The current status."""
        with self._uow.read() as uow:
            return SyncStatus(
                pending=uow.outbox.pending_count(),
                last_synced_at=uow.sync_state.last_pull_at(),
                last_error=uow.sync_state.last_error(),
                has_synced=uow.sync_state.pull_cursor() is not None or uow.sync_state.last_pull_at() is not None,
                refused_signed=refused_signed_prescriptions(uow),
            )
