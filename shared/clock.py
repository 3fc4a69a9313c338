"""Hybrid logical clock (HLC) stamps: create, compare, merge, encode; and the server's bound on future stamps.

A stamp is ``(wall_ms, counter, node)`` (Kulkarni, Demirbas et al., "Logical Physical Clocks", OPODIS 2014).
Stamps are totally ordered by wall time, then counter, then node id, and they decide last-writer-wins. The
clock gives two guarantees and one of them needs help from the server:

1. **Causality, whatever the wall clock says.** `HLC.update` folds every stamp a PC receives into its clock,
   and `HLC.now` never returns a stamp at or below one it has already issued or received. So an edit a PC
   makes after it has pulled a change is ordered after that change, even when the PC's clock is a day (or a
   year) slow, and even when the wall clock jumps backwards.
2. **No stamp from the future.** A PC whose clock is a day *fast* stamps every edit a day ahead. Left alone,
   those stamps would beat every concurrent edit made anywhere during the next day, and after one pull they
   would drag every other clock a day ahead as well. The HLC itself cannot see this (it trusts its own wall
   clock), so the server, whose clock is NTP-synchronised and is the reference, checks every incoming stamp
   with `check_incoming` and **rejects** one more than `MAX_DRIFT_MS` ahead of its own clock.

Why the bound is minutes and not "a day plus a margin". The requirement is that ±1 day of PC clock error
must not let a stale edit win. Whatever is accepted ahead of true time is exactly the head start a fast PC's
edits get over everybody else's, so a bound of 1 day + 1 hour would *guarantee* that a PC one day fast wins
every conflict for a day: it would build the bug in. The bound therefore only absorbs honest clock noise
(5 minutes, the same tolerance Kerberos uses), and PC clock error is handled elsewhere: a slow PC is
corrected by guarantee 1 and a fast PC is refused by guarantee 2 until its clock is fixed.

Why reject and not clamp. Re-stamping a fast PC's change on the server would leave the PC holding its own,
larger stamp for the same field, so a later edit from elsewhere would win on the server but lose on that PC:
the replicas would silently disagree. Clamping can also give two edits of one field the same stamp and lose
their order. A rejected change stays in the PC's outbox (nothing is lost), the result carries the
``clock_skew`` code with the measured offset, and the desktop tells the user to correct the date and time.

Where each bound applies. The server builds its `HLC` with the default `MAX_DRIFT_MS` and calls
`check_incoming` before `HLC.update`. The desktop receives only stamps the server has already bounded, so
the remote stamp can be ahead of a slow PC's clock by the PC's own error plus `MAX_DRIFT_MS`; it builds its
`HLC` with `DESKTOP_MAX_DRIFT_MS` (`PC_CLOCK_TOLERANCE_MS` + `MAX_DRIFT_MS`). A PC more than a day slow is
refused too, because its offline edits (stamped a day early) would lose to stale concurrent ones.

Encoding. ``encode`` writes ``WWWWWWWWWWWW-CCCC-node``: 12 lower-case hex digits of wall ms, 4 of counter,
then the node id. Because the first two parts have fixed width, comparing the strings gives the same order
as comparing the stamps, so databases can index and compare the text directly (in PostgreSQL use
``COLLATE "C"``: locale collations do not compare byte by byte).
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import DomainError

WALL_HEX_DIGITS = 12
COUNTER_HEX_DIGITS = 4
MAX_WALL_MS = 16**WALL_HEX_DIGITS - 1  # year 10889
MAX_COUNTER = 16**COUNTER_HEX_DIGITS - 1
MAX_NODE_LENGTH = 64

MAX_DRIFT_MS = 5 * 60 * 1000
"""How far ahead of the receiver's clock a stamp may be: honest clock noise only (see module docstring)."""

PC_CLOCK_TOLERANCE_MS = 24 * 60 * 60 * 1000
"""How wrong a PC's clock may be and the PC still sync (±1 day)."""

DESKTOP_MAX_DRIFT_MS = PC_CLOCK_TOLERANCE_MS + MAX_DRIFT_MS
"""Bound for a desktop `HLC`: a PC 1 day slow still accepts every stamp the server accepted."""

WallClock = Callable[[], int]
"""A function returning the current wall-clock time in milliseconds since the Unix epoch."""

_NODE_CHARS = rf"[0-9a-z_-]{{1,{MAX_NODE_LENGTH}}}"
_NODE = re.compile(_NODE_CHARS)
_ENCODED = re.compile(
    rf"(?P<wall>[0-9a-f]{{{WALL_HEX_DIGITS}}})-(?P<counter>[0-9a-f]{{{COUNTER_HEX_DIGITS}}})-(?P<node>{_NODE_CHARS})"
)


def system_wall_ms() -> int:
    """Read the operating system's wall clock.

    Returns:
        Milliseconds since the Unix epoch.
    """
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, order=True, slots=True)
class Stamp:
    """One HLC stamp; instances compare by ``(wall_ms, counter, node)``.

    Args:
        wall_ms: the logical wall time, milliseconds since the Unix epoch (0 to `MAX_WALL_MS`).
        counter: orders events within one ``wall_ms`` (0 to `MAX_COUNTER`).
        node: id of the node that issued the stamp: 1-64 characters of ``0-9 a-z _ -`` (a device UUID fits).

    Raises:
        ValueError: when a part is out of range or the node id has other characters.
    """

    wall_ms: int
    counter: int
    node: str

    def __post_init__(self) -> None:
        if not 0 <= self.wall_ms <= MAX_WALL_MS:
            raise ValueError(f"HLC wall time must be between 0 and {MAX_WALL_MS} ms, got {self.wall_ms}")
        if not 0 <= self.counter <= MAX_COUNTER:
            raise ValueError(f"HLC counter must be between 0 and {MAX_COUNTER}, got {self.counter}")
        if not _NODE.fullmatch(self.node):
            raise ValueError(
                f"HLC node id must be 1-{MAX_NODE_LENGTH} characters of 0-9, a-z, '_' or '-', got {self.node!r:.80}"
            )

    def __str__(self) -> str:
        return encode(self)


def encode(stamp: Stamp) -> str:
    """Encode a stamp as text that sorts like the stamp.

    Args:
        stamp: the stamp.

    Returns:
        ``WWWWWWWWWWWW-CCCC-node`` with fixed-width lower-case hex wall ms and counter.
    """
    return f"{stamp.wall_ms:0{WALL_HEX_DIGITS}x}-{stamp.counter:0{COUNTER_HEX_DIGITS}x}-{stamp.node}"


@functools.lru_cache(maxsize=8_192)
def decode(text: str) -> Stamp:
    """Parse text made by `encode` (cached: a sync batch decodes the same stamps many times; `Stamp` is frozen
    and errors are not cached). The cache holds a push batch's stamps (at most 1000 changes, most stamping
    all their fields alike); an entry costs ≈ 370 B, and 65,536 of them kept 23 MiB of a long-running API
    process once 50,000 records had passed through it (BENCHMARKS.md, P2).

    Args:
        text: an encoded stamp.

    Returns:
        The stamp.

    Raises:
        ValueError: when the text is not exactly the `encode` format.
    """
    match = _ENCODED.fullmatch(text)
    if match is None:
        raise ValueError(
            f"not an HLC stamp: expected {WALL_HEX_DIGITS} hex digits, '-', {COUNTER_HEX_DIGITS} hex digits, "
            f"'-', node id; got {text!r:.120}"
        )
    return Stamp(int(match["wall"], 16), int(match["counter"], 16), match["node"])


def _describe_ms(ms: int) -> str:
    """Human text for a duration, e.g. ``1 d 0 h 3 min`` or ``42 s``."""
    seconds = abs(ms) // 1000
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


class ClockSkewError(DomainError):
    """A stamp is further ahead of the receiver's clock than the allowed drift.

    Args:
        message: sentence for the user, saying which clock to correct.
        ahead_ms: how far the stamp's wall time is ahead of the receiver's wall clock.
        max_drift_ms: the bound that was exceeded.
    """

    code = "sync.clock_skew"

    def __init__(self, message: str, *, ahead_ms: int, max_drift_ms: int) -> None:
        super().__init__(message)
        self.ahead_ms = ahead_ms
        self.max_drift_ms = max_drift_ms


def _next(wall_ms: int, counter: int) -> tuple[int, int]:
    """The position after ``(wall_ms, counter)``, borrowing a millisecond when the counter is full."""
    if counter < MAX_COUNTER:
        return wall_ms, counter + 1
    return wall_ms + 1, 0


class HLC:
    """A hybrid logical clock for one node; safe to share between threads.

    Args:
        node: this node's id (the desktop's device id, or the server instance's id).
        wall_clock: returns wall time in ms; inject a fake in tests or an offset-corrected clock.
        max_drift_ms: `update` refuses remote stamps further ahead of ``wall_clock()`` than this. Servers
            keep the default `MAX_DRIFT_MS`; desktops pass `DESKTOP_MAX_DRIFT_MS`.
        last: the greatest stamp this node issued or received before (persist it and pass it back after a
            restart, so the clock never goes back).

    Raises:
        ValueError: when ``node`` is not a valid node id or ``max_drift_ms`` is negative.
    """

    def __init__(
        self,
        node: str,
        *,
        wall_clock: WallClock = system_wall_ms,
        max_drift_ms: int = MAX_DRIFT_MS,
        last: Stamp | None = None,
    ) -> None:
        if max_drift_ms < 0:
            raise ValueError("max_drift_ms must not be negative")
        self._node = Stamp(0, 0, node).node  # validates the node id
        self._wall_clock = wall_clock
        self._max_drift_ms = max_drift_ms
        self._wall_ms = last.wall_ms if last is not None else 0
        self._counter = last.counter if last is not None else 0
        self._lock = threading.Lock()

    @property
    def node(self) -> str:
        """This node's id."""
        return self._node

    @property
    def last(self) -> Stamp:
        """The clock's current position, stamped with this node's id (what to persist)."""
        with self._lock:
            return Stamp(self._wall_ms, self._counter, self._node)

    def now(self) -> Stamp:
        """Stamp a local event (an edit, or sending a message).

        Returns:
            A stamp greater than every stamp this clock issued or received before.

        Raises:
            ValueError: when the wall clock reads beyond `MAX_WALL_MS`.
        """
        with self._lock:
            physical = self._wall_clock()
            if physical > self._wall_ms:
                wall, counter = physical, 0
            else:
                wall, counter = _next(self._wall_ms, self._counter)
            stamp = Stamp(wall, counter, self._node)
            self._wall_ms, self._counter = wall, counter
            return stamp

    def update(self, remote: Stamp) -> Stamp:
        """Fold in a received stamp and stamp the receive event.

        Args:
            remote: a stamp from another node (a pulled change, or the server's ``server_hlc``).

        Returns:
            A stamp greater than ``remote`` and than every stamp this clock issued or received before.

        Raises:
            ClockSkewError: when ``remote`` is more than ``max_drift_ms`` ahead of this node's wall clock;
                the clock is left unchanged.
            ValueError: when the wall clock reads beyond `MAX_WALL_MS`.
        """
        with self._lock:
            physical = self._wall_clock()
            ahead_ms = remote.wall_ms - physical
            if ahead_ms > self._max_drift_ms:
                raise ClockSkewError(
                    f"The other computer's time is {_describe_ms(ahead_ms)} ahead of this computer's clock "
                    f"(at most {_describe_ms(self._max_drift_ms)} is allowed). Check the date and time "
                    "settings of this computer, then sync again.",
                    ahead_ms=ahead_ms,
                    max_drift_ms=self._max_drift_ms,
                )
            # The HLC receive rule (Kulkarni et al. 2014), except that a full counter borrows a millisecond.
            wall = max(self._wall_ms, remote.wall_ms, physical)
            if wall == self._wall_ms == remote.wall_ms:
                wall, counter = _next(wall, max(self._counter, remote.counter))
            elif wall == self._wall_ms:
                wall, counter = _next(wall, self._counter)
            elif wall == remote.wall_ms:
                wall, counter = _next(wall, remote.counter)
            else:
                counter = 0
            stamp = Stamp(wall, counter, self._node)
            self._wall_ms, self._counter = wall, counter
            return stamp


@dataclass(frozen=True)
class IncomingVerdict:
    """What the server does with an incoming stamp (see `check_incoming`).

    Args:
        accepted: True when the stamp may be stored and folded into the server's clock.
        ahead_ms: how far the stamp's wall time is ahead of the server's clock (negative when behind).
        max_drift_ms: the bound the stamp was checked against.
    """

    accepted: bool
    ahead_ms: int
    max_drift_ms: int

    def to_error(self) -> ClockSkewError:
        """The error to report for a rejected stamp (its message names the PC's clock).

        Returns:
            A `ClockSkewError` whose message tells the PC's user how far ahead their clock is.
        """
        return ClockSkewError(
            f"This computer's clock is about {_describe_ms(self.ahead_ms)} ahead of the server "
            f"(at most {_describe_ms(self.max_drift_ms)} is allowed). Correct its date and time and sync "
            "again; the change is kept and will be sent then.",
            ahead_ms=self.ahead_ms,
            max_drift_ms=self.max_drift_ms,
        )


def check_incoming(stamp: Stamp, server_now_ms: int, max_drift_ms: int = MAX_DRIFT_MS) -> IncomingVerdict:
    """Decide whether the server accepts a pushed change's stamp.

    The server rejects (does not clamp) stamps more than ``max_drift_ms`` ahead of its own clock, so a PC
    whose clock is fast cannot make its edits win; old stamps are always accepted (PCs work offline for
    days). Check the greatest stamp of a change, then fold the accepted one in with `HLC.update`.

    Args:
        stamp: the incoming stamp (the greatest of the change's stamps).
        server_now_ms: the server's wall clock in ms.
        max_drift_ms: the allowed lead; keep the default `MAX_DRIFT_MS` (the module docstring says why it
            must not be a day).

    Returns:
        The verdict, with the measured lead.

    Raises:
        ValueError: when ``max_drift_ms`` is negative.
    """
    if max_drift_ms < 0:
        raise ValueError("max_drift_ms must not be negative")
    ahead_ms = stamp.wall_ms - server_now_ms
    return IncomingVerdict(accepted=ahead_ms <= max_drift_ms, ahead_ms=ahead_ms, max_drift_ms=max_drift_ms)
