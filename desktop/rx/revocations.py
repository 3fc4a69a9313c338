"""The revocation-list cache in the data folder: ``<data_dir>/trust/revocations.cbor``.

The file is a CBOR array of signed revocation lists exactly as published (one per signer, the highest sequence
number kept). Lists are re-checked against the trust roots every time they are loaded, so a file edited by
hand can only lose entries, never add forged ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cbor2

from shared.signing.errors import VerificationError
from shared.signing.revocation import RevocationList, parse_revocation_list
from shared.signing.trust import TrustStore

CACHE_FOLDER = "trust"
CACHE_FILE = "revocations.cbor"


class RevocationImportError(Exception):
    """A revocation list file that cannot be installed; the message says why."""


@dataclass(frozen=True)
class CachedRevocations:
    """The lists loaded from the cache, and the problems met (a damaged file, a list that no longer checks)."""

    lists: tuple[RevocationList, ...]
    problems: tuple[str, ...]


def cache_path(data_dir: Path) -> Path:
    """Where the cache lives in a data folder."""
    return data_dir / CACHE_FOLDER / CACHE_FILE


def load_cached(data_dir: Path, trust: TrustStore) -> CachedRevocations:
    """The revocation lists in the cache that still verify against ``trust`` (none when there is no cache)."""
    path = cache_path(data_dir)
    if not path.is_file():
        return CachedRevocations((), ())
    try:
        items = cbor2.loads(path.read_bytes())
    except (OSError, ValueError, cbor2.CBORDecodeError) as exc:
        return CachedRevocations((), (f"the revocation cache {path} cannot be read ({exc}); import a list again",))
    if not isinstance(items, list | tuple):
        return CachedRevocations((), (f"the revocation cache {path} is damaged; import a list again",))
    lists: list[RevocationList] = []
    problems: list[str] = []
    for raw in items:
        try:
            lists.append(parse_revocation_list(bytes(raw), trust))
        except (VerificationError, TypeError) as exc:
            problems.append(f"a cached revocation list was ignored: {exc}")
    return CachedRevocations(tuple(lists), tuple(problems))


def import_list(data_dir: Path, data: bytes, trust: TrustStore) -> RevocationList:
    """Check a signed revocation list and install it in the cache (replacing its signer's older list).

    Raises:
        RevocationImportError: it does not verify, or the cache already holds a newer list from that signer.
    """
    try:
        new = parse_revocation_list(data, trust)
    except VerificationError as exc:
        raise RevocationImportError(f"not a valid revocation list ({exc.reason.value}): {exc.message}") from exc
    cached = load_cached(data_dir, trust).lists
    for old in cached:
        if old.signer_kid == new.signer_kid and old.sequence > new.sequence:
            raise RevocationImportError(
                f"the installed list from {new.signer_kid} is newer (number {old.sequence} > {new.sequence})"
            )
    kept = [old.raw for old in cached if old.signer_kid != new.signer_kid] + [new.raw]
    path = cache_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(cbor2.dumps(kept))
    os.replace(temporary, path)  # atomic: a crash leaves the old cache or the new one
    return new
