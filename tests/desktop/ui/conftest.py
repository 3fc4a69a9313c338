"""Qt fixtures for desktop UI tests: offscreen platform, gui marking, strict Qt and Python logging, artifacts.

QT_QPA_PLATFORM must be set before the QApplication exists, which is why it is set at import time here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_HERE = Path(__file__).parent
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "artifacts"
# Noise of the offscreen platform plugin itself, not of our code.
QT_LOG_IGNORE = ("This plugin does not support propagateSizeHints",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expect_log_warnings: the test expects desktop.* to log warnings or errors")


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
