"""Signing and printing on the PC, offline: the saved draft becomes signed, frozen, printed with a verifiable QR."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import sqlalchemy as sa
import zxingcpp
from keyring.backends import fail

from desktop.security.doctor_keys import DoctorKeys, NotCertified
from desktop.security.secrets import SecretStore
from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import PrescribingService, prescriber_for
from desktop.services.rx_signing import NothingToSign, NotThePrescriber, RxSigningService
from desktop.services.signing import SigningService
from desktop.store import LocalStore
from shared.signing.certs import issue_certificate
from shared.signing.rx import verify_qr_payload
from shared.signing.testing import TestChain, doctor_claims, make_test_chain

DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")
MBBS = {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"}
LINES = ["Metf 1000 bd 30d", "amlo 5 0-0-1 x 1m"]
AYUSH = ["triphala churna 5g hs with warm water x 30d"]


@pytest.fixture
def chain() -> TestChain:
    return make_test_chain()


@pytest.fixture
def signing(tmp_path: Path, chain: TestChain) -> SigningService:
    keys = DoctorKeys(SecretStore("signing", tmp_path, system_keyring=fail.Keyring()), tmp_path)
    claims = doctor_claims(chain.doctor_key, now=datetime.now(UTC)).model_copy(
        update={"public_key": keys.public_key(DOCTOR)}
    )
    keys.store_certificates(DOCTOR, issue_certificate(claims, chain.issuer_key), chain.issuer_cert)
    return SigningService(keys, tmp_path, trust=chain.trust)


@pytest.fixture
def encounter_id(local_store: LocalStore, patient_service: PatientService) -> uuid.UUID:
    patient = patient_service.register({"name": "सुनीता शर्मा", "gender": "F", "year_of_birth": 1972}, "t")
    encounters = EncounterService(writer=local_store.writer, uow=local_store.uow)
    started = encounters.start(
        {"patient_id": str(patient.id), "encounter_type": "opd", "start_time": datetime(2026, 11, 25, tzinfo=UTC),
         "chief_complaint": "Review of sugars"},
        DOCTOR,
    )  # fmt: skip
    note = {"assessment": {"primary_diagnosis": {"condition": "Type 2 diabetes mellitus", "code": "E11"}},
            "plan": {"followup": "After 4 weeks with fasting sugar"}}  # fmt: skip
    encounters.save_draft(started.id, {"soap_note": note})
    return started.id


def save(local_store: LocalStore, encounter_id: uuid.UUID) -> None:
    rx = PrescribingService(writer=local_store.writer, uow=local_store.uow)
    assert rx.save(encounter_id, LINES + AYUSH, prescriber_for(MBBS, "doctor", "opd"), DOCTOR) is not None


def test_sign_and_print_freezes_the_draft_and_the_printed_qr_verifies(
    local_store: LocalStore, encounter_id: uuid.UUID, signing: SigningService, chain: TestChain, tmp_path: Path
) -> None:
    save(local_store, encounter_id)
    service = RxSigningService(local_store.uow, signing, tmp_path)
    done = service.sign_and_print(DOCTOR, encounter_id)
    assert done.pdf.is_file() and not done.already_signed
    # The QR printed on the PDF is the signed one, and it verifies offline with the doctor and the content.
    page = pdfium.PdfDocument(done.pdf.read_bytes())
    texts = []
    for i in range(len(page)):
        image = page[i].render(scale=300 / 72).to_pil()
        texts += [r.text for r in zxingcpp.read_barcodes(image)]
    assert done.qr_payload in texts
    check = verify_qr_payload(done.qr_payload, chain.trust)
    assert check.valid and check.content is not None
    content = check.content
    assert [m.generic_name for m in content.medicines] == ["METFORMIN", "AMLODIPINE"]
    assert [a.name.upper() for a in content.ayush] == ["TRIPHALA CHURNA"]
    assert content.patient.name == "सुनीता शर्मा" and content.patient.sex == "F"
    assert [(d.code, d.text) for d in content.diagnosis] == [("E11", "Type 2 diabetes mellitus")]
    assert content.followup == "After 4 weeks with fasting sugar"
    # The draft is now final: the store refuses any change, and signing again reprints the same signature.
    with local_store.uow.read() as uow:
        status = uow.connection.execute(sa.text("SELECT status FROM prescriptions")).scalar_one()
    assert status == "final"

    def tamper() -> None:
        with local_store.uow.write() as uow:
            uow.connection.execute(sa.text("UPDATE signed_prescriptions SET qr_payload = 'x'"))

    with pytest.raises(Exception, match="never changed"):
        local_store.writer.run(tamper)
    again = service.sign_and_print(DOCTOR, encounter_id)
    assert again.already_signed and again.qr_payload == done.qr_payload and again.content_hash == done.content_hash


def test_nothing_saved_nothing_signed(
    local_store: LocalStore, encounter_id: uuid.UUID, signing: SigningService, tmp_path: Path
) -> None:
    with pytest.raises(NothingToSign):
        RxSigningService(local_store.uow, signing, tmp_path).sign_and_print(DOCTOR, encounter_id)


def test_another_doctor_cannot_sign_and_an_uncertified_pc_says_why(
    local_store: LocalStore, encounter_id: uuid.UUID, signing: SigningService, tmp_path: Path
) -> None:
    save(local_store, encounter_id)
    other = uuid.UUID(int=42)
    keys = DoctorKeys(SecretStore("signing", tmp_path, system_keyring=fail.Keyring()), tmp_path)
    with pytest.raises(NotCertified):
        RxSigningService(local_store.uow, SigningService(keys, tmp_path), tmp_path).sign_and_print(other, encounter_id)
    with local_store.uow.read() as uow:
        assert uow.connection.execute(sa.text("SELECT count(*) FROM signed_prescriptions")).scalar_one() == 0
    assert signing  # the prescriber's own key exists; another doctor's certificate would still be refused:
    with pytest.raises((NotThePrescriber, NotCertified)):
        RxSigningService(local_store.uow, signing, tmp_path).sign_and_print(other, encounter_id)
