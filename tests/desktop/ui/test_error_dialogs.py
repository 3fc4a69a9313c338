"""The error presenter: known errors warn with an action, bugs get a report dialog, cancels show nothing."""

from __future__ import annotations

from concurrent.futures import CancelledError
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from desktop.errors import Cancelled, DiskFull, KeyringUnavailable
from desktop.ui.error_dialogs import REPORT_TITLE, ErrorPresenter, present_error
from shared.errors import Conflict, FieldProblem, RuleViolation


@pytest.fixture
def window(qtbot: QtBot) -> QWidget:
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _shown(qtbot: QtBot, box: QMessageBox | None) -> QMessageBox:
    assert box is not None
    qtbot.waitExposed(box)
    return box


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


class TestKnownErrors:
    def test_known_error_is_a_warning_with_its_message_and_action(self, qtbot: QtBot, window: QWidget) -> None:
        error = DiskFull(detail="SQLITE_FULL", path=Path("/data/integmed.sqlite3"))
        box = _shown(qtbot, present_error(window, error))
        assert box.icon() == QMessageBox.Icon.Warning
        assert box.windowTitle() == DiskFull.title
        assert box.text().startswith(DiskFull.default_message)
        assert "/data/integmed.sqlite3" in box.text()
        assert box.informativeText() == DiskFull.action
        assert box.detailedText() == "SQLITE_FULL"
        assert box.windowModality() == Qt.WindowModality.WindowModal
        with qtbot.waitSignal(box.finished):
            box.accept()

    def test_escape_closes_and_enter_presses_the_default_button(self, qtbot: QtBot, window: QWidget) -> None:
        box = _shown(qtbot, present_error(window, KeyringUnavailable()))
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.Ok)
        assert box.escapeButton() is box.button(QMessageBox.StandardButton.Ok)
        with qtbot.waitSignal(box.finished):
            qtbot.keyClick(box, Qt.Key.Key_Escape)

        box = _shown(qtbot, present_error(window, KeyringUnavailable()))
        with qtbot.waitSignal(box.buttonClicked) as clicked:
            qtbot.keyClick(box, Qt.Key.Key_Return)
        assert clicked.args == [box.button(QMessageBox.StandardButton.Ok)]

    def test_rule_violation_lists_each_problem(self, qtbot: QtBot, window: QWidget) -> None:
        error = RuleViolation(
            problems=[
                FieldProblem("pin", "pin.too_short", "Use at least 6 digits."),
                FieldProblem("mobile", "mobile.digits", "A mobile number has 10 digits."),
            ]
        )
        box = _shown(qtbot, present_error(window, error))
        assert box.icon() == QMessageBox.Icon.Warning
        assert box.text() == "Use at least 6 digits.\nA mobile number has 10 digits."
        box.accept()

    def test_domain_error_shows_its_message(self, qtbot: QtBot, window: QWidget) -> None:
        box = _shown(qtbot, present_error(window, Conflict("This ABHA number is already registered.")))
        assert box.text() == "This ABHA number is already registered."
        box.accept()


class TestBugs:
    @pytest.mark.expect_log_warnings
    def test_bug_gets_a_report_dialog_naming_the_error_and_the_log_file(
        self, qtbot: QtBot, window: QWidget, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        log_path = tmp_path / "logs" / "integmed.log"
        box = _shown(qtbot, ErrorPresenter(log_path)(window, _raised(KeyError("visit_id"))))
        assert box.icon() == QMessageBox.Icon.Critical
        assert box.windowTitle() == REPORT_TITLE
        assert "builtins.KeyError" in box.informativeText()
        assert str(log_path) in box.informativeText()
        assert "Traceback" in box.detailedText()
        assert "KeyError: 'visit_id'" in box.detailedText()
        assert any(b.text() == "Open log folder" for b in box.buttons())
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.Ok)
        assert "Unexpected error" in caplog.text
        with qtbot.waitSignal(box.finished):
            qtbot.keyClick(box, Qt.Key.Key_Escape)

    @pytest.mark.expect_log_warnings
    def test_report_without_a_log_file_still_names_the_error(self, qtbot: QtBot) -> None:
        box = _shown(qtbot, present_error(None, _raised(ZeroDivisionError("division by zero"))))
        assert "builtins.ZeroDivisionError" in box.informativeText()
        assert box.windowModality() == Qt.WindowModality.ApplicationModal
        box.accept()


class TestCancelled:
    @pytest.mark.parametrize("error", [Cancelled(), CancelledError()])
    def test_cancel_is_shown_to_no_one(self, window: QWidget, error: BaseException) -> None:
        assert present_error(window, error) is None
        assert window.findChildren(QMessageBox) == []
