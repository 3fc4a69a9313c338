"""Clinic set-up: seeding demo clinics whose staff are professionals looked up in the HPR registry."""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

import asyncpg

from shared.ids import uuid7
from sync_server.db import audit
from sync_server.db import clinics as clinics_db
from sync_server.hpr.client import HprClient


def demo_clinics() -> list[dict[str, Any]]:
    text = resources.files("sync_server.sandbox").joinpath("demo_clinics.json").read_text("utf-8")
    return list(json.loads(text)["clinics"])


async def seed_demo_in_own_transactions(pool: asyncpg.Pool, hpr: HprClient) -> list[dict[str, Any]]:
    """Create the demo clinics (once) and enrol their staff from the registry's records (every time).

    Returns:
        One entry per seeded staff member: clinic, name, role, qualification, mobile.
    """
    seeded = []
    for clinic in demo_clinics():
        clinic_id = uuid.UUID(clinic["id"])
        staff = []
        for member in clinic["staff"]:
            pro = await hpr.search_by_hpr_id(member["hpr_id"])
            if pro is None:
                raise RuntimeError(f"demo staff {member['hpr_id']} is unknown to the HPR registry")
            staff.append((member["role"], pro))
        async with pool.acquire() as conn, conn.transaction():
            if await clinics_db.get(conn, clinic_id) is None:
                await clinics_db.insert(
                    conn,
                    clinic_id=clinic_id,
                    name=clinic["name"],
                    state=clinic["state"],
                    address=clinic["address"],
                )
                await audit.append(
                    conn,
                    clinic_id=clinic_id,
                    actor_id=None,
                    actor_role="system",
                    action="clinic.create",
                    entity_type="clinic",
                    entity_id=str(clinic_id),
                    client_ip=None,
                    user_agent="seed-demo",
                )
            for role, pro in staff:
                await clinics_db.upsert_user(
                    conn,
                    user_id=uuid7(),
                    clinic_id=clinic_id,
                    fields={
                        "hpr_id": pro.hpr_id,
                        "hpr_address": pro.hpr_address,
                        "name": pro.name,
                        "mobile": pro.mobile,
                        "qualification": pro.qualification,
                        "system_of_medicine": pro.system_of_medicine,
                        "registration_council": pro.registration_council,
                        "registration_number": pro.registration_number,
                        "state": pro.state,
                        "role": role,
                    },
                )
                seeded.append(
                    {
                        "clinic": clinic["name"],
                        "name": pro.name,
                        "role": role,
                        "qualification": pro.qualification,
                        "mobile": pro.mobile,
                    }
                )
    return seeded
