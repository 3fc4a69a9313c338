"""An in-memory root → issuer → doctor chain for tests and demos (never for real prescriptions).

``make_test_chain()`` builds fresh keys and certificates; ``chain.sign(content)`` signs a prescription and
``chain.trust`` verifies it. The root is marked ``sandbox`` so every verification says it is a test.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.signing import keys
from shared.signing.certs import CertificateClaims, Role, issue_certificate
from shared.signing.rx import (
    AyushItem,
    Clinic,
    Diagnosis,
    Medicine,
    Patient,
    PrescriptionContent,
    SignedPrescription,
    sign_prescription,
)
from shared.signing.trust import Environment, TrustedRoot, TrustStore, trusted_root


@dataclass(frozen=True)
class TestChain:
    """Keys and certificates of one in-memory chain, and a trust store holding its root."""

    __test__ = False  # not a pytest test class

    root_key: keys.Ed25519PrivateKey
    root: TrustedRoot
    issuer_key: keys.Ed25519PrivateKey
    issuer_cert: bytes
    doctor_key: keys.Ed25519PrivateKey
    doctor_cert: bytes
    trust: TrustStore

    def sign(self, content: PrescriptionContent, *, with_issuer: bool = True) -> SignedPrescription:
        """Sign ``content`` as this chain's doctor (issuer certificate embedded unless ``with_issuer=False``)."""
        return sign_prescription(content, self.doctor_key, self.doctor_cert, self.issuer_cert if with_issuer else None)


def issuer_claims(issuer_key: keys.Ed25519PrivateKey, *, now: datetime, days: int = 3650) -> CertificateClaims:
    """Claims for an issuing (server) key valid from one day before ``now`` for ``days`` days."""
    return CertificateClaims(
        role=Role.ISSUER,
        public_key=keys.public_key_bytes(issuer_key),
        not_before=now - timedelta(days=1),
        expires_at=now + timedelta(days=days),
    )


def doctor_claims(doctor_key: keys.Ed25519PrivateKey, *, now: datetime, days: int = 365) -> CertificateClaims:
    """Claims for a test doctor (a made-up HPR id and registration) valid from one day before ``now``."""
    return CertificateClaims(
        role=Role.DOCTOR,
        public_key=keys.public_key_bytes(doctor_key),
        not_before=now - timedelta(days=1),
        expires_at=now + timedelta(days=days),
        name="Dr. Asha Verma",
        hpr_id="71-1234-5678-9012",
        registration_council="Karnataka Medical Council",
        registration_number="KMC-123456",
        qualification="MBBS, MD (Medicine)",
        system_of_medicine="modern",
    )


def make_test_chain(
    *,
    now: datetime | None = None,
    environment: Environment = Environment.SANDBOX,
    doctor: CertificateClaims | None = None,
) -> TestChain:
    """A fresh root → issuer → doctor chain.

    Args:
        now: the reference instant for certificate validity (default: the current time).
        environment: the root's environment (sandbox by default).
        doctor: the doctor's claims; ``public_key`` in it is replaced by the generated key.
    """
    now = now or datetime.now(UTC)
    root_key, issuer_key, doctor_key = (keys.generate_private_key() for _ in range(3))
    root = trusted_root(keys.public_key_bytes(root_key), "IntegMed test root", environment)
    issuer_cert = issue_certificate(issuer_claims(issuer_key, now=now), root_key)
    claims = doctor_claims(doctor_key, now=now)
    if doctor is not None:
        claims = doctor.model_copy(update={"public_key": keys.public_key_bytes(doctor_key)})
    doctor_cert = issue_certificate(claims, issuer_key)
    return TestChain(root_key, root, issuer_key, issuer_cert, doctor_key, doctor_cert, TrustStore([root]))


def sample_content(
    *, issued_at: datetime | None = None, valid_days: int = 30, medicines: int = 5
) -> PrescriptionContent:
    """A realistic prescription: Devanagari patient name, masked ABHA, two diagnosis codes, up to 5 medicines
    (4 modern, then 1 AYUSH) and a follow-up. The lines are illustrative, not clinical advice.

    Args:
        issued_at: the signing instant (default: now, whole seconds).
        valid_days: days until it expires.
        medicines: how many lines, 1-5.
    """
    issued = (issued_at or datetime.now(UTC)).replace(microsecond=0)
    lines = [
        Medicine(
            generic_name="METFORMIN",
            strength="1000 mg",
            dosage_form="tablet",
            route="oral",
            frequency="1-0-1",
            duration_days=30,
            quantity=60,
            instructions="after food",
        ),
        Medicine(
            generic_name="GLIMEPIRIDE",
            strength="2 mg",
            dosage_form="tablet",
            route="oral",
            frequency="1-0-0",
            duration_days=30,
            quantity=30,
            instructions="before breakfast",
        ),
        Medicine(
            generic_name="ATORVASTATIN",
            strength="10 mg",
            dosage_form="tablet",
            route="oral",
            frequency="0-0-1",
            duration_days=30,
            quantity=30,
            instructions="at bedtime",
        ),
        Medicine(
            generic_name="TELMISARTAN",
            strength="40 mg",
            dosage_form="tablet",
            route="oral",
            frequency="1-0-0",
            duration_days=30,
            quantity=30,
        ),
    ]
    ayush = [
        AyushItem(
            name="Triphala churna", dose="5 g", frequency="0-0-1", duration_days=30, instructions="with warm water"
        )
    ]
    return PrescriptionContent(
        rx_id=uuid.UUID("019ab000-0000-7000-8000-0000000000cc"),
        issued_at=issued,
        expires_at=issued + timedelta(days=valid_days),
        clinic=Clinic(name="Sanjeevani Integrative Clinic"),
        patient=Patient(name="सुनीता देवी शर्मा", age_years=54, sex="F", abha_number="91-XXXX-XXXX-4821"),
        diagnosis=(Diagnosis(code="E11.9"), Diagnosis(code="I10")),
        medicines=tuple(lines[: min(medicines, 4)]),
        ayush=tuple(ayush[: max(0, medicines - 4)]),
        followup="Review after 4 weeks",
    )
