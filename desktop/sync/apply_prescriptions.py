"""Merge pulled prescription drafts and store pulled signed prescriptions, inside the page's transaction.

* ``prescription_draft`` (`shared.sync.prescription_merge`): a new draft is inserted with its stamps; a known
  one merges (the later line list wins whole; the loser goes to ``prescription_history``). A draft that is
  final here (signed, or its encounter completed) never changes: the pulled list is kept in history. A draft
  whose encounter is not here yet is parked, like an encounter without its patient; one for an encounter
  that already holds another prescription here is parked too (the PC keeps one prescription per encounter).
  When the pulled content is the one kept, its ``excluded_conditions`` become this PC's exclusions of earlier
  conditions for that encounter (audited rows in the doctor's name: excluded, or checked again) and its
  ``overrides`` (those naming their alert) this PC's overrides, so the Rx pad here checks what the draft was
  checked with.
* ``signed_prescription``: the signature is verified on this PC (`shared.signing.rx.verify_qr_payload`,
  against the shipped trust roots and the revocation lists cached in the data folder, as of its signing
  time), and the COSE bytes, QR text and content must be
  this prescription's. A bad one is not stored: its id and reason are kept in the sync state for the sync
  status (`refused_signed_prescriptions`) and logged. A good one is stored exactly as signed: the prescription
  row takes the signed lines (a differing local draft list goes to history) and becomes final, the signature
  row is written once.
* ``prescription_status`` (`shared.signing.status`): a signed status event (a pharmacy's dispensing, a cancel
  from another PC or this one's own echo) is verified on this PC with the signer's certificate (sent with it)
  against the prescription's signed content hash and the trust roots, then stored ``synced``. An event of a
  prescription not signed here yet is parked. One that takes the seq of this PC's pending event turns that
  one ``stale`` (the server will answer ``stale_base``; `desktop.services.rx_status` signs it again). A bad one
  is not stored: its id and reason are kept in the sync state (`refused_status_events`) and logged.

The push answer for this PC's events is recorded by `note_refused_drafts` (same transaction as the ack):
``applied`` makes an event ``synced``, ``stale_base`` ``stale``, any other rejection ``refused`` with its reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop.rx.revocations import load_cached
from desktop.store.encounters import EncounterRepository
from desktop.store.prescriptions import PrescriptionRepository, StoredPrescription, pad_lines, typed_line
from desktop.store.rx_status import StatusEventRepository, StoredEvent
from desktop.store.signed_prescriptions import SignedPrescriptionRepository, SignedRecord
from desktop.store.unit_of_work import UnitOfWork
from shared.audit import canonical_json
from shared.signing.errors import VerificationError
from shared.signing.revocation import RevocationList
from shared.signing.rx import certificates_of, encode_qr_payload, verify_qr_payload
from shared.signing.status import verify_event
from shared.signing.trust import TrustStore, default_trust
from shared.sync.merge import LostValue, MergeOutcome, Side
from shared.sync.prescription_merge import CONTENT_FIELDS, OPTIONAL_CONTENT_FIELDS, DraftConflict, merge_draft
from shared.sync.protocol import Change, ChangeStatus, RecordKind, RejectCode

log = logging.getLogger(__name__)

PARKED_KEY = "parked_prescriptions"
"""Sync-state key: pulled prescription changes waiting for their encounter (JSON list of changes)."""
REFUSED_KEY = "refused_signed_prescriptions"
"""Sync-state key: pulled signed prescriptions this PC refused to store, with the reason (JSON object)."""
REFUSED_STATUS_KEY = "refused_status_events"
"""Sync-state key: pulled status events this PC refused to store, with the reason (JSON object)."""
KINDS = frozenset({RecordKind.PRESCRIPTION_DRAFT, RecordKind.SIGNED_PRESCRIPTION, RecordKind.PRESCRIPTION_STATUS})
(EXCLUDED_FIELD,) = OPTIONAL_CONTENT_FIELDS


@dataclass
class PrescriptionStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0  # incoming line lists that lost to newer local ones
    refused: list[str] = field(default_factory=list)  # signed prescriptions refused: "id<TAB>reason"
    stored: set[str] = field(default_factory=set)  # ids of signed prescriptions stored by this page
    parked: list[Change] = field(default_factory=list)


class SignatureRefused(Exception):
    """A pulled signed prescription does not verify on this PC (the message gives the reason code first)."""


def apply_prescriptions(
    uow: UnitOfWork,
    changes: list[Change],
    *,
    clinic_id: uuid.UUID,
    now: datetime,
    trust: TrustStore | None = None,
) -> PrescriptionStats:
    """Apply the page's draft and signed-prescription changes (after its encounters), then the parked ones."""
    stats = PrescriptionStats()
    parked = [Change.model_validate(c) for c in json.loads(uow.sync_state.get(PARKED_KEY) or "[]")]
    todo = [*parked, *changes]
    if not todo:
        return stats  # the usual page (no prescriptions, nothing parked): no trust store to read
    signed = any(c.kind in (RecordKind.SIGNED_PRESCRIPTION, RecordKind.PRESCRIPTION_STATUS) for c in todo)
    if signed and trust is None:
        trust = default_trust()
    revocations = _revocations(uow, trust) if signed and trust is not None else ()
    refused_events: dict[str, str] = {}
    for change in todo:
        if change.kind is RecordKind.SIGNED_PRESCRIPTION:
            assert trust is not None
            _apply_signed(uow, change, now=now, stats=stats, trust=trust, revocations=revocations)
        elif change.kind is RecordKind.PRESCRIPTION_STATUS:
            assert trust is not None
            try:
                _apply_status(uow, change, now=now, stats=stats, trust=trust, revocations=revocations)
            except SignatureRefused as exc:
                log.error("pulled status event %s refused: %s", change.id, exc)
                refused_events[str(change.id)] = str(exc)
        else:
            _apply_draft(uow, change, now=now, stats=stats)
    if refused_events:
        known_events = dict(json.loads(uow.sync_state.get(REFUSED_STATUS_KEY) or "{}"))
        uow.sync_state.set(REFUSED_STATUS_KEY, json.dumps(known_events | refused_events))
    waiting = [c.model_dump(mode="json", include=set(Change.model_fields)) for c in stats.parked]
    if waiting or parked:
        uow.sync_state.set(PARKED_KEY, json.dumps(waiting) if waiting else None)
    known = refused_signed_prescriptions(uow)
    now_known = {k: v for k, v in known.items() if k not in stats.stored} | dict(
        r.split("\t", 1) for r in stats.refused
    )
    if now_known != known:
        uow.sync_state.set(REFUSED_KEY, json.dumps(now_known) if now_known else None)
    return stats


def refused_signed_prescriptions(uow: UnitOfWork) -> dict[str, str]:
    """Signed prescriptions from the feed that did not verify on this PC and were not stored: id → reason.

    For the sync status screen; an entry goes away when a later page brings that prescription and it verifies.
    """
    return dict(json.loads(uow.sync_state.get(REFUSED_KEY) or "{}"))


def _revocations(uow: UnitOfWork, trust: TrustStore) -> tuple[RevocationList, ...]:
    """The revocation lists cached in this PC's data folder (the one holding its database), if any."""
    database = uow.connection.engine.url.database
    if not database:
        return ()
    return load_cached(Path(database).parent, trust).lists


def _here(uow: UnitOfWork, encounter_id: uuid.UUID) -> bool:
    return EncounterRepository(uow.connection).synced_state(encounter_id) is not None


def _other_prescription(repo: PrescriptionRepository, encounter_id: uuid.UUID, rx_id: uuid.UUID) -> bool:
    other = repo.row_for_encounter(encounter_id)
    return other is not None and other.id != rx_id


def _apply_draft(uow: UnitOfWork, change: Change, *, now: datetime, stats: PrescriptionStats) -> None:
    repo = PrescriptionRepository(uow.connection)
    fields, stamps = dict(change.fields), dict(change.field_hlcs)
    if "lines" in fields and fields["lines"] is None:  # a REST draft: as this PC stores it, so echoes merge to nothing
        fields["lines"] = pad_lines(fields)
    local = repo.find(change.id)
    if local is None:
        encounter_id = uuid.UUID(str(fields["encounter_id"]))
        if not _here(uow, encounter_id) or _other_prescription(repo, encounter_id, change.id):
            stats.parked.append(change)
            return
        values = repo.values_of(fields, stamps)
        repo.insert(
            values
            | {"id": change.id, "encounter_id": encounter_id, "patient_id": uuid.UUID(str(fields["patient_id"])),
               "status": "draft", "created_at": now, "updated_at": now}
        )  # fmt: skip
        _mirror_decisions(repo, encounter_id, fields, now)
        stats.inserted += 1
        return
    current, current_hlcs = repo.synced_state(local)
    try:
        merged = merge_draft(current, current_hlcs, fields, stamps)
    except DraftConflict as exc:  # the server validated it: only a hand-edited local row can get here
        log.error("pulled prescription draft %s does not merge with this PC's copy: %s", change.id, exc)
        stats.unchanged += 1
        return
    result = merged
    if local.status != "draft":  # final here (signed or completed): frozen; the pulled list is kept in history
        kept = [
            LostValue(n, fields[n], stamps[n], Side.INCOMING)
            for n in CONTENT_FIELDS
            if n in fields and canonical_json(fields[n]) != canonical_json(current[n])
        ]
        if kept:
            repo.add_history(local.id, kept, {n: current_hlcs[n] for n in CONTENT_FIELDS}, now=now)
            stats.conflicts += 1
        stats.unchanged += 1
        return
    repo.add_history(local.id, result.lost, result.field_hlcs, now=now)
    stats.conflicts += 1 if any(lv.side is Side.INCOMING for lv in result.lost) else 0
    if result.outcome is MergeOutcome.NOOP:
        stats.unchanged += 1
        return
    repo.update(local.id, repo.values_of(result.fields, result.field_hlcs) | {"updated_at": now})
    if "lines" in stamps and result.field_hlcs.get("lines") == stamps["lines"]:  # the pulled content won
        _mirror_decisions(repo, local.encounter_id, fields, now)
    stats.updated += 1


def _mirror_decisions(
    repo: PrescriptionRepository, encounter_id: uuid.UUID, content: dict[str, Any], now: datetime
) -> None:
    """The doctor's decisions travel in the draft's content: exclusions of earlier conditions
    (``excluded_conditions``; absent: none) and overrides of major alerts (``overrides``). Make them this PC's,
    audited as that doctor's, so its Rx pad checks what the draft was checked with."""
    excluded, overrides = content.get(EXCLUDED_FIELD) or [], content.get("overrides") or []
    who = {"user_id": uuid.UUID(str(content["prescriber_id"])), "kb_version": str(content.get("kb_version") or "")}
    repo.mirror_exclusions(encounter_id, excluded if isinstance(excluded, list) else [], now=now, **who)
    repo.mirror_overrides(encounter_id, overrides if isinstance(overrides, list) else [], now=now, **who)


def _verify(
    change: Change, trust: TrustStore, revocations: tuple[RevocationList, ...]
) -> tuple[SignedRecord, dict[str, Any]]:
    """Check a pulled signed prescription as a pharmacist's verifier would; the record to store and its fields.

    Raises:
        SignatureRefused: it does not verify, or it is not this prescription.
    """
    f = change.fields
    try:
        cose = base64.b64decode(str(f["cose"]), validate=True)
    except (binascii.Error, ValueError, KeyError):
        raise SignatureRefused("malformed: cose is not base64") from None
    qr = str(f.get("qr_payload") or "")
    try:
        same_qr = encode_qr_payload(cose, limit=None) == qr
    except Exception:
        same_qr = False
    if not same_qr:
        raise SignatureRefused("content_mismatch: the QR text is not the QR of this signature")
    signed_at = datetime.fromisoformat(str(f["signed_at"]))
    check = verify_qr_payload(qr, trust, revocations, now=signed_at)
    if not check.valid or check.content is None or check.doctor is None:
        raise SignatureRefused(f"{check.reason}: {check.message}")
    if str(check.content.rx_id) != str(change.id):
        raise SignatureRefused("content_mismatch: the signed content is another prescription")
    if check.content_hash != f.get("content_hash"):
        raise SignatureRefused("content_mismatch: content_hash is not the hash of the signed content")
    record = SignedRecord(
        prescription_id=change.id,
        signer_id=uuid.UUID(str(f["prescriber_id"])),
        signer_kid=check.doctor.kid,
        signed_at=signed_at,
        expires_at=check.content.expires_at,
        content_hash=str(f["content_hash"]),
        cose=cose,
        qr_payload=qr,
        sandbox=check.sandbox,
    )
    return record, dict(f)


def _apply_signed(
    uow: UnitOfWork,
    change: Change,
    *,
    now: datetime,
    stats: PrescriptionStats,
    trust: TrustStore,
    revocations: tuple[RevocationList, ...],
) -> None:
    signed = SignedPrescriptionRepository(uow.connection)
    known = signed.find(change.id)
    if known is not None:
        if known.cose != base64.b64decode(str(change.fields.get("cose", ""))):
            log.error("pulled signed prescription %s differs from the one signed here; kept this PC's", change.id)
        stats.unchanged += 1
        return
    try:
        record, f = _verify(change, trust, revocations)
    except SignatureRefused as exc:
        log.error("pulled signed prescription %s refused: %s", change.id, exc)
        stats.refused.append(f"{change.id}\t{exc}")
        return
    repo = PrescriptionRepository(uow.connection)
    encounter_id = uuid.UUID(str(f["encounter_id"]))
    local = repo.find(change.id)
    if local is None and (not _here(uow, encounter_id) or _other_prescription(repo, encounter_id, change.id)):
        stats.parked.append(change)
        return
    content = {
        "prescriber_id": uuid.UUID(str(f["prescriber_id"])),
        "medications": f["medications"],
        "ayush_medications": f["ayush_medications"],
        "advisories": f["advisories"],
        "policy_version": f["policy_version"],
        "deleted": False,
        "sync_refusal": None,
    }
    if local is None:
        lines = [{"text": t, "expanded": None} for t in _texts(f)]
        repo.insert(
            content
            | {"id": change.id, "encounter_id": encounter_id, "patient_id": uuid.UUID(str(f["patient_id"])),
               "status": "draft", "lines": lines, "kb_version": "", "created_at": now, "updated_at": now}
        )  # fmt: skip
        stats.inserted += 1
    elif local.status == "draft":
        _keep_local_list(repo, local, f, change.hlc, now)
        repo.update(local.id, content | {"updated_at": now})
        stats.updated += 1
    signed.add(record, finalised_at=now)
    stats.stored.add(str(change.id))


def _texts(f: dict[str, Any]) -> list[str]:
    return [typed_line(m) for m in [*f["medications"], *f["ayush_medications"]] if isinstance(m, dict)]


def _keep_local_list(
    repo: PrescriptionRepository, local: StoredPrescription, f: dict[str, Any], hlc: str, now: datetime
) -> None:
    """A local draft list that differs from what was signed is kept in history (the signed one supersedes it)."""
    current, stamps = repo.synced_state(local)
    differs = [
        LostValue(n, current[n], stamps[n], Side.CURRENT)
        for n in ("medications", "ayush_medications")
        if canonical_json(current[n]) != canonical_json(f[n])
    ]
    repo.add_history(local.id, differs, dict.fromkeys(current, hlc), now=now)


def _apply_status(
    uow: UnitOfWork,
    change: Change,
    *,
    now: datetime,
    stats: PrescriptionStats,
    trust: TrustStore,
    revocations: tuple[RevocationList, ...],
) -> None:
    """Verify and store one pulled status event (or park it until its signed prescription is here).

    Raises:
        SignatureRefused: it does not verify (the reason code first).
    """
    events = StatusEventRepository(uow.connection)
    f = change.fields
    try:
        cose = base64.b64decode(str(f["cose"]), validate=True)
        rx_id = uuid.UUID(str(f["prescription_id"]))
        certificate = base64.b64decode(str(f["certificate"]), validate=True) if f.get("certificate") else None
    except (binascii.Error, ValueError, KeyError):
        raise SignatureRefused("malformed: cose, certificate or prescription_id") from None
    known = events.find(change.id)
    if known is not None:
        if known.cose == cose:
            if known.state != "synced":  # our own event, echoed: the server holds it
                events.set_state(change.id, "synced", refusal=None, now=now)
                stats.updated += 1
            else:
                stats.unchanged += 1
            return
        if known.state == "synced":
            log.error("pulled status event %s differs from the one stored here; kept this PC's", change.id)
            stats.unchanged += 1
            return
    signed = SignedPrescriptionRepository(uow.connection).find(rx_id)
    if signed is None:
        stats.parked.append(change)  # its signed prescription has not been pulled (or parked) yet
        return
    try:
        rx_doctor, rx_issuer = certificates_of(signed.cose)
        event = verify_event(
            cose,
            rx_id=rx_id,
            content_hash=signed.content_hash,
            doctor_certificate=certificate or rx_doctor,
            issuer_certificate=rx_issuer,
            trust=trust,
            revocations=revocations,
        )
    except VerificationError as exc:
        raise SignatureRefused(f"{exc.reason}: {exc.message}") from None
    why = f"stale_base: event {event.seq} is the server's {event.status} of {event.at:%Y-%m-%d %H:%M} UTC"
    events.make_way(rx_id, event.seq, keep=change.id, now=now, why=why)
    if known is not None:  # our own event, signed again here meanwhile: the server's copy is the one that counts
        events.adopt(change.id, seq=event.seq, at=event.at, kid=event.kid, cose=cose, now=now)
        stats.updated += 1
        return
    events.add(
        StoredEvent(
            id=change.id, prescription_id=rx_id, seq=event.seq, status=event.status, reason=event.reason,
            at=event.at, signer_id=None, signer_kid=event.kid, cose=cose, state="synced", refusal=None,
            created_at=now, updated_at=now,
        )
    )  # fmt: skip
    stats.inserted += 1


def refused_status_events(uow: UnitOfWork) -> dict[str, str]:
    """Pulled status events that did not verify on this PC and were not stored: id → reason."""
    return dict(json.loads(uow.sync_state.get(REFUSED_STATUS_KEY) or "{}"))


def _note_status_results(uow: UnitOfWork, entries: list[Any], results: list[Any]) -> None:
    """The server's answer to this PC's status events: synced, stale (sign again later) or refused for good."""
    repo = StatusEventRepository(uow.connection)
    now = datetime.now(UTC)
    for entry, result in zip(entries, results, strict=True):
        if entry.kind != RecordKind.PRESCRIPTION_STATUS:
            continue
        local = repo.find(entry.record_id)
        if local is None or local.state == "synced":
            continue
        sent = json.loads(entry.wire).get("fields", {}).get("cose")
        if sent != base64.b64encode(local.cose).decode("ascii"):
            continue  # signed again since: that newer copy has its own answer coming
        if result.status is ChangeStatus.APPLIED:
            repo.set_state(local.id, "synced", refusal=None, now=now)
        elif result.reason == RejectCode.STALE_BASE:
            repo.set_state(local.id, "stale", refusal=f"stale_base: {result.message or ''}", now=now)
        elif result.reason != RejectCode.CLOCK_SKEW:
            repo.set_state(local.id, "refused", refusal=f"{result.reason}: {result.message or ''}", now=now)


def note_refused_drafts(uow: UnitOfWork, entries: list[Any], results: list[Any]) -> None:
    """Record on each local draft the server's refusal of its pushed edit (in the push answer's transaction).

    The draft itself is not touched: it stays on this PC as the doctor saved it, and the Rx pad shows the
    refusal (`PrescribingService.sync_refusal`) until the next save. A refusal of an older edit than the
    draft's latest is not recorded (the newer edit is still on its way).

    The answers to this PC's status events are recorded here too (`_note_status_results`).
    """
    _note_status_results(uow, entries, results)
    repo = PrescriptionRepository(uow.connection)
    for entry, result in zip(entries, results, strict=True):
        if entry.kind != RecordKind.PRESCRIPTION_DRAFT or result.reason is None:
            continue
        local = repo.find(entry.record_id)
        if local is None or entry.hlc < max(local.field_hlcs.values(), default=""):
            continue
        refusal = {"reason": str(result.reason), "message": result.message or "", "hlc": entry.hlc}
        repo.set_sync_refusal(entry.record_id, refusal)
