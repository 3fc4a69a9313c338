"""Bundled fonts: register the shipped Noto families at start-up and build the UI font with Indic fallbacks.

Patients are often registered in Devanagari or another Indian script, and a clinic PC may have no font for it
(a fresh Windows install lacks several; a Linux kiosk may have only DejaVu). The app therefore ships Noto Sans
for Latin and six Indian scripts in `desktop/resources/fonts/` and registers them from the package data, so
rendering never depends on system fonts. Read with importlib.resources, the files also load from a zip or a
PyInstaller bundle.

`app.py` calls `register_bundled_fonts()` right after the QApplication exists and then
`app.setFont(ui_font())`.
"""

from __future__ import annotations

import logging
from importlib import resources

from PySide6.QtCore import QByteArray
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication

logger = logging.getLogger(__name__)

FONT_PACKAGE = "desktop.resources.fonts"

LATIN_FAMILY = "Noto Sans"
INDIC_FAMILIES: tuple[str, ...] = (
    "Noto Sans Devanagari",
    "Noto Sans Bengali",
    "Noto Sans Tamil",
    "Noto Sans Telugu",
    "Noto Sans Gujarati",
    "Noto Sans Kannada",
)
UI_FAMILIES: tuple[str, ...] = (LATIN_FAMILY, *INDIC_FAMILIES)

BUNDLED_FONT_FILES: tuple[str, ...] = tuple(
    f"{family.replace(' ', '')}-{weight}.ttf" for family in UI_FAMILIES for weight in ("Regular", "Bold")
)

# QFontDatabase is process-wide, so this mirrors it: file name → application font id. It keeps a second call
# (tests, a re-created QApplication) from adding every font again.
_registered_ids: dict[str, int] = {}


class FontRegistrationError(RuntimeError):
    """None of the bundled fonts could be registered; Indian-script text would render as boxes."""


def bundled_font_bytes(file_name: str) -> bytes:
    """Return the contents of one bundled font file (raises OSError if it is not in the package)."""
    return resources.files(FONT_PACKAGE).joinpath(file_name).read_bytes()


def register_bundled_fonts() -> list[str]:
    """Register every bundled font with QFontDatabase and return the family names now available.

    A file that is missing or that Qt rejects is logged and skipped, so one damaged file costs one script.

    Raises:
        FontRegistrationError: no QGuiApplication exists yet, or not one bundled font could be registered.
    """
    if QGuiApplication.instance() is None:
        raise FontRegistrationError("register_bundled_fonts() needs a QGuiApplication; create it first")
    families: list[str] = []
    failed: list[str] = []
    for file_name in BUNDLED_FONT_FILES:
        font_id = _registered_ids.get(file_name)
        if font_id is None:
            font_id = _add_font(file_name)
            if font_id < 0:
                failed.append(file_name)
                continue
            _registered_ids[file_name] = font_id
        for family in QFontDatabase.applicationFontFamilies(font_id):
            if family not in families:
                families.append(family)
    if failed:
        logger.warning("Bundled fonts not registered: %s", ", ".join(failed))
    if not families:
        raise FontRegistrationError(
            f"None of the {len(BUNDLED_FONT_FILES)} bundled fonts in {FONT_PACKAGE} could be registered; "
            "names in Indian scripts would show as empty boxes. Reinstall IntegMed."
        )
    logger.info("Registered bundled font families: %s", ", ".join(families))
    return families


def _add_font(file_name: str) -> int:
    try:
        data = bundled_font_bytes(file_name)
    except OSError:
        logger.exception("Bundled font %s could not be read", file_name)
        return -1
    return QFontDatabase.addApplicationFontFromData(QByteArray(data))


def ui_font(base: QFont | None = None) -> QFont:
    """The application font: Noto Sans first, then the bundled Indic families as fallbacks.

    Size and weight come from `base` (default: the application's current font). Qt takes each character from
    the first family in the list that has a glyph for it, so Latin text uses Noto Sans and a Tamil name uses
    Noto Sans Tamil, with no system font involved.
    """
    font = QFont(base) if base is not None else QFont(QGuiApplication.font())
    font.setFamilies(list(UI_FAMILIES))
    return font
