"""What every record kind's push path uses to refuse one change: the exception and the result it becomes."""

from __future__ import annotations

import json
from typing import Any

from shared.clock import HLC, Stamp, check_incoming, decode, system_wall_ms
from shared.sync.merge import MergeResult, Side
from shared.sync.protocol import Change, ChangeResult, ChangeStatus, RejectCode
from sync_server.services.context import Actor

MAX_MESSAGE = 2000


class RejectChange(Exception):
    """Refuse this change with a code and a sentence; nothing of it is written."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def rejected(change: Change, code: RejectCode, message: str) -> ChangeResult:
    """The result that answers a refused change, in the change's own kind."""
    return ChangeResult(
        kind=change.kind, id=change.id, status=ChangeStatus.REJECTED, reason=code, message=message[:MAX_MESSAGE]
    )


def accept_stamp(change: Change, clock: HLC) -> Stamp:
    """The change's stamp, once it is within the clock skew this server accepts; the server clock takes it in.

    Raises:
        RejectChange: ``clock_skew``, with the sentence that tells the user to fix the PC's date and time.
    """
    stamp = decode(change.hlc)
    verdict = check_incoming(stamp, system_wall_ms())
    if not verdict.accepted:
        raise RejectChange(RejectCode.CLOCK_SKEW, verdict.to_error().message)
    clock.update(stamp)
    return stamp


def lost_values(actor: Actor, change: Change, merged: MergeResult) -> list[tuple[Any, ...]]:
    """`sync_server.db.sync.add_history` rows for every value that lost a merge, kept with the stamp that beat
    it (conflict = the incoming one lost)."""
    kind = str(change.kind)
    return [
        (
            actor.clinic_id,
            kind,
            change.id,
            lost.field,
            json.dumps(lost.value),
            lost.hlc,
            merged.field_hlcs[lost.field],
            lost.side is Side.INCOMING,
            str(actor.user_id),
        )
        for lost in merged.lost
    ]
