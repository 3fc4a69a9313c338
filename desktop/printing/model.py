"""What a printed prescription shows: a frozen, already-signed snapshot the PDF renderer lays out.

The renderer takes nothing else, so a printout can only show what was signed (plus the signature facts and the
QR text). `PrintablePrescription.from_signed` builds one from the signed content and the doctor's certificate
claims.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.signing.certs import CertificateClaims
    from shared.signing.content import PrescriptionContent

SEX_LABELS = {"M": "Male", "F": "Female", "O": "Other", "U": "Unknown"}


class PrintModelError(ValueError):
    """The prescription cannot be printed as given (the message says which field)."""


@dataclass(frozen=True)
class Clinic:
    """Letterhead: clinic name, address and phone (address and phone optional)."""

    name: str
    address: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Doctor:
    """The prescriber as the regulations want it printed: name, qualification, council and registration no."""

    name: str
    qualification: str
    registration_council: str
    registration_number: str
    hpr_id: str | None = None


@dataclass(frozen=True)
class Patient:
    """Patient band: name (any script), age, sex code M/F/O/U, ABHA number when there is one."""

    name: str
    sex: str
    age_years: int | None = None
    abha_number: str | None = None

    @property
    def age_sex(self) -> str:
        """ "42 y / Female"-style text."""
        sex = SEX_LABELS.get(self.sex, self.sex)
        return f"{self.age_years} y / {sex}" if self.age_years is not None else sex


@dataclass(frozen=True)
class Diagnosis:
    """A diagnosis as written and/or its code."""

    text: str | None = None
    code: str | None = None

    @property
    def label(self) -> str:
        """ "Type 2 diabetes mellitus (E11.9)", or whichever half exists."""
        if self.text and self.code:
            return f"{self.text} ({self.code})"
        return self.text or self.code or ""


@dataclass(frozen=True)
class Medicine:
    """One modern-medicine line; the generic name is printed in CAPITALS whatever case it arrives in."""

    generic_name: str
    frequency: str
    duration_days: int
    strength: str | None = None
    dosage_form: str | None = None
    route: str | None = None
    dose: str | None = None
    quantity: int | None = None
    instructions: str | None = None


@dataclass(frozen=True)
class AyushItem:
    """One AYUSH medicine (printed in its own section, marked AYUSH)."""

    name: str
    frequency: str
    duration_days: int
    dose: str | None = None
    instructions: str | None = None


@dataclass(frozen=True)
class PrintablePrescription:
    """Everything the printout shows, frozen. `sandbox` prints a "SANDBOX / TEST — not for dispensing" band."""

    rx_id: uuid.UUID
    clinic: Clinic
    doctor: Doctor
    patient: Patient
    issued_at: datetime
    medicines: tuple[Medicine, ...]
    signature_hash: str
    signed_at: datetime
    qr_payload: str
    diagnoses: tuple[Diagnosis, ...] = ()
    ayush: tuple[AyushItem, ...] = ()
    followup: str | None = None
    expires_at: datetime | None = None
    sandbox: bool = False
    patient_language: str = "hi"

    def __post_init__(self) -> None:
        if not self.medicines and not self.ayush:
            raise PrintModelError("a prescription needs at least one medicine to print")
        for name in ("issued_at", "signed_at"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None:
                raise PrintModelError(f"{name} must carry a time zone")
        if not self.qr_payload:
            raise PrintModelError("qr_payload is empty: a printout without its verification QR is not allowed")
        if not self.signature_hash:
            raise PrintModelError("signature_hash is empty: only signed prescriptions are printed")
        for name in ("name", "qualification", "registration_council", "registration_number"):
            if not getattr(self.doctor, name).strip():
                raise PrintModelError(f"doctor.{name} is required on a printed prescription")

    @property
    def signature_short(self) -> str:
        """The first 16 hex digits of the signature hash in groups of four ("3f2a 9c01 …")."""
        head = self.signature_hash.replace(" ", "")[:16].upper()
        return " ".join(head[i : i + 4] for i in range(0, len(head), 4))

    @classmethod
    def from_signed(
        cls,
        content: PrescriptionContent,
        doctor_claims: CertificateClaims,
        signature_hash: str,
        qr_payload: str,
        sandbox: bool,
    ) -> PrintablePrescription:
        """Build the printout of a signed prescription from its content and the doctor's certificate claims.

        Args:
            content: the signed content (shared.signing.content.PrescriptionContent).
            doctor_claims: the certificate claims of the signing doctor (name, qualification, council, reg. no.).
            signature_hash: hex digest identifying the signature (printed in short form).
            qr_payload: the exact QR text ("IMRX…") to print.
            sandbox: True when signed under the sandbox root (prints the not-for-dispensing band).

        Raises:
            PrintModelError: the certificate lacks the name, qualification or registration to print.
        """
        c = content
        return cls(
            rx_id=c.rx_id,
            clinic=Clinic(c.clinic.name, c.clinic.address, c.clinic.phone),
            doctor=Doctor(
                name=doctor_claims.name or "",
                qualification=doctor_claims.qualification or "",
                registration_council=doctor_claims.registration_council or "",
                registration_number=doctor_claims.registration_number or "",
                hpr_id=doctor_claims.hpr_id,
            ),
            patient=Patient(c.patient.name, c.patient.sex, c.patient.age_years, c.patient.abha_number),
            issued_at=c.issued_at,
            expires_at=c.expires_at,
            diagnoses=tuple(Diagnosis(d.text, d.code) for d in c.diagnosis),
            medicines=tuple(
                Medicine(
                    generic_name=m.generic_name,
                    frequency=m.frequency,
                    duration_days=m.duration_days,
                    strength=m.strength,
                    dosage_form=m.dosage_form,
                    route=m.route,
                    dose=m.dose,
                    quantity=m.quantity,
                    instructions=m.instructions,
                )
                for m in c.medicines
            ),
            ayush=tuple(AyushItem(a.name, a.frequency, a.duration_days, a.dose, a.instructions) for a in c.ayush),
            followup=c.followup,
            signature_hash=signature_hash,
            signed_at=c.issued_at,
            qr_payload=qr_payload,
            sandbox=sandbox,
        )
