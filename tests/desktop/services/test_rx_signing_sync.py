"""Signing on the PC queues the signed record for sync in the same transaction (the server verifies it again)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from desktop.services.rx_signing import RxSigningService
from desktop.services.signing import SigningService
from desktop.store import LocalStore
from shared.signing.rx import encode_qr_payload, verify_qr_payload
from shared.signing.testing import TestChain
from shared.sync.protocol import RecordKind
from tests.desktop.services import test_rx_signing as signing_tests
from tests.desktop.services.test_rx_signing import DOCTOR, save

# The signing fixtures of the signing tests (a test chain, a certified PC key, a saved encounter).
chain, signing, encounter_id = signing_tests.chain, signing_tests.signing, signing_tests.encounter_id


def test_signing_queues_the_signed_prescription_once(
    local_store: LocalStore,
    encounter_id: uuid.UUID,
    signing: SigningService,
    chain: TestChain,
    tmp_path: Path,
) -> None:
    save(local_store, encounter_id)
    service = RxSigningService(local_store.uow, signing, tmp_path, clock=local_store.clock)
    done = service.sign_and_print(DOCTOR, encounter_id)
    service.sign_and_print(DOCTOR, encounter_id)  # printing again queues nothing
    with local_store.uow.read() as uow:
        entries = [e for e in uow.outbox.peek_unsent(100) if e.kind == RecordKind.SIGNED_PRESCRIPTION]
    assert len(entries) == 1
    change = entries[0].to_change()  # a valid push change
    fields = change.fields
    assert change.id == done.prescription_id and fields["encounter_id"] == str(encounter_id)
    assert fields["prescriber_id"] == str(DOCTOR) and fields["content_hash"] == done.content_hash
    cose = base64.b64decode(str(fields["cose"]))
    assert encode_qr_payload(cose, limit=None) == fields["qr_payload"] == done.qr_payload
    assert verify_qr_payload(str(fields["qr_payload"]), chain.trust).valid
    assert [m["generic_name"] for m in fields["medications"]] == ["METFORMIN", "AMLODIPINE"]  # type: ignore[index,union-attr]
