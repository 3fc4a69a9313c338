"""Signed prescriptions: Ed25519 keys, COSE_Sign1, certificates, revocation lists, trust roots and the QR codec.

The format is described in ``docs/signing.md``. Everything here is pure: bytes in, bytes or typed results out.
"""
