"""The one place exceptions become dialogs (STYLE §2.7; Anki's `show_exception`).

* A `desktop.errors.KnownError` (disk full, server unreachable, keyring unavailable, …) is an expected
  failure: a warning with its message and what to do about it.
* A `shared.errors.DomainError` (a rule the typed data breaks) is shown with its message. Screens normally
  put `RuleViolation` problems next to their fields; this is the fallback.
* `Cancelled` is shown to no one.
* Anything else is a bug: it is logged with its traceback, and a report dialog names the exception and the
  log file to send to support. The app keeps running.

Every dialog opens without blocking (`QMessageBox.open`), window-modal over its parent or application-modal
when there is none, has a default button for Enter and closes with Esc.
"""

from __future__ import annotations

import logging
import traceback
from concurrent.futures import CancelledError
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from desktop.errors import Cancelled, KnownError
from shared.errors import DomainError, RuleViolation

logger = logging.getLogger(__name__)

REPORT_TITLE = "Something went wrong"
REPORT_TEXT = "IntegMed hit a problem it did not expect, so the last action may not have finished."


class ErrorPresenter:
    """`present_error` bound to the log file; `app.py` makes one and hands it to the runner.

    Args:
        log_path: the log file a user should send to support, named in the report dialog.
    """

    def __init__(self, log_path: Path | None) -> None:
        self.log_path = log_path

    def __call__(self, parent: QWidget | None, exc: BaseException) -> QMessageBox | None:
        return present_error(parent, exc, log_path=self.log_path)


def is_cancellation(exc: BaseException) -> bool:
    """True for a user's cancel (`desktop.errors.Cancelled`) or a future cancelled before it ran."""
    return isinstance(exc, Cancelled | CancelledError)


def present_error(parent: QWidget | None, exc: BaseException, *, log_path: Path | None = None) -> QMessageBox | None:
    """Show `exc` to the user the way its kind deserves; returns the open dialog (None for a cancel)."""
    if is_cancellation(exc):
        return None
    if isinstance(exc, KnownError):
        logger.info("Known error %s: %s (%s)", exc.code, exc.message, exc.detail or "no detail")
        box = _known_error_box(parent, exc)
    elif isinstance(exc, DomainError):
        logger.info("Domain error %s: %s", exc.code, exc.message)
        box = _domain_error_box(parent, exc)
    else:
        logger.error("Unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
        box = _report_box(parent, exc, log_path)
    if parent is not None:
        box.open()  # window-modal over the window it is about
    else:
        box.show()  # no window to attach to (it was closed): application-modal
    return box


def _known_error_box(parent: QWidget | None, exc: KnownError) -> QMessageBox:
    where = f"\n\n{exc.path}" if exc.path is not None else ""
    box = _message_box(parent, QMessageBox.Icon.Warning, exc.title, exc.message + where)
    if exc.action:
        box.setInformativeText(exc.action)
    if exc.detail:
        box.setDetailedText(exc.detail)
    return box


def _domain_error_box(parent: QWidget | None, exc: DomainError) -> QMessageBox:
    if isinstance(exc, RuleViolation) and exc.problems:
        text = "\n".join(problem.message for problem in exc.problems)
    else:
        text = exc.message
    return _message_box(parent, QMessageBox.Icon.Warning, "Please check", text)


def _report_box(parent: QWidget | None, exc: BaseException, log_path: Path | None) -> QMessageBox:
    box = _message_box(parent, QMessageBox.Icon.Critical, REPORT_TITLE, REPORT_TEXT)
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if log_path is not None:
        where = f"Please send this file to your IntegMed support person:\n{log_path}"
    else:
        where = "Please tell your IntegMed support person what you were doing, with the details below."
    box.setInformativeText(f"Error: {kind}\n\n{where}\n\nYou can keep working.")
    box.setDetailedText("".join(traceback.format_exception(exc)))
    if log_path is not None:
        folder = log_path.parent
        open_folder = box.addButton("Open log folder", QMessageBox.ButtonRole.ActionRole)
        open_folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))))
    return box


def _message_box(parent: QWidget | None, icon: QMessageBox.Icon, title: str, text: str) -> QMessageBox:
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setWindowModality(Qt.WindowModality.WindowModal if parent is not None else Qt.WindowModality.ApplicationModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setDefaultButton(QMessageBox.StandardButton.Ok)
    box.setEscapeButton(QMessageBox.StandardButton.Ok)
    return box
