"""The IMRX1 preset zlib dictionary (RFC 1950 FDICT): CBOR skeletons and words common on Indian prescriptions.

Part of the IMRX1 format: a QR compressed with it can only be read with exactly these bytes, so this module
never changes within IMRX1 (a test pins its SHA-256). A better dictionary means a new prefix (IMRX2).
zlib finds matches anywhere in the last 32 KiB, and nearer ones cost fewer bits, so the most frequent
strings come last.
"""

from __future__ import annotations

_CBOR_FRAGMENTS = (
    # certificate: tag 18, [h'a10127' {1: -8}, {}, payload ...
    "d28443a10127a0",
    # certificate claims: cnf {1: {1: 1, 3: -8, -1: 6, -2: h'...32 bytes'}}
    "08a101a4010103272006215820",
    # private claims key -70001 followed by a small map {1: role
    "3a00011170a70103",
    "3a00011170a10102",
    # prescription: tag 18, [h'{1: -8, 4: h'8 bytes'}', {-70001: [certificates]}
    "d2844da201270448",
    "a13a000111708259",
)

_WORDS = (
    "Sub-lingual Inhalation Nasal drops Eye drops Ear drops Ointment Cream Gel Lotion Suspension Drops "
    "Injection Sachet Powder Granules Arishta Asava Ghrita Taila Guggulu Bhasma Kwath Kashayam Vati Churna "
    "churna vati tablet capsule syrup drops cream ointment inhaler injection topical oral local "
    "Unani Siddha Homoeopathy Ayurveda ayurveda homoeopathy unani siddha modern allopathy "
    "BAMS BHMS BUMS BSMS MBBS MD MS DNB Medicine Dr. Medical Council State Medical Council "
    "Karnataka Maharashtra Tamil Nadu Kerala Delhi Uttar Pradesh Gujarat Rajasthan West Bengal "
    "Board of Indian Medicine Council of Homoeopathy "
    "Review after Review in weeks week days months with fasting glucose if symptoms persist "
    "mellitus diabetes hypertension fever cough cold pain infection "
    "as needed when required SOS stat once a week twice daily once daily three times daily every 8 hours "
    "with milk with warm water with honey with water after meals before meals after food before food "
    "empty stomach before breakfast after breakfast after lunch after dinner at bedtime at night "
    "in the morning  mg  ml  g  mcg  IU 1 tablet 1 capsule 5 ml 10 ml 2 tablets "
    "1-1-1 1-0-1 0-1-0 1-0-0 0-0-1 1/2-0-1/2 "
    "TABLET CAPSULE ORAL "
    "Clinic Hospital Ayurveda Centre Integrative Health Centre Road Nagar "
    "91-XXXX-XXXX- XX-XXXX-XXXX-"
)

IMRX1_ZDICT: bytes = b"".join(bytes.fromhex(fragment) for fragment in _CBOR_FRAGMENTS) + _WORDS.encode("utf-8")
"""The preset dictionary of the IMRX1 format."""
