"""Who is calling and from where: passed from routes to services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestMeta:
    client_ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Actor:
    """An authenticated user of one clinic (from a verified access token + a live session)."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    clinic_id: uuid.UUID
    role: str
    hpr_id: str | None
    meta: RequestMeta
