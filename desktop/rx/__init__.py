"""Offline verification of printed prescriptions: read the QR (text, image or PDF), check it, report it."""
