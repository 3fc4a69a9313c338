"""Render screens to PNG at 1366×768 under tests/artifacts/ for people to look at (STYLE §2.8)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication, QWidget

SCREEN = (1366, 768)


def render_png(path: Path, base: QWidget | None, *overlays: QWidget) -> QImage:
    """Draw `base` at 1366×768 (or a grey desk when None) with dialogs centred on top, and save it as PNG."""
    QApplication.processEvents()
    image = QImage(*SCREEN, QImage.Format.Format_ARGB32)
    image.fill(QColor("#d9dde3"))
    painter = QPainter(image)
    try:
        if base is not None:
            base.resize(*SCREEN)
            QApplication.processEvents()
            painter.drawPixmap(0, 0, base.grab())
        for overlay in overlays:
            QApplication.processEvents()
            pixmap = overlay.grab()
            corner = QPoint((SCREEN[0] - pixmap.width()) // 2, (SCREEN[1] - pixmap.height()) // 2)
            if base is not None:
                painter.fillRect(0, 0, *SCREEN, QColor(0, 0, 0, 60))  # the modal shade
            painter.drawPixmap(corner, pixmap)
    finally:
        painter.end()
    assert image.save(str(path)), path
    return image
