"""Verifying the audit log's hash chains."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.audit import ChainBreak, verify_chain
from sync_server.db import audit as audit_db
from sync_server.services.context import Actor


async def verify_all(conn: asyncpg.Connection) -> dict[uuid.UUID, tuple[int, ChainBreak | None]]:
    """For every chain: (number of entries, first break or None)."""
    out = {}
    for chain in await audit_db.chains(conn):
        rows = await audit_db.chain_entries(conn, chain)
        triples = [
            (
                r["prev_hash"],
                r["hash"],
                audit_db.entry_fields(
                    seq=r["seq"],
                    at=r["at"],
                    clinic_id=r["clinic_id"],
                    actor_id=r["actor_id"],
                    actor_role=r["actor_role"],
                    action=r["action"],
                    entity_type=r["entity_type"],
                    entity_id=r["entity_id"],
                    client_ip=r["client_ip"],
                    user_agent=r["user_agent"],
                    details=json.loads(r["details"]),
                ),
            )
            for r in rows
        ]
        out[chain] = (len(rows), verify_chain(triples))
    return out


async def record(
    conn: asyncpg.Connection,
    actor: Actor,
    *,
    action: str,
    entity_type: str,
    entity_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry for something ``actor`` did, in the caller's transaction (last statement)."""
    await audit_db.append(
        conn,
        clinic_id=actor.clinic_id,
        actor_id=actor.user_id,
        actor_role=actor.role,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        client_ip=actor.meta.client_ip,
        user_agent=actor.meta.user_agent,
        details=details,
    )


async def record_many(conn: asyncpg.Connection, actor: Actor, entries: list[dict[str, Any]]) -> None:
    """Append audit entries (``action``, ``entity_type``, ``entity_id``, ``details`` each) for what ``actor`` did,
    in the caller's transaction, with one statement (`sync_server.db.audit.append_many`)."""
    await audit_db.append_many(
        conn,
        clinic_id=actor.clinic_id,
        actor_id=actor.user_id,
        actor_role=actor.role,
        client_ip=actor.meta.client_ip,
        user_agent=actor.meta.user_agent,
        entries=entries,
    )
