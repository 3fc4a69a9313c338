"""`integmed rx verify` on a clinic PC that knows what happened to the prescription after it was printed: its
prescriber cancelled it here (INVALID, cancelled), a pharmacy dispensed it (VALID, "do not dispense it again"),
or the server refused this PC's cancellation (the offline answer stands). The store is the real one, written by
the real services, and read by the console command beside it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from desktop.cli import main
from desktop.config import DesktopSettings
from desktop.rx.commands import EXIT_INVALID, EXIT_VALID
from desktop.rx.verify import verify, with_local_status
from desktop.services.rx_signing import RxSigningService, SignedPrint
from desktop.services.rx_status import RxStatusService
from desktop.services.signing import SigningService
from desktop.store import LocalStore
from desktop.store.rx_status import read_known_events
from shared.signing import keys
from shared.signing.certs import issue_certificate
from shared.signing.errors import Reason
from shared.signing.testing import TestChain, doctor_claims, issuer_claims
from shared.signing.trust import Environment, default_trust, trusted_root
from shared.sync.protocol import ChangeResult, ChangeStatus, RecordKind, RejectCode
from tests.desktop.services import test_rx_signing as signing_tests
from tests.desktop.services.test_rx_signing import DOCTOR, save
from tests.desktop.services.test_rx_status import pharmacy_event, pull, push_answer

REPO = Path(__file__).resolve().parents[3]
signing, encounter_id = signing_tests.signing, signing_tests.encounter_id


@pytest.fixture
def chain() -> TestChain:
    """A doctor certified under the shipped SANDBOX root (as `integmed-server dev` certifies), so the command's
    own trust store accepts the QR."""
    now = datetime.now(UTC)
    root_key = keys.private_key_from_pem((REPO / "sync_server/sandbox/keys/sandbox_root_ed25519.pem").read_bytes())
    issuer_key, doctor_key = keys.generate_private_key(), keys.generate_private_key()
    issuer_cert = issue_certificate(issuer_claims(issuer_key, now=now), root_key)
    doctor_cert = issue_certificate(doctor_claims(doctor_key, now=now), issuer_key)
    root = trusted_root(keys.public_key_bytes(root_key), "IntegMed sandbox", Environment.SANDBOX)
    return TestChain(root_key, root, issuer_key, issuer_cert, doctor_key, doctor_cert, default_trust())


@pytest.fixture
def printed(local_store: LocalStore, encounter_id: uuid.UUID, signing: SigningService, tmp_path: Path) -> SignedPrint:
    save(local_store, encounter_id)
    return RxSigningService(local_store.uow, signing, tmp_path, clock=local_store.clock).sign_and_print(
        DOCTOR, encounter_id
    )


def run_verify(settings: DesktopSettings, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--data-dir", str(settings.data_dir), "rx", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_before_anything_happened_the_printout_is_valid_and_says_nothing_is_known(
    desktop_settings: DesktopSettings, printed: SignedPrint, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_verify(desktop_settings, printed.qr_payload, capsys=capsys)
    assert code == EXIT_VALID, out + err
    assert out.splitlines()[0].split()[0] == "VALID"
    assert "Status:    no cancellation or dispensing known to this PC" in out


def test_cancelled_on_this_pc_the_printout_is_invalid_with_the_reason_even_before_it_synced(
    local_store: LocalStore,
    desktop_settings: DesktopSettings,
    printed: SignedPrint,
    signing: SigningService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    RxStatusService(local_store.uow, signing, clock=local_store.clock).cancel(
        DOCTOR, printed.prescription_id, "Wrong dose printed"
    )
    code, out, err = run_verify(desktop_settings, printed.qr_payload, capsys=capsys)
    assert code == EXIT_INVALID, out + err
    first = out.splitlines()[0]
    assert first.startswith("INVALID  (cancelled) cancelled by the prescriber on ")
    assert "(Wrong dose printed); do not dispense (recorded on this PC)" in first
    assert "Status:    CANCELLED " in out and "Patient:   " in out  # the prescription is still shown
    code, out, _ = run_verify(desktop_settings, printed.qr_payload, "--json", capsys=capsys)
    data = json.loads(out)
    assert (code, data["valid"], data["reason"]) == (EXIT_INVALID, False, "cancelled")
    assert data["standing"]["status"] == "cancelled" and data["standing"]["reason"] == "Wrong dose printed"
    assert data["standing"]["seq"] == 1 and data["standing"]["known_from"] == "this PC"


def test_dispensed_at_a_pharmacy_the_printout_stays_valid_with_a_do_not_dispense_again_note(
    local_store: LocalStore,
    desktop_settings: DesktopSettings,
    printed: SignedPrint,
    chain: TestChain,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pull(local_store, chain, pharmacy_event(chain, printed.prescription_id, printed.content_hash, 1))
    code, out, err = run_verify(desktop_settings, printed.qr_payload, capsys=capsys)
    assert code == EXIT_VALID, out + err
    assert "Note: already dispensed on " in out and "do not dispense it again" in out
    assert "Status:    DISPENSED " in out and "(Dispensed at the counter)" in out


def test_a_cancellation_the_server_refused_does_not_count(
    local_store: LocalStore,
    desktop_settings: DesktopSettings,
    printed: SignedPrint,
    signing: SigningService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    RxStatusService(local_store.uow, signing, clock=local_store.clock).cancel(DOCTOR, printed.prescription_id, "x y")
    events = read_known_events(desktop_settings.database_path, printed.prescription_id)
    assert events is not None and [e.state for e in events] == ["pending"]
    refusal = ChangeResult(
        kind=RecordKind.PRESCRIPTION_STATUS, id=events[0].id, status=ChangeStatus.REJECTED,
        reason=RejectCode.BAD_SIGNATURE, message="unknown_key: the signer's key is unknown to the server",
    )  # fmt: skip
    push_answer(local_store, refusal)
    events = read_known_events(desktop_settings.database_path, printed.prescription_id)
    assert events is not None and [e.state for e in events] == ["refused"]
    code, out, err = run_verify(desktop_settings, printed.qr_payload, capsys=capsys)
    assert code == EXIT_VALID, out + err


def test_the_store_is_read_without_being_changed_and_a_pc_without_one_gets_the_offline_answer(
    local_store: LocalStore, desktop_settings: DesktopSettings, printed: SignedPrint, tmp_path: Path
) -> None:
    offline = verify(printed.qr_payload, default_trust(), [])
    assert offline.valid
    before = desktop_settings.database_path.read_bytes()
    assert with_local_status(offline, desktop_settings.database_path) == (offline, None)
    assert desktop_settings.database_path.read_bytes() == before
    nowhere = tmp_path / "no-such-folder" / "integmed.sqlite3"
    assert with_local_status(offline, nowhere) == (offline, None)
    assert not nowhere.parent.exists()  # nothing created


def test_an_unreadable_store_is_said_and_the_offline_answer_stands(
    desktop_settings: DesktopSettings, printed: SignedPrint, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"this is not a database" * 100)
    offline = verify(printed.qr_payload, default_trust(), [], now=datetime.now(UTC) + timedelta(seconds=1))
    result, problem = with_local_status(offline, broken)
    assert result is offline
    assert problem is not None and problem.startswith("this PC's records could not be read")


def test_reason_values_are_stable() -> None:
    """The JSON `reason` is part of what pharmacy scripts read."""
    assert (Reason.CANCELLED.value, Reason.SUPERSEDED.value) == ("cancelled", "superseded")
