"""What a verifier knows happened to a signed prescription after signing: cancelled, superseded, dispensed.

A printed QR is signed once and never changes, so the QR alone cannot say that its prescriber cancelled it
the next day: an offline check of the QR says VALID for ever (until it expires). A verifier that also holds the
prescription's signed status events (`shared.signing.status`) — a clinic PC whose store has synced them, or
the IntegMed server — folds them into the verification with `apply_standing`:

* ``cancelled`` or ``superseded`` (terminal; only the prescriber signs one): the prescription is authentic but
  must not be dispensed, so the verification becomes INVALID with `Reason.CANCELLED` / `Reason.SUPERSEDED`,
  the event's date and reason in the message, and the content and doctor kept for display;
* ``dispensed``: still VALID (the document is authentic and current), with a note that it was already
  dispensed, when and with what note, so that a second pharmacy does not dispense it again.

Only events about the very content that was verified count: same prescription id and same content hash.
The events must already have been verified by whoever stored them (the server checks every event it
receives; a PC checks every event it pulls and signs its own); this module decides, it does not check
signatures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from shared.signing.errors import Reason
from shared.signing.rx import Standing, Verification
from shared.signing.status import TERMINAL, StatusEvent

_TERMINAL_REASON = {"cancelled": Reason.CANCELLED, "superseded": Reason.SUPERSEDED}


def _when(event: StatusEvent) -> str:
    return event.at.strftime("%Y-%m-%d %H:%M UTC")


def latest_event(events: Iterable[StatusEvent], *, rx_id: object, content_hash: str) -> StatusEvent | None:
    """The event that decides the prescription's standing: the first terminal one, else the last by seq.

    Events about another prescription or other content are ignored.
    """
    relevant = sorted(
        (e for e in events if e.rx_id == rx_id and e.content_hash == content_hash), key=lambda e: (e.seq, e.at)
    )
    if not relevant:
        return None
    return next((e for e in relevant if e.status in TERMINAL), relevant[-1])


def apply_standing(result: Verification, events: Iterable[StatusEvent], *, known_from: str) -> Verification:
    """Fold the prescription's known status events into a verification of its QR.

    Args:
        result: the QR's verification (`shared.signing.rx.verify_qr_payload`).
        events: status events the caller holds for prescriptions (any; the ones about this content are used).
        known_from: where they come from, for the pharmacist ("this PC", "the IntegMed server").

    Returns:
        ``result`` itself when nothing is known (or the QR's content could not be read), else a copy with
        `Verification.standing` set and, for a terminal event, INVALID with its reason; a QR already INVALID
        for another reason keeps that reason and gains a note.
    """
    if result.content is None or result.content_hash is None:
        return result
    event = latest_event(events, rx_id=result.content.rx_id, content_hash=result.content_hash)
    if event is None:
        return result
    standing = Standing(event.status, event.at, event.reason, event.seq, known_from)
    if event.status in TERMINAL:
        if event.status == "cancelled":
            message = f"cancelled by the prescriber on {_when(event)} ({event.reason}); do not dispense"
        else:
            message = (
                f"replaced by a newer prescription on {_when(event)} ({event.reason}); do not dispense this one, "
                "ask for the new prescription"
            )
        message += f" (recorded on {known_from})"
        if not result.valid:
            return dataclasses.replace(result, standing=standing, notes=(*result.notes, f"also {message}"))
        return dataclasses.replace(
            result, valid=False, reason=_TERMINAL_REASON[event.status], message=message, standing=standing
        )
    note = f"already dispensed on {_when(event)} ({event.reason}), recorded on {known_from}: do not dispense it again"
    return dataclasses.replace(result, standing=standing, notes=(*result.notes, note))
