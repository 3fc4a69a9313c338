"""Append-only, hash-chained audit log (one chain per clinic; sign-in events without a clinic share one)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.audit import GENESIS, link_hash

NO_CLINIC_CHAIN = uuid.UUID(int=0)


def entry_fields(
    *,
    seq: int,
    at: datetime,
    clinic_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    actor_role: str | None,
    action: str,
    entity_type: str,
    entity_id: str | None,
    client_ip: str | None,
    user_agent: str | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    """The JSON-ready fields an entry's hash covers (the same function builds and verifies)."""
    return {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "clinic_id": str(clinic_id) if clinic_id else None,
        "actor_id": str(actor_id) if actor_id else None,
        "actor_role": actor_role,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "client_ip": client_ip,
        "user_agent": user_agent,
        "details": details,
    }


async def append(
    conn: asyncpg.Connection,
    *,
    clinic_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    actor_role: str | None,
    action: str,
    entity_type: str,
    entity_id: str | None,
    client_ip: str | None,
    user_agent: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry inside the caller's transaction.

    Call it as the last statement before commit: the per-chain advisory lock it takes serialises writers of
    the same chain until they commit, which is what keeps ``seq`` gap-free and each ``prev_hash`` equal to the
    hash of the entry committed before it.
    """
    chain = clinic_id or NO_CLINIC_CHAIN
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))", str(chain))
    last = await conn.fetchrow("SELECT seq, hash FROM audit_logs WHERE chain = $1 ORDER BY seq DESC LIMIT 1", chain)
    seq = (last["seq"] + 1) if last else 1
    prev = last["hash"] if last else GENESIS
    at = datetime.now(UTC)
    details = details or {}
    fields = entry_fields(
        seq=seq,
        at=at,
        clinic_id=clinic_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        client_ip=client_ip,
        user_agent=user_agent,
        details=details,
    )
    await conn.execute(
        """
        INSERT INTO audit_logs (chain, seq, at, clinic_id, actor_id, actor_role, action, entity_type,
                                entity_id, client_ip, user_agent, details, prev_hash, hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14)
        """,
        chain,
        seq,
        at,
        clinic_id,
        actor_id,
        actor_role,
        action,
        entity_type,
        entity_id,
        client_ip,
        user_agent,
        json.dumps(details),
        prev,
        link_hash(prev, fields),
    )


async def chains(conn: asyncpg.Connection) -> list[uuid.UUID]:
    return [r["chain"] for r in await conn.fetch("SELECT DISTINCT chain FROM audit_logs ORDER BY chain")]


async def chain_entries(conn: asyncpg.Connection, chain: uuid.UUID) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM audit_logs WHERE chain = $1 ORDER BY seq", chain))


async def for_entity(
    conn: asyncpg.Connection, clinic_id: uuid.UUID, entity_type: str, entity_id: str
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            """
            SELECT * FROM audit_logs
            WHERE clinic_id = $1 AND entity_type = $2 AND entity_id = $3
            ORDER BY seq
            """,
            clinic_id,
            entity_type,
            entity_id,
        )
    )


_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
"""One value as `shared.audit.canonical_json` writes it (sorted keys, no spaces, UTF-8 kept): the encoder
``json.dumps`` would build for those arguments on every call, built once."""


_VARYING = ("seq", "action", "entity_type", "entity_id", "details")
"""The fields of `entry_fields` that differ between the entries of one `append_many` call."""


async def append_many(
    conn: asyncpg.Connection,
    *,
    clinic_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    actor_role: str | None,
    client_ip: str | None,
    user_agent: str | None,
    entries: list[dict[str, Any]],
) -> None:
    """Append several entries of one actor in one round trip (a sync push); same chaining as `append`.

    Each entry is a dict with ``action``, ``entity_type``, ``entity_id`` and optional ``details``.

    The hashes are those of `link_hash` over `entry_fields`, byte for byte: the canonical JSON of an entry is
    assembled from its fields' canonical JSON in sorted key order, the fields every entry shares encoded once
    (`tests/sync_server/test_audit_chain_fast.py` compares the two). The rows go in with one COPY.
    """
    if not entries:
        return
    chain = clinic_id
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))", str(chain))
    last = await conn.fetchrow("SELECT seq, hash FROM audit_logs WHERE chain = $1 ORDER BY seq DESC LIMIT 1", chain)
    seq = last["seq"] if last else 0
    prev = last["hash"] if last else GENESIS
    at = datetime.now(UTC)
    shared_fields = entry_fields(
        seq=0,
        at=at,
        clinic_id=clinic_id,
        actor_id=actor_id,
        actor_role=actor_role,
        action="",
        entity_type="",
        entity_id=None,
        client_ip=client_ip,
        user_agent=user_agent,
        details={},
    )
    # '{"key":value,...}' in sorted key order: constant pieces encoded once, None where an entry's value goes.
    keys = sorted(shared_fields)
    pieces: list[str] = []
    for n, key in enumerate(keys):
        pieces.append(("{" if n == 0 else ",") + _json(key) + ":")
        pieces.append("" if key in _VARYING else _json(shared_fields[key]))
    pieces.append("}")
    slots = [(2 * n + 1, key) for n, key in enumerate(keys) if key in _VARYING]
    # The entries of one call mostly repeat a few actions, entity types and details (a push: "sync.patient.upsert",
    # "patient", {"status": ..., "batch": ...}): their encodings are kept for the call. Only details whose keys
    # and values are all `str` are kept, so equal keys mean equal JSON (1, 1.0 and True are equal, their JSON not).
    texts: dict[str, str] = {}
    encoded_details: dict[tuple[tuple[Any, Any], ...], tuple[str, str]] = {}

    def text(value: Any) -> str:
        if type(value) is not str:
            return _json(value)
        out = texts.get(value)
        if out is None:
            out = texts[value] = _json(value)
        return out

    rows = []
    for entry in entries:
        seq += 1
        details = entry.get("details") or {}
        items = tuple(details.items())
        cacheable = all(type(k) is str and type(v) is str for k, v in items)
        both = encoded_details.get(items) if cacheable else None
        if both is None:
            both = (json.dumps(details), _json(details))
            if cacheable:
                encoded_details[items] = both
        stored_details, canonical_details = both
        values = {
            "seq": _json(seq),
            "action": text(entry["action"]),
            "entity_type": text(entry["entity_type"]),
            "entity_id": _json(entry["entity_id"]),
            "details": canonical_details,
        }
        for i, key in slots:
            pieces[i] = values[key]
        digest = hashlib.sha256(prev.encode() + b"\n" + "".join(pieces).encode()).hexdigest()
        rows.append(
            (
                chain,
                seq,
                at,
                clinic_id,
                actor_id,
                actor_role,
                entry["action"],
                entry["entity_type"],
                entry["entity_id"],
                client_ip,
                user_agent,
                stored_details,
                prev,
                digest,
            )
        )
        prev = digest
    await conn.copy_records_to_table("audit_logs", records=rows, columns=_COPY_COLUMNS)


_COPY_COLUMNS = (
    "chain",
    "seq",
    "at",
    "clinic_id",
    "actor_id",
    "actor_role",
    "action",
    "entity_type",
    "entity_id",
    "client_ip",
    "user_agent",
    "details",
    "prev_hash",
    "hash",
)
