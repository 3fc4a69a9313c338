"""What every record kind's push path uses to refuse one change: the exception and the result it becomes."""

from __future__ import annotations

from shared.sync.protocol import Change, ChangeResult, ChangeStatus, RejectCode

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
