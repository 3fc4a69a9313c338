"""Applying a pulled page: new patients are stored together, known ones merged, all in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

from desktop.services.patients import PatientService
from desktop.store import LocalStore
from desktop.sync.apply import apply_page
from shared.clock import HLC, encode
from shared.ids import uuid7
from shared.sync.protocol import PulledChange, PullResponse

SERVER = HLC("srv-test")


def pulled(patient_id: uuid.UUID, fields: dict[str, Any], seq: int) -> PulledChange:
    stamp = encode(SERVER.now())
    return PulledChange(
        kind="patient",
        id=patient_id,
        op="upsert",
        hlc=stamp,
        fields=fields,
        field_hlcs=dict.fromkeys(fields, stamp),
        seq=seq,
        server_version=1,
        batch_id=None,
    )


def page(*changes: PulledChange) -> PullResponse:
    return PullResponse(
        changes=list(changes), next_cursor=str(changes[-1].seq), has_more=False, server_hlc=encode(SERVER.now())
    )


def test_a_page_that_brings_a_patient_and_then_changes_it(
    local_store: LocalStore, patient_service: PatientService
) -> None:
    known = patient_service.register({"name": "Known Person", "gender": "F", "year_of_birth": 1970}, "t")
    new, other = uuid7(), uuid7()
    body = {"name": "New Person", "gender": "M", "year_of_birth": 1980, "mobile": "+919800000001"}
    stats = local_store.writer.run(
        apply_page,
        local_store.uow,
        page(
            pulled(new, body, 1),
            pulled(known.id, {"mobile": "+919800000002"}, 2),
            pulled(new, {"mobile": "+919800000003"}, 3),  # the same page changes the patient it brought
            pulled(other, {**body, "name": "Other Person"}, 4),
        ),
        local_store.clock,
    )
    assert (stats.inserted, stats.updated, stats.unchanged) == (2, 2, 0)
    assert patient_service.get(new).mobile == "+919800000003"
    assert patient_service.get(known.id).mobile == "+919800000002"
    assert patient_service.get(other).name == "Other Person"
    assert [h.value for h in patient_service.history(new)] == ["+919800000001"]
    with local_store.uow.read() as uow:
        assert uow.sync_state.pull_cursor() == "4"
        assert uow.outbox.pending_count() == 1  # only the local registration waits to be sent


def test_an_echo_of_what_is_stored_changes_nothing(local_store: LocalStore, patient_service: PatientService) -> None:
    patient_id = uuid7()
    change = pulled(patient_id, {"name": "Echo Person", "gender": "F", "year_of_birth": 1990}, 1)
    local_store.writer.run(apply_page, local_store.uow, page(change), local_store.clock)
    before = patient_service.get(patient_id)
    stats = local_store.writer.run(apply_page, local_store.uow, page(change), local_store.clock)
    assert (stats.inserted, stats.updated, stats.unchanged) == (0, 0, 1)
    assert patient_service.get(patient_id) == before


def test_an_empty_page_moves_the_cursor_and_keeps_the_greater_stamp(local_store: LocalStore) -> None:
    """An idle round's page: the cursor, the pull time and the server's stamp are stored; an older stamp than
    the one kept already (a slow server) does not replace it."""
    later = encode(SERVER.now())
    earlier = encode(HLC("srv-slow", wall_clock=lambda: 1_000).now())

    def empty(cursor: str, stamp: str) -> PullResponse:
        return PullResponse(changes=[], next_cursor=cursor, has_more=False, server_hlc=stamp)

    for cursor, stamp in (("7", later), ("8", earlier)):
        stats = local_store.writer.run(apply_page, local_store.uow, empty(cursor, stamp), local_store.clock)
        assert (stats.inserted, stats.updated, stats.unchanged, stats.conflicts) == (0, 0, 0, 0)
    with local_store.uow.read() as uow:
        assert uow.sync_state.pull_cursor() == "8"
        assert uow.sync_state.get("last_received_hlc") == later
        assert uow.sync_state.last_pull_at() is not None
