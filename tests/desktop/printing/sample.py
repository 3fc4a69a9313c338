"""A fixed prescription for the golden printouts: Devanagari patient name, 5 medicines, 2 AYUSH items."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from desktop.printing.model import AyushItem, Clinic, Diagnosis, Doctor, Medicine, Patient, PrintablePrescription

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
# 640 characters of the QR alphanumeric alphabet, like a real RX payload (base45 of a signed CBOR prescription)
QR_PAYLOAD = "IMRX1:" + "".join(_ALNUM[(i * 7 + i // 3) % len(_ALNUM)] for i in range(634))

MEDICINES = (
    Medicine("metformin", "Twice daily (morning and night)", 30, "500 mg", "tablet", "oral", "1 tablet", 60,
             "Take after meals."),
    Medicine("GLIMEPIRIDE", "Once daily", 30, "1 mg", "tablet", "oral", "1 tablet", 30, "Take before breakfast."),
    Medicine("Atorvastatin", "At bedtime", 30, "10 mg", "tablet", "oral", "1 tablet", 30, None),
    Medicine("TELMISARTAN", "Once daily in the morning", 30, "40 mg", "tablet", "oral", "1 tablet", 30, None),
    Medicine("PARACETAMOL", "When needed", 5, "500 mg", "tablet", "oral", "1 tablet", 10,
             "Take with water. Do not take more than 4 tablets in a day."),
)  # fmt: skip
AYUSH = (
    AyushItem("Triphala churna", "At bedtime", 30, "5 g", "Take with warm water."),
    AyushItem("Ashwagandha churna", "Twice daily", 30, "3 g", "Take with warm milk."),
)
HINDI_PATIENT = "श्रीमती सुनीता शर्मा"


def sample(**changes: object) -> PrintablePrescription:
    """The golden prescription; keyword arguments replace fields."""
    rx = PrintablePrescription(
        rx_id=uuid.UUID("019abcde-0000-7000-8000-00000000cafe"),
        clinic=Clinic("Arogya Family Clinic", "12 MG Road, Civil Lines, Jaipur 302006, Rajasthan", "+91 141 555 0123"),
        doctor=Doctor(
            "Dr. Anil Kumar Verma",
            "MBBS, MD (General Medicine)",
            "Rajasthan Medical Council",
            "RMC/2011/45821",
            "71-2665-5777-1234",
        ),
        patient=Patient(HINDI_PATIENT, "F", 54, "91-1234-5678-9012"),
        issued_at=datetime(2026, 11, 20, 5, 30, tzinfo=UTC),
        expires_at=datetime(2026, 12, 20, 5, 30, tzinfo=UTC),
        diagnoses=(Diagnosis("Type 2 diabetes mellitus", "E11.9"), Diagnosis("Essential hypertension", "I10")),
        medicines=MEDICINES,
        ayush=AYUSH,
        followup="Review after 4 weeks with fasting blood sugar report.",
        signature_hash="3f2a9c01b7e45d2288aa01fe9c3b7d10e2f4a6c8b0d2e4f6a8c0e2f4a6b8c0d2",
        signed_at=datetime(2026, 11, 20, 5, 31, 12, tzinfo=UTC),
        qr_payload=QR_PAYLOAD,
        sandbox=False,
    )
    return replace(rx, **changes)  # type: ignore[arg-type]
