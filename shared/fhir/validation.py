"""Validate a FHIR document Bundle: base R4B structure (fhir.resources) plus the ABDM rules we depend on.

fhir.resources checks the base specification only (abdm_hpr_fhir.md §7.5), so the NRCeS profile rules the
PrescriptionRecord must meet (§7.1-7.4) are checked here too: document type, versionId, Composition first with
SNOMED 440545006, exactly one section whose entries carry `type`, identifiers with a `type`, references that
resolve inside the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fhir.resources.R4B.bundle import Bundle
from pydantic import JsonValue, ValidationError

from shared.errors import DomainError


class BundleInvalid(DomainError):
    """The bundle is not valid; `problems` lists each as "path: message"."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("FHIR bundle is invalid:\n" + "\n".join(f"  - {p}" for p in self.problems))


def _path(loc: Sequence[object]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(bundle)"


def _dict(value: object) -> Mapping[str, JsonValue]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[JsonValue]:
    return value if isinstance(value, list) else []


def abdm_problems(bundle: Mapping[str, JsonValue]) -> list[str]:
    """The ABDM PrescriptionRecord/DocumentBundle rules `bundle` breaks, as "path: message" (empty if none)."""
    problems: list[str] = []
    if bundle.get("type") != "document":
        problems.append("type: must be 'document'")
    if not _dict(bundle.get("meta")).get("versionId"):
        problems.append("meta.versionId: required by the ABDM DocumentBundle profile")
    entries = [_dict(e) for e in _list(bundle.get("entry"))]
    if not entries or _dict(entries[0].get("resource")).get("resourceType") != "Composition":
        return [*problems, "entry[0]: the first entry must be the Composition"]
    problems.extend(_composition_problems(_dict(entries[0].get("resource")), {e.get("fullUrl") for e in entries}))
    for i, entry in enumerate(entries):
        resource = _dict(entry.get("resource"))
        if resource.get("resourceType") in ("Patient", "Practitioner"):
            for k, ident in enumerate(_list(resource.get("identifier"))):
                if not _dict(ident).get("type") or not _dict(ident).get("value"):
                    problems.append(f"entry[{i}].resource.identifier[{k}]: needs type and value")
    return problems


def _composition_problems(comp: Mapping[str, JsonValue], urls: set[JsonValue]) -> list[str]:
    problems: list[str] = []
    codings = _list(_dict(comp.get("type")).get("coding"))
    if [(_dict(c).get("system"), _dict(c).get("code")) for c in codings] != [("http://snomed.info/sct", "440545006")]:
        problems.append("entry[0].resource.type.coding: must be exactly SNOMED 440545006")
    sections = _list(comp.get("section"))
    if len(sections) != 1:
        problems.append("entry[0].resource.section: exactly one section")
    for s, section in enumerate(sections):
        for n, item in enumerate(_list(_dict(section).get("entry"))):
            ref = _dict(item)
            where = f"entry[0].resource.section[{s}].entry[{n}]"
            if ref.get("type") not in ("MedicationRequest", "Binary"):
                problems.append(f"{where}.type: must be MedicationRequest or Binary")
            if ref.get("reference") not in urls:
                problems.append(f"{where}.reference: does not resolve inside the bundle")
    return problems


def validate_bundle(bundle: Mapping[str, JsonValue]) -> Bundle:
    """Parse `bundle` with fhir.resources R4B and check the ABDM document rules.

    Args:
        bundle: a Bundle as a JSON-ready dict.

    Returns:
        The parsed R4B `Bundle` model.

    Raises:
        BundleInvalid: listing every problem with its path (e.g. "entry[3].resource.status: Field required").
    """
    try:
        model = Bundle.model_validate(dict(bundle))
    except ValidationError as exc:
        raise BundleInvalid([f"{_path(e['loc'])}: {e['msg']}" for e in exc.errors()]) from exc
    problems = abdm_problems(bundle)
    if problems:
        raise BundleInvalid(problems)
    return model
