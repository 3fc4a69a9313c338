"""Bundled Noto fonts: names in six Indian scripts shape to real glyphs and render ink, offscreen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray, QPoint, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QImage, QPainter, QRawFont, QTextLayout

from desktop.ui import fonts
from desktop.ui.fonts import (
    BUNDLED_FONT_FILES,
    INDIC_FAMILIES,
    LATIN_FAMILY,
    UI_FAMILIES,
    bundled_font_bytes,
    register_bundled_fonts,
    ui_font,
)

HINDI_NAME = "राधा कुमारी"

# (script family, name, Qt writing system)
NAMES: list[tuple[str, str, QFontDatabase.WritingSystem]] = [
    ("Noto Sans Devanagari", HINDI_NAME, QFontDatabase.WritingSystem.Devanagari),
    ("Noto Sans Tamil", "முருகன்", QFontDatabase.WritingSystem.Tamil),
    ("Noto Sans Bengali", "অমিত", QFontDatabase.WritingSystem.Bengali),
    ("Noto Sans Telugu", "రాము", QFontDatabase.WritingSystem.Telugu),
    ("Noto Sans Gujarati", "અમિત", QFontDatabase.WritingSystem.Gujarati),
    ("Noto Sans Kannada", "ರಾಮು", QFontDatabase.WritingSystem.Kannada),
]


def _raw_font(file_name: str) -> QRawFont:
    raw = QRawFont(QByteArray(bundled_font_bytes(file_name)), 24)
    assert raw.isValid(), file_name
    return raw


def missing_characters(raw: QRawFont, text: str) -> list[str]:
    """Characters of `text` for which `raw` has only glyph 0 (.notdef, drawn as an empty box)."""
    return [ch for ch, glyph in zip(text, raw.glyphIndexesForString(text), strict=True) if glyph == 0]


def shaped_runs(text: str, font: QFont) -> list[tuple[str, list[int]]]:
    """Lay `text` out on one line the way a label would; (family of the font used, glyph indexes) per run."""
    layout = QTextLayout(text, font)
    layout.beginLayout()
    line = layout.createLine()
    line.setLineWidth(10_000)
    layout.endLayout()
    return [(run.rawFont().familyName(), list(run.glyphIndexes())) for run in layout.glyphRuns()]


def shaping_problems(runs: list[tuple[str, list[int]]]) -> list[str]:
    """Why shaped runs would not show real glyphs from the bundled fonts; empty when all is well.

    Both conditions are needed: a font lacking a character maps it to glyph 0 (.notdef), but when no font at
    all covers a script Qt shapes with its last-resort box engine, whose glyphs are 1 and whose family is ''.
    """
    if not runs:
        return ["no glyph runs"]
    problems = []
    for family, glyphs in runs:
        if family not in UI_FAMILIES:
            problems.append(f"shaped with {family!r}, which is not a bundled family")
        if not glyphs or 0 in glyphs:
            problems.append(f".notdef (missing) glyph in {family!r}")
    return problems


def render_text(text: str, font: QFont, size: tuple[int, int] = (640, 96)) -> QImage:
    image = QImage(*size, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    try:
        painter.setFont(font)
        painter.setPen(QColor("black"))
        painter.drawText(image.rect(), Qt.AlignmentFlag.AlignCenter, text)
    finally:
        painter.end()
    return image


def ink_pixels(image: QImage) -> int:
    """Pixels noticeably darker than the white background."""
    return sum(
        1
        for y in range(image.height())
        for x in range(image.width())
        if QColor(image.pixel(QPoint(x, y))).lightness() < 160
    )


class TestBundledFiles:
    def test_every_font_file_and_the_licence_ship_in_the_package(self) -> None:
        for file_name in BUNDLED_FONT_FILES:
            assert bundled_font_bytes(file_name)[:4] == b"\x00\x01\x00\x00", file_name  # TrueType outlines
        licence = resources.files(fonts.FONT_PACKAGE).joinpath("OFL.txt").read_text(encoding="utf-8")
        assert "SIL OPEN FONT LICENSE Version 1.1" in licence

    def test_bundle_covers_latin_and_the_six_scripts(self) -> None:
        assert UI_FAMILIES[0] == LATIN_FAMILY
        assert len(BUNDLED_FONT_FILES) == 2 * len(UI_FAMILIES)
        assert {"NotoSansDevanagari-Regular.ttf", "NotoSansKannada-Bold.ttf"} <= set(BUNDLED_FONT_FILES)


class TestRegisterBundledFonts:
    def test_registers_every_bundled_family(self, bundled_families: list[str]) -> None:
        assert set(bundled_families) == set(UI_FAMILIES)

    def test_second_call_adds_nothing_new(self, bundled_families: list[str]) -> None:
        ids_before = dict(fonts._registered_ids)
        assert register_bundled_fonts() == bundled_families
        assert fonts._registered_ids == ids_before

    @pytest.mark.parametrize(("family", "name", "writing_system"), NAMES)
    def test_font_database_lists_the_family_for_its_script(
        self,
        bundled_families: list[str],
        family: str,
        name: str,
        writing_system: QFontDatabase.WritingSystem,
    ) -> None:
        assert family in QFontDatabase.families(writing_system)

    @pytest.mark.expect_log_warnings
    def test_raises_when_no_font_loads(self, bundled_families: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(fonts, "_registered_ids", {})
        monkeypatch.setattr(fonts, "BUNDLED_FONT_FILES", ("NoSuchFont-Regular.ttf",))
        with pytest.raises(fonts.FontRegistrationError, match="boxes"):
            register_bundled_fonts()


class TestGlyphCoverage:
    @pytest.mark.parametrize(("family", "name", "writing_system"), NAMES)
    def test_bundled_script_font_has_a_glyph_for_every_character(
        self, family: str, name: str, writing_system: QFontDatabase.WritingSystem
    ) -> None:
        raw = _raw_font(f"{family.replace(' ', '')}-Regular.ttf")
        assert raw.familyName() == family
        assert writing_system in raw.supportedWritingSystems()
        assert missing_characters(raw, name) == []

    def test_the_glyph_check_catches_a_font_without_devanagari(self) -> None:
        # Noto Sans (Latin/Greek/Cyrillic) has no Devanagari: the same check must report every letter missing,
        # so the coverage tests cannot pass vacuously.
        latin = _raw_font("NotoSans-Regular.ttf")
        assert missing_characters(latin, HINDI_NAME) == [ch for ch in HINDI_NAME if ch != " "]
        assert QFontDatabase.WritingSystem.Devanagari not in latin.supportedWritingSystems()

    @pytest.mark.parametrize(("family", "name", "writing_system"), NAMES)
    def test_ui_font_shapes_each_name_with_bundled_families_only(
        self,
        bundled_families: list[str],
        family: str,
        name: str,
        writing_system: QFontDatabase.WritingSystem,
    ) -> None:
        runs = shaped_runs(name, ui_font())
        assert shaping_problems(runs) == []
        assert family in {run_family for run_family, _ in runs}

    def test_without_the_bundled_fonts_the_hindi_name_fails_the_check(self, bundled_families: list[str]) -> None:
        # A fresh process that never registers the bundle (removing application fonts at run time crashes some
        # Qt builds): the same check must then fail, unless this PC has its own Devanagari font.
        script = (
            "import json, sys\n"
            "from PySide6.QtGui import QFontDatabase, QGuiApplication\n"
            "from desktop.ui.fonts import ui_font\n"
            "from tests.desktop.ui.test_fonts import shaped_runs, shaping_problems, HINDI_NAME\n"
            "app = QGuiApplication(sys.argv)\n"
            "runs = shaped_runs(HINDI_NAME, ui_font())\n"
            "print(json.dumps({'problems': shaping_problems(runs), 'families': [f for f, _ in runs],\n"
            "  'system': QFontDatabase.families(QFontDatabase.WritingSystem.Devanagari)}))\n"
        )
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["system"]:
            assert set(result["families"]) <= set(result["system"])
        else:
            assert result["problems"] != []
        assert shaping_problems(shaped_runs(HINDI_NAME, ui_font())) == []

    def test_ui_font_lists_noto_sans_first_then_indic_fallbacks(self, bundled_families: list[str]) -> None:
        base = QFont()
        base.setPointSize(13)
        font = ui_font(base)
        assert font.families() == [LATIN_FAMILY, *INDIC_FAMILIES]
        assert font.pointSize() == 13

    def test_mixed_latin_and_hindi_uses_noto_sans_for_latin(self, bundled_families: list[str]) -> None:
        runs = shaped_runs(f"Dr. Rao — {HINDI_NAME}", ui_font())
        assert {LATIN_FAMILY, "Noto Sans Devanagari"} <= {run_family for run_family, _ in runs}
        assert shaping_problems(runs) == []


class TestOffscreenRendering:
    def test_hindi_name_renders_ink(self, bundled_families: list[str], artifacts_dir: Path) -> None:
        font = ui_font()
        font.setPixelSize(40)
        image = render_text(HINDI_NAME, font)
        assert image.save(str(artifacts_dir / "fonts_hindi_name.png"))
        assert ink_pixels(image) > 300

    def test_all_six_names_render_to_one_sheet(self, bundled_families: list[str], artifacts_dir: Path) -> None:
        font = ui_font()
        font.setPixelSize(32)
        sheet = render_text("   ".join(name for _, name, _ in NAMES), font, size=(1366, 96))
        assert sheet.save(str(artifacts_dir / "fonts_indic_names.png"))
        assert ink_pixels(sheet) > 6 * 150
