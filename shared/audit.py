"""Hash chain for the append-only audit log: each entry's hash covers the previous entry's hash.

Changing, deleting or reordering any stored entry breaks every later link, and `verify_chain` names the
first entry where the chain breaks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS = "0" * 64

JsonScalar = str | int | float | bool | None


def canonical_json(value: object) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, UTF-8) of a JSON-ready value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(prev_hash: str, entry: Mapping[str, object]) -> str:
    """Hash of one audit entry chained to its predecessor.

    Args:
        prev_hash: hex SHA-256 of the previous entry, or `GENESIS` for the first one.
        entry: the entry's JSON-ready fields (without its own hash).

    Returns:
        Hex SHA-256 over ``prev_hash`` and the canonical entry bytes.
    """
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_json(entry)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where a chain stops verifying: the position and the reason."""

    index: int
    reason: str


def verify_chain(entries: Iterable[tuple[str, str, Mapping[str, object]]]) -> ChainBreak | None:
    """Verify a sequence of ``(prev_hash, hash, fields)`` triples in chain order.

    Args:
        entries: stored entries, oldest first.

    Returns:
        None when every link holds, otherwise the first `ChainBreak`.
    """
    expected_prev = GENESIS
    for i, (prev_hash, stored_hash, fields) in enumerate(entries):
        if prev_hash != expected_prev:
            return ChainBreak(i, "previous-hash link does not match the entry before it")
        if link_hash(prev_hash, fields) != stored_hash:
            return ChainBreak(i, "entry content does not match its hash")
        expected_prev = stored_hash
    return None
