"""Verifying the audit log's hash chains."""

from __future__ import annotations

import json
import uuid

import asyncpg

from shared.audit import ChainBreak, verify_chain
from sync_server.db import audit as audit_db


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
