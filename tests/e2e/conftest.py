"""End-to-end: a real API and sandbox on loopback (uvicorn), embedded PostgreSQL, and clinic PCs on SQLite."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from desktop.config import DATABASE_FILE, DesktopSettings
from desktop.services.auth import AuthService
from desktop.services.patients import PatientService
from desktop.store import LocalStore, migrate, open_local_store
from desktop.sync.client import SyncClient, SyncReport
from desktop.sync.commands import device_secrets
from desktop.sync.transport import RetryPolicy, Transport
from shared.clock import WallClock, system_wall_ms
from shared.records.patient import PatientFields
from sync_server.app import create_app
from sync_server.settings import Settings
from tests.helpers.servers import free_port, serve
from tests.sync_server.conftest import MBBS_MOBILE, last_otp, sandbox_url, seed_demo, settings  # noqa: F401

RECORD_FIELDS = tuple(PatientFields.model_fields)  # what must agree across PCs and the server


@dataclass
class Server:
    """The API served by uvicorn on a fixed loopback port; can be stopped and started again (same data)."""

    settings: Settings
    port: int
    _cm: object | None = None
    app: Any = None  # the running app (its state holds the feed listener)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.app = create_app(self.settings)
        self._cm = serve(self.app, port=self.port)
        self._cm.__enter__()  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)  # type: ignore[attr-defined]
            self._cm = None


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:  # noqa: F811
    seed_demo(settings)
    srv = Server(settings, free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def sqlite_template_e2e(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template-e2e") / DATABASE_FILE
    migrate.upgrade(path, backups_dir=path.parent / "backups")
    return path


@dataclass
class PC:
    """One clinic PC: its own data folder and SQLite file, the production services and sync client."""

    name: str
    data_dir: Path
    server_url: str
    sandbox: str
    wall_clock: WallClock = system_wall_ms
    transport_factory: Callable[[str], Transport] = field(
        default=lambda url: Transport(url, retry=RetryPolicy(attempts=2, base_s=0.01, max_s=0.02))
    )
    store: LocalStore | None = None
    _transport: Transport | None = None

    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.transport_factory(self.server_url)
        return self._transport

    def open(self) -> PC:
        local = DesktopSettings(data_dir=self.data_dir)
        self.store = open_local_store(local.database_path, backups_dir=local.backups_dir, wall_clock=self.wall_clock)
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self.store is not None:
            self.store.close()
            self.store = None

    @property
    def patients(self) -> PatientService:
        assert self.store is not None
        return PatientService(writer=self.store.writer, uow=self.store.uow, clock=self.store.clock)

    @property
    def auth(self) -> AuthService:
        assert self.store is not None
        return AuthService(
            self.store.uow, device_secrets(DesktopSettings(data_dir=self.data_dir)), lambda url: self.transport()
        )

    def enroll(self, mobile: str = MBBS_MOBILE) -> None:
        txn, _ = self.auth.start_sign_in(self.server_url, mobile)
        self.auth.finish_sign_in(self.server_url, txn, last_otp(self.sandbox, mobile), pc_name=self.name)

    def client(self) -> SyncClient:
        assert self.store is not None
        enrolment = self.auth.enrolment()
        assert enrolment is not None
        transport = self.transport()
        token = self.auth.device_token()
        assert token is not None
        transport.use_device(enrolment.device_id, token)
        return SyncClient(
            self.store.uow, transport, self.store.clock, device_id=enrolment.device_id, revocations_dir=self.data_dir
        )

    def sync(self) -> SyncReport:
        return self.client().run_once()

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every patient on this PC, keyed by id, without local bookkeeping (for convergence checks)."""
        out = {}
        for p in self.patients.all_patients():
            data = p.model_dump(mode="json")
            out[data["id"]] = {k: data[k] for k in RECORD_FIELDS}
        return out


@pytest.fixture
def make_pc(tmp_path: Path, server: Server, sandbox_url: str, sqlite_template_e2e: Path) -> Iterator[Callable[..., PC]]:  # noqa: F811
    made: list[PC] = []

    def make(name: str, **kw: object) -> PC:
        data_dir = tmp_path / name
        data_dir.mkdir()
        shutil.copyfile(sqlite_template_e2e, data_dir / DATABASE_FILE)
        pc = PC(name, data_dir, server.url, sandbox_url, **kw).open()  # type: ignore[arg-type]
        made.append(pc)
        return pc

    yield make
    for pc in made:
        pc.close()


def server_snapshot(server: Server, sandbox: str) -> dict[str, dict[str, object]]:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        init = http.post("/api/v1/auth/doctor/init", json={"mobile": MBBS_MOBILE}).json()
        token = http.post(
            "/api/v1/auth/doctor/verify", json={"txn_id": init["txn_id"], "otp": last_otp(sandbox, MBBS_MOBILE)}
        ).json()["access_token"]
        out: dict[str, dict[str, object]] = {}
        cursor = None
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = http.get("/api/v1/patients", params=params, headers={"Authorization": f"Bearer {token}"}).json()
            for p in page["items"]:
                out[p["id"]] = {k: p[k] for k in RECORD_FIELDS}
            cursor = page["next_cursor"]
            if cursor is None:
                return out
