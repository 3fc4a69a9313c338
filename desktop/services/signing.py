"""Signing prescriptions on this PC, with no network: the doctor's own key and certificates (`DoctorKeys`).

`sign` refuses to hand back anything it could not verify itself: the signed QR is checked against the same
trust roots a pharmacist's verifier ships with, so a PC whose certificate chain a pharmacist would reject
(a server issuing key under an unknown root, a revoked key in the cached list) finds out at signing time,
not at the pharmacy counter.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from desktop.errors import KnownError
from desktop.rx.revocations import load_cached
from desktop.security.doctor_keys import DoctorKeys, Signer
from shared.signing.rx import (
    PrescriptionContent,
    SignedPrescription,
    Verification,
    sign_prescription,
    verify_qr_payload,
)
from shared.signing.trust import TrustStore, default_trust


class SignatureNotVerifiable(KnownError):
    title = "This prescription could not be signed"
    default_message = "The signature made on this PC would not verify at a pharmacy."
    action = "Sign in again on this PC with the network on; if it persists, contact your IntegMed support person."
    code = "desktop.signing.not_verifiable"


class SigningService:
    def __init__(self, doctor_keys: DoctorKeys, data_dir: Path, *, trust: TrustStore | None = None) -> None:
        self._keys = doctor_keys
        self._data_dir = data_dir
        self._trust = trust

    def signer(self, user_id: uuid.UUID) -> Signer:
        return self._keys.signer(user_id)

    def sign(self, user_id: uuid.UUID, content: PrescriptionContent) -> SignedPrescription:
        """Sign offline and verify the result as a pharmacist would (trust roots + cached revocations)."""
        return self.sign_verified(user_id, content)[0]

    def sign_verified(
        self, user_id: uuid.UUID, content: PrescriptionContent
    ) -> tuple[SignedPrescription, Verification]:
        """`sign`, also answering the verification (e.g. ``sandbox``: the chain ends at the public test root)."""
        signer = self._keys.signer(user_id)
        signed = sign_prescription(content, signer.private_key, signer.doctor_certificate, signer.issuer_certificate)
        trust = self._trust or default_trust()
        check = verify_qr_payload(signed.qr_payload, trust, load_cached(self._data_dir, trust).lists)
        if not check.valid:
            raise SignatureNotVerifiable(detail=f"{check.reason}: {check.message}")
        return signed, check
