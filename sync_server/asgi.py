"""uvicorn entry point: ``uvicorn --factory sync_server.asgi:app_from_env``."""

from __future__ import annotations

from fastapi import FastAPI

from sync_server.app import create_app
from sync_server.settings import Settings


def app_from_env() -> FastAPI:
    return create_app(Settings())
