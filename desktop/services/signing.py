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
from shared.signing.errors import VerificationError
from shared.signing.rx import (
    PrescriptionContent,
    SignedPrescription,
    Verification,
    sign_prescription,
    verify_qr_payload,
)
from shared.signing.status import StatusEvent, sign_event, verify_event
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

    def sign_status_event(self, user_id: uuid.UUID, event: StatusEvent) -> bytes:
        """Sign a status event (cancel / supersede) offline with the doctor's key; verified as any PC would.

        ``event.kid`` must be the doctor's key id on this PC (``signer(user_id).claims.kid``).
        """
        signer = self._keys.signer(user_id)
        signed = sign_event(event, signer.private_key)
        trust = self._trust or default_trust()
        try:
            verify_event(
                signed,
                rx_id=event.rx_id,
                content_hash=event.content_hash,
                doctor_certificate=signer.doctor_certificate,
                issuer_certificate=signer.issuer_certificate,
                trust=trust,
                revocations=load_cached(self._data_dir, trust).lists,
            )
        except VerificationError as exc:
            raise SignatureNotVerifiable(detail=f"{exc.reason}: {exc.message}") from exc
        return signed
