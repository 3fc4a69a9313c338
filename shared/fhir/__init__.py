"""FHIR R4 documents for ABDM (NRCeS profiles), built as plain dicts and validated with fhir.resources R4B.

Modules:
    prescription_record: a signed prescription → ABDM PrescriptionRecord document Bundle.
    validation: `validate_bundle` (base FHIR R4B structure + the ABDM profile rules we rely on).
"""
