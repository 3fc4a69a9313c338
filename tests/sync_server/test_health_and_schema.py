"""Liveness, readiness, migrations (idempotent, reversible), OpenAPI document, audit chain verification."""

from __future__ import annotations

import json
import subprocess
import sys

from fastapi.testclient import TestClient

from sync_server.app import create_app
from sync_server.db import migrate
from sync_server.settings import Settings
from tests.factories import make_patient
from tests.helpers import pg
from tests.sync_server.conftest import SignedIn


def test_health_needs_no_database(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/none"})
    with TestClient(create_app(down)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "database not reachable" in r.json()["detail"]


def test_ready_when_migrated(api: TestClient) -> None:
    r = api.get("/ready")
    assert r.status_code == 200
    assert r.json()["schema_revision"] == migrate.head_revision()


def test_ready_says_why_when_schema_is_behind(settings: Settings) -> None:
    migrate.downgrade(settings.database_url, "base")
    with TestClient(create_app(settings)) as client:
        r = client.get("/ready")
        assert r.status_code == 503
        assert "integmed-server migrate" in r.json()["detail"]
    migrate.upgrade(settings.database_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 200


def test_migrate_is_idempotent_and_downgrade_works(settings: Settings) -> None:
    dsn = settings.database_url
    migrate.upgrade(dsn)
    migrate.upgrade(dsn)
    assert migrate.current_revision_sync(dsn) == migrate.head_revision()
    migrate.downgrade(dsn, "base")
    assert migrate.current_revision_sync(dsn) is None
    assert pg.scalar(dsn, "SELECT to_regclass('public.patients')") is None
    migrate.upgrade(dsn)
    assert pg.scalar(dsn, "SELECT to_regclass('public.patients')") == "patients"


def test_head_read_from_the_files_is_alembics_and_the_api_does_not_import_alembic_or_pillow() -> None:
    """The API process starts without what only migrations (alembic, SQLAlchemy) or a server-side signature's
    QR (qrcode, Pillow) need: they cost it memory whether used or not."""
    import subprocess
    import sys

    assert migrate.head_revision() == migrate.alembic_head()
    probe = (
        "import sys; from sync_server.app import create_app; from sync_server.db import migrate;"
        " migrate.head_revision();"
        " print(sorted(m for m in ('alembic', 'sqlalchemy', 'qrcode', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_revisions_are_date_stamped() -> None:
    from alembic.script import ScriptDirectory

    for rev in ScriptDirectory(str(migrate.SCRIPT_LOCATION)).walk_revisions():
        assert rev.revision[:10].replace("_", "").isdigit(), rev.revision


def test_openapi_has_real_schemas_and_examples(api: TestClient) -> None:
    spec = api.get("/api/openapi.json").json()
    paths = spec["paths"]
    for path in [
        "/api/v1/auth/doctor/init",
        "/api/v1/auth/doctor/verify",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/patients",
        "/api/v1/patients/{patient_id}",
        "/health",
        "/ready",
    ]:
        assert path in paths, path
    schemas = spec["components"]["schemas"]
    assert "Problem" in schemas and "PatientCreate" in schemas
    assert schemas["PatientCreate"]["examples"][0]["name"] == "Rajesh Kumar"
    post = paths["/api/v1/patients"]["post"]
    assert "409" in post["responses"] and "application/problem+json" in post["responses"]["409"]["content"]
    assert api.get("/api/docs").status_code == 200 and api.get("/api/redoc").status_code == 200


def test_audit_chain_verifies_and_detects_tampering(api: TestClient, doctor: SignedIn, settings: Settings) -> None:
    for _ in range(3):
        api.post("/api/v1/patients", json=make_patient(), headers=doctor.headers)
    env = {"INTEGMED_DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "sync_server.cli", "audit-verify"]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout and "BROKEN" not in ok.stdout
    # Someone with database superuser rights rewrites history behind the trigger's back:
    pg.query(settings.database_url, "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update")
    pg.query(
        settings.database_url,
        "UPDATE audit_logs SET details = '{\"x\": 1}' WHERE action = 'patient.create' AND seq = "
        "(SELECT min(seq) FROM audit_logs WHERE action = 'patient.create')",
    )
    bad = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 1
    assert "BROKEN" in bad.stdout and "does not match its hash" in bad.stdout
    assert json.loads(json.dumps(bad.stdout))  # printable text
