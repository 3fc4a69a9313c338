"""Prescription logic: formulary lookup, shorthand expansion, interaction checks, signing.

Modules:
    formulary: versioned YAML knowledge files → `Formulary` (resolve any medicine name to its entry).
    timing: dosage timing (FHIR R4 Timing.repeat-shaped), frequency wording and quantity rules.
    shorthand: one typed prescription line ("Metf 1000 bd 30d") → `ExpandedLine`.
    dispense: a line's total (60 tablets, 75 mL) → whole packs of the formulary's default pack (`Dispense`).
"""
