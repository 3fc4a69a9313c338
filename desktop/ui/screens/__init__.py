"""Screens: one module per thing the user works on (setup, unlock, patient search, form, detail, first sync)."""
