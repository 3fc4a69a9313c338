"""Open a file (a printed prescription PDF) with the program the PC uses for it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices


def open_with_system(path: Path) -> None:
    """Hand the file to the desktop (PDF viewer, from where it prints); returns at once."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
