"""The status area says when signed prescriptions from the server failed verification on this PC."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pytestqt.qtbot import QtBot

from desktop.services.sync_status import SyncStatus, SyncStatusService
from desktop.store import LocalStore
from desktop.sync.apply_prescriptions import REFUSED_KEY
from desktop.ui.sync_status import SyncStatusWidget


def test_refused_signed_prescriptions_are_read_from_the_store_and_shown_in_words(
    qtbot: QtBot, local_store: LocalStore
) -> None:
    service = SyncStatusService(local_store.uow)
    assert service.status().refused_signed == {}
    refused = {"0190a0b0-0000-7000-8000-000000000001": "bad signature", "0190a0b0-0000-7000-8000-000000000002": "x"}

    def write() -> None:
        with local_store.uow.write() as uow:
            uow.sync_state.set(REFUSED_KEY, json.dumps(refused))
            uow.commit()

    local_store.writer.run(write)
    status = service.status()
    assert status.refused_signed == refused

    widget = SyncStatusWidget()
    qtbot.addWidget(widget)
    widget.on_status_changed(status)
    assert widget.error_label.text().startswith("2 signed prescriptions from the server failed the signature check")
    assert "bad signature" in widget.error_label.toolTip()

    one = SyncStatus(
        pending=0,
        last_synced_at=datetime.now(UTC),
        last_error=None,
        has_synced=True,
        refused_signed={"a": "revoked key"},
    )
    fresh = SyncStatusWidget()
    qtbot.addWidget(fresh)
    fresh.on_status_changed(one)
    assert (
        "1 signed prescription from the server failed the signature check and was not saved" in fresh.error_label.text()
    )
