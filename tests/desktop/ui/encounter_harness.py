"""What the encounter screen's UI tests share: the doctor, the `Harness` (real services over the test's SQLite
store, one runner, one registered patient) and a signing service with a test certificate chain.

The `harness` fixture that builds a `Harness` per test is in `tests/desktop/ui/conftest.py`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyring.backends import fail
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.services.encounters import EncounterService
from desktop.services.patients import PatientService
from desktop.services.prescribing import Clinician, PrescribingService
from desktop.services.signing import SigningService
from desktop.store import LocalStore
from desktop.ui.runner import Runner
from desktop.ui.screens.encounter import EncounterScreen
from shared.records.patient import Patient
from shared.signing.certs import issue_certificate
from shared.signing.testing import TestChain, doctor_claims
from tests.desktop.ui.keyboard import activate

MBBS = {"qualification": "MBBS, MD", "system_of_medicine": "modern_medicine", "state": "Delhi"}
BAMS = {"qualification": "BAMS", "system_of_medicine": "ayurveda", "state": "MH"}
DOCTOR = uuid.UUID("019ab000-0000-7000-8000-00000000d0c1")


def doctor(profile: dict[str, Any], name: str = "Dr. Ananya Sharma") -> Clinician:
    return Clinician(DOCTOR, name, "doctor", profile)


class Harness:
    def __init__(self, qtbot: QtBot, store: LocalStore, patients: PatientService, presenter: Any) -> None:
        self.qtbot = qtbot
        self.store = store
        self.runner = Runner(store.writer.executor, error_presenter=presenter)
        self.encounters = EncounterService(writer=store.writer, uow=store.uow)
        self.rx = PrescribingService(writer=store.writer, uow=store.uow)
        self.patient: Patient = patients.register(
            {"name": "Radha Kumari", "gender": "F", "year_of_birth": 1961, "mobile": "9812300001"}, "t"
        )
        self.confirmations: list[str] = []

    def screen(self, profile: dict[str, Any] = MBBS) -> EncounterScreen:
        def confirm(_parent: QWidget, _title: str, text: str) -> bool:
            self.confirmations.append(text)
            return True

        screen = EncounterScreen(self.runner, self.encounters, self.rx, doctor(profile), confirm=confirm)
        self.qtbot.addWidget(screen)
        screen.resize(1366, 768)
        activate(self.qtbot, screen)
        screen.start_new(self.patient, "Tiredness and thirst")
        self.qtbot.waitUntil(lambda: screen.encounter is not None and screen.pad.result is not None, timeout=20_000)
        return screen

    def settle(self) -> None:
        self.qtbot.waitUntil(lambda: self.runner.busy_count == 0, timeout=20_000)

    def close(self) -> None:
        self.runner.shutdown(wait_s=5)


def signing_for(data_dir: Path, chain: TestChain, *, certified: bool = True) -> SigningService:
    """The doctor's signing service on this test PC (file-backed key), certified by `chain` unless told not."""
    keys = DoctorKeys(SecretStore("signing", data_dir, system_keyring=fail.Keyring()), data_dir)
    if certified:
        claims = doctor_claims(chain.doctor_key, now=datetime.now(UTC)).model_copy(
            update={"public_key": keys.public_key(DOCTOR)}
        )
        keys.store_certificates(DOCTOR, issue_certificate(claims, chain.issuer_key), chain.issuer_cert)
    return SigningService(keys, data_dir, trust=chain.trust)
