"""Qt fixtures for desktop UI tests: offscreen platform, gui marking, strict Qt and Python logging, artifacts.

QT_QPA_PLATFORM must be set before the QApplication exists, which is why it is set at import time here.

The app-level tests run against the real server of the end-to-end tests (`tests/e2e/conftest.py`: uvicorn on
loopback, embedded PostgreSQL, the national-services sandbox for HPR OTPs); `make_desktop` builds the real
`desktop.app.DesktopApp` on this test's own SQLite copy, and `enrolled_user` enrols the PC first.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from keyring.backends import fail
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop.config import DesktopSettings
from desktop.security.secrets import SecretStore
from desktop.services.auth import AuthService
from desktop.services.patients import PatientService
from desktop.store import LocalStore
from desktop.store.users import LocalUser
from desktop.sync.transport import RetryPolicy, Transport
from tests.desktop.ui.encounter_harness import Harness
from tests.e2e.conftest import Server, server  # noqa: F401
from tests.sync_server.conftest import MBBS_MOBILE, last_otp, sandbox_url, settings  # noqa: F401

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_HERE = Path(__file__).parent
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "artifacts"
# Noise of the offscreen platform plugin itself, not of our code.
QT_LOG_IGNORE = ("This plugin does not support propagateSizeHints",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expect_log_warnings: the test expects desktop.* to log warnings or errors")
    config.addinivalue_line(
        "markers", "expect_presented_errors: the test expects the `harness` runner to present errors (dialogs)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `gui` and make Qt warnings fail it (STYLE §2.8)."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.gui)
            if item.get_closest_marker("qt_log_level_fail") is None:
                item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(*QT_LOG_IGNORE))


@pytest.fixture(autouse=True)
def _qapp_first(qapp: QApplication) -> QApplication:
    """Every test here gets the QApplication; fonts, QRawFont and widgets crash without one."""
    return qapp


@pytest.fixture(autouse=True)
def _logfail(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose desktop code logged a warning or error it did not declare."""
    caplog.set_level(logging.INFO, logger="desktop")
    yield
    if request.node.get_closest_marker("expect_log_warnings"):
        return
    unexpected = [
        f"{r.name}: {r.levelname}: {r.getMessage()}"
        for r in caplog.get_records("call")
        if r.levelno >= logging.WARNING and r.name.startswith("desktop")
    ]
    assert not unexpected, "unexpected log records:\n" + "\n".join(unexpected)


@pytest.fixture(scope="session")
def bundled_families(qapp: QApplication) -> list[str]:
    """Register the shipped fonts once per session; returns the family names."""
    from desktop.ui.fonts import register_bundled_fonts

    return register_bundled_fonts()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Git-ignored folder for PNGs that people look at (tests/artifacts/)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


# --- the app against a real server (tests/e2e fixtures: uvicorn API, embedded PostgreSQL, sandbox) ---------


PIN = "482913"


class RecordingPresenter:
    """Stands in for the error dialogs: records what would have been shown."""

    def __init__(self) -> None:
        self.shown: list[tuple[QWidget | None, BaseException]] = []

    def __call__(self, parent: QWidget | None, exc: BaseException) -> None:
        self.shown.append((parent, exc))


def fast_transport(url: str) -> Transport:
    """A transport that gives up on a stopped server in milliseconds, not seconds."""
    return Transport(url, retry=RetryPolicy(attempts=2, base_s=0.01, max_s=0.02), timeout_s=5)


@pytest.fixture(scope="session")
def ui_app(qapp: QApplication) -> QApplication:
    """The QApplication prepared as `desktop.app.main` prepares it: name, bundled fonts, UI font, style."""
    from desktop.app import prepare_application

    prepare_application(qapp, gui_thread_gc=False)  # tests collect per test instead (`_collect_on_main_thread`)
    return qapp


@pytest.fixture(autouse=True)
def _collect_on_main_thread() -> Iterator[None]:
    """As in the app (`desktop.ui.gc_guard`): no cycle collection on worker threads during a UI test, and the
    test's garbage (Qt objects in cycles, e.g. pyqtgraph plots) collected here, on the GUI thread, after it."""
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.enable()


@pytest.fixture
def presenter() -> RecordingPresenter:
    return RecordingPresenter()


@pytest.fixture
def harness(
    request: pytest.FixtureRequest,
    qtbot: QtBot,
    local_store: LocalStore,
    patient_service: PatientService,
    presenter: RecordingPresenter,
) -> Iterator[Harness]:
    """The encounter screen's services on this test's store, with one patient (`encounter_harness.Harness`).

    No error may have been presented by the end of the test unless it is marked ``expect_presented_errors``.
    """
    made = Harness(qtbot, local_store, patient_service, presenter)
    yield made
    made.close()
    if request.node.get_closest_marker("expect_presented_errors") is None:
        assert presenter.shown == []


@pytest.fixture
def device_secrets(data_dir: Path) -> SecretStore:
    """This test PC's secret store: the file in its data folder (no OS keyring on a test box)."""
    return SecretStore("device", data_dir, system_keyring=fail.Keyring())


@pytest.fixture
def make_desktop(
    ui_app: QApplication,
    desktop_settings: DesktopSettings,
    local_store: LocalStore,
    presenter: RecordingPresenter,
    device_secrets: SecretStore,
) -> Iterator[Callable[..., object]]:
    """Builds the real `DesktopApp` on this test's store; closes it before the store closes."""
    # The doctors' signing keys (P4): the same file-backed store as the device token, opened now, not mid-test.
    signing_secrets = SecretStore("signing", desktop_settings.data_dir, system_keyring=fail.Keyring())
    from desktop.app import DesktopApp
    from desktop.ui.bridges.sync_worker import SyncTimings

    made: list[DesktopApp] = []

    def make(*, server_url: str | None = None, timings: SyncTimings | None = None) -> DesktopApp:
        app_settings = DesktopSettings(data_dir=desktop_settings.data_dir, server_url=server_url)
        app = DesktopApp(
            app_settings,
            local_store,
            error_presenter=presenter,
            secrets=device_secrets,
            signing_secrets=signing_secrets,
            transport_factory=fast_transport,
            timings=timings or SyncTimings(round_interval_ms=600_000, probe_interval_ms=600_000, after_write_ms=50),
        )
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture
def enrolled_user(local_store: LocalStore, server: Server, sandbox_url: str, device_secrets: SecretStore) -> LocalUser:  # noqa: F811
    """This PC enrolled for the demo clinic by Dr. Ananya Sharma (HPR OTP from the sandbox), with PIN `PIN`."""
    transport = fast_transport(server.url)
    try:
        auth = AuthService(local_store.uow, device_secrets, lambda _url: transport)
        txn, _ = auth.start_sign_in(server.url, MBBS_MOBILE)
        user = auth.finish_sign_in(server.url, txn, last_otp(sandbox_url, MBBS_MOBILE), pc_name="test-pc")
        auth.set_pin(user.user_id, PIN)
    finally:
        transport.close()
    return user
