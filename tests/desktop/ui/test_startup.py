"""`integmed` with no command starts the app: in a fresh process, the setup window is the first window shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Runs `integmed --data-dir DIR` in-process of a child Python; a timer reports the first visible window and
# closes it, which ends the app the way a user closing the window does.
_CHILD = """
import sys, time
started = time.perf_counter()
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])

def look():
    shown = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.isWindow()]
    if not shown:
        QTimer.singleShot(10, look)
        return
    print("FIRST_WINDOW", type(shown[0]).__name__, shown[0].windowTitle(), flush=True)
    print(f"STARTED_IN_S {time.perf_counter() - started:.2f}", flush=True)
    QApplication.closeAllWindows()

QTimer.singleShot(0, look)
from desktop.cli import main
sys.exit(main(["--data-dir", sys.argv[1]]))
"""


def test_integmed_without_a_command_opens_the_setup_window(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    env.pop("INTEGMED_DESKTOP_SERVER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "FIRST_WINDOW SetupWindow IntegMed: set up this computer" in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "data" / "integmed.sqlite3").exists()
    assert (tmp_path / "data" / "logs" / "integmed.log").exists()
