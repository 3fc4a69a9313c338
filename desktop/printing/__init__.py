"""Printing: the printable prescription model and its reportlab PDF (A5/A4, shaped Indic text, QR)."""
