"""The printing service writes the PDF atomically under <data_dir>/prescriptions and reports clear errors."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest

from desktop.errors import DiskError
from desktop.printing.prescription_pdf import render_prescription_pdf
from desktop.services.printing import pdf_path, write_prescription_pdf
from tests.desktop.printing.sample import sample


def test_writes_the_a5_pdf_under_prescriptions(tmp_path: Path) -> None:
    rx = sample()
    path = write_prescription_pdf(tmp_path, rx)
    assert path == tmp_path / "prescriptions" / f"{rx.rx_id}-A5.pdf"
    assert path.read_bytes() == render_prescription_pdf(rx, "A5")
    assert len(pdfium.PdfDocument(path)) == 2
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_printing_again_replaces_the_file_and_a4_sits_beside_it(tmp_path: Path) -> None:
    rx = sample()
    first = write_prescription_pdf(tmp_path, rx)
    first.write_bytes(b"stale")
    again = write_prescription_pdf(tmp_path, rx)
    a4 = write_prescription_pdf(tmp_path, rx, "A4")
    assert again == first and again.read_bytes().startswith(b"%PDF")
    assert a4 == pdf_path(tmp_path, rx, "A4") and a4 != first


def test_a_file_in_the_way_of_the_folder_is_a_disk_error(tmp_path: Path) -> None:
    (tmp_path / "prescriptions").write_text("not a folder")
    with pytest.raises(DiskError) as caught:
        write_prescription_pdf(tmp_path, sample())
    assert caught.value.path == tmp_path / "prescriptions"


def test_a_folder_in_the_way_of_the_file_is_a_disk_error_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    rx = sample()
    blocker = pdf_path(tmp_path, rx)
    blocker.mkdir(parents=True)
    with pytest.raises(DiskError):
        write_prescription_pdf(tmp_path, rx)
    assert [p.name for p in blocker.parent.iterdir()] == [blocker.name]
