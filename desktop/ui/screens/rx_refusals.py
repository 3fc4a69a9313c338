"""The clinic server's refusal of a status event signed on this PC, in words a doctor acts on.

A cancellation the server refused for good (``refused``, with the push answer's ``reason: message`` as
`desktop.sync.apply_prescriptions.note_refused_drafts` records it) leaves the prescription valid on the server,
at the pharmacy and on the clinic's other PCs, while this PC knew it as cancelled until the answer came. The
encounter screen shows `refusal_notice` under the prescription's status, in the error colour while the
prescription is not ended, with what the doctor can do: cancel again (the refused event does not count,
`desktop.services.rx_status.status_of`), or ask the clinic admin when a retry would be refused the same way.
Once a later event ends it (his retry, or another PC's cancellation the pull brought), the refusal is history:
still said, in a quieter colour.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from desktop.services.rx_status import RxStatus

Severity = Literal["error", "warning", "info"]

SHOWN = 3
"""At most this many refusals are told one by one (the latest ones); the rest are counted."""

_NOUN = {"cancelled": "cancellation", "superseded": "supersession", "dispensed": "dispensing record"}
# The push answer's reason code, then the server's sub-codes (``bad_signature: unknown_key: …``), then words.
_CODES = re.compile(r"^((?:[a-z][a-z_]*:\s*)*)(.*)$", re.DOTALL)


class _Event(Protocol):
    """What is read of a refused event (`RxStatus.refused`)."""

    @property
    def status(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def signer_id(self) -> uuid.UUID | None: ...
    @property
    def refusal(self) -> str | None: ...


@dataclass(frozen=True)
class RefusalNotice:
    text: str
    severity: Severity
    retry_refused: bool = False
    """Cancelling again from this PC now would be refused the same way (the screen then does not offer it)."""


def _split(refusal: str | None) -> tuple[list[str], str]:
    """``"bad_signature: unknown_key: k1 is not …"`` → ``(["bad_signature", "unknown_key"], "k1 is not …")``."""
    match = _CODES.match((refusal or "").strip())
    assert match is not None  # the pattern matches any text
    codes = [c.strip() for c in match.group(1).split(":") if c.strip()]
    return codes, match.group(2).strip().rstrip(". ")


def _one(event: _Event, viewer: uuid.UUID) -> str:
    codes, words = _split(event.refusal)
    noun = _NOUN.get(event.status, f"'{event.status}' event")
    whose = f"your {noun}" if event.signer_id == viewer else f"the {noun} signed on this PC"
    when = event.at.astimezone().strftime("%d %b %Y %H:%M")
    why = words or "no reason given"
    if codes[:1] == ["bad_signature"]:
        why = f"your signature on it did not verify ({why})"
    return f"The clinic server refused {whose} of {when}: {why}."


_RETRY = "Cancel again (Ctrl+Shift+C) if the reason allows; if it is refused again, contact the clinic admin."
_ACTIONS = {  # by the push answer's reason code (`shared.sync.protocol.RejectCode`)
    "bad_signature": "Ask the clinic admin to check your signing key, then cancel again (Ctrl+Shift+C).",
    "not_in_scope": "Cancelling again from this PC would be refused too: contact the clinic admin.",
}
_NOT_PRESCRIBER = "Only the prescribing doctor can cancel it, on his own sign-in; or contact the clinic admin."


def _what_now(latest: _Event, status: RxStatus, viewer: uuid.UUID, prescriber: uuid.UUID) -> tuple[str, Severity, bool]:
    """What the refusal leaves, what the doctor can do about it, and whether cancelling again would be refused."""
    if status.ended:
        ending = _NOUN.get(status.status, status.status)
        if status.waiting:
            return f"The {ending} shown above replaces it; it reaches the server at the next sync.", "warning", False
        return f"The prescription is {status.status} on the server all the same: nothing more to do.", "info", False
    codes, words = _split(latest.refusal)
    code = codes[0] if codes else ""
    if code == "signed_immutable" and "already" in words:
        said = "The server already holds a cancellation or supersession of this prescription from another PC; "
        return said + "it shows here after the next sync.", "warning", True
    still = "dispensed" if status.status == "dispensed" else "signed and valid"
    said = (
        f"The prescription is NOT {latest.status.upper()} on the server: pharmacies and the clinic's other PCs "
        f"still see it as {still}. "
    )
    action = _ACTIONS.get(code, _RETRY) if viewer == prescriber else _NOT_PRESCRIBER
    return said + action, "error", code == "not_in_scope"


def refusal_notice(status: RxStatus, *, viewer: uuid.UUID, prescriber: uuid.UUID) -> RefusalNotice | None:
    """The refusals of the prescription's events, what they leave and what to do; None when there is none.

    Args:
        status: the prescription's status (`RxStatusService.for_encounter`).
        viewer: the signed-in doctor.
        prescriber: the doctor who signed the prescription (only he may cancel it).
    """
    refused = sorted(status.refused, key=lambda e: (e.at, e.updated_at))
    if not refused:
        return None
    lines = [_one(e, viewer) for e in refused[-SHOWN:]]
    if len(refused) > SHOWN:
        more = len(refused) - SHOWN
        lines.insert(0, f"{more} earlier refusal{'s are' if more > 1 else ' is'} not shown.")
    after, severity, retry_refused = _what_now(refused[-1], status, viewer, prescriber)
    return RefusalNotice("\n".join([*lines, after]), severity, retry_refused)
