"""Write a signed prescription's PDF into the data folder (plain Python; the UI runs it through the runner).

Files go to `<data_dir>/prescriptions/<rx_id>-<paper>.pdf`. The bytes are written to a temporary file in the
same folder and renamed over the target, so a crash or a full disk never leaves half a PDF behind. A signed
prescription never changes, so printing it again rewrites the same bytes. Opening or printing the file
(QDesktopServices) is the UI's job.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.errors import DiskError, DiskFull, KnownError
from desktop.printing.model import PrintablePrescription

if TYPE_CHECKING:  # reportlab is imported on the first print: it costs ~0.2 s of the app's start-up
    from desktop.printing.prescription_pdf import Paper

PRESCRIPTIONS_FOLDER = "prescriptions"


class PrintFailed(KnownError):
    """The prescription PDF could not be produced (a bundled font is missing or damaged)."""

    title = "The prescription could not be printed"
    default_message = "IntegMed could not lay out the prescription PDF."
    action = "Reinstall IntegMed. The signed prescription itself is saved and can be printed later."
    code = "desktop.print_failed"


class PrintFolderNotWritable(KnownError):
    """The prescriptions folder cannot be created or written."""

    title = "The prescription PDF cannot be saved"
    default_message = "IntegMed may not write the prescription PDF into its data folder."
    action = "Ask your IT person to give this user write access to the data folder, then print again."
    code = "desktop.print_folder"


def pdf_path(data_dir: Path, rx: PrintablePrescription, paper: Paper = "A5") -> Path:
    """Where the PDF of `rx` on `paper` lives."""
    return data_dir / PRESCRIPTIONS_FOLDER / f"{rx.rx_id}-{paper}.pdf"


def write_prescription_pdf(data_dir: Path, rx: PrintablePrescription, paper: Paper = "A5") -> Path:
    """Render `rx` and write it atomically to the data folder; return the PDF's path.

    Raises:
        PrintFailed: the PDF could not be laid out (fonts).
        DiskFull: no space left for the file.
        PrintFolderNotWritable: the folder cannot be created or written.
        DiskError: any other operating-system error while writing.
    """
    from desktop.printing.prescription_pdf import PrintError, render_prescription_pdf

    try:
        data = render_prescription_pdf(rx, paper)
    except PrintError as exc:
        raise PrintFailed(detail=str(exc)) from exc
    target = pdf_path(data_dir, rx, paper)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    except PermissionError as exc:
        raise PrintFolderNotWritable(detail=str(exc), path=target.parent) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull("The disk is full, so the prescription PDF was not saved.", path=target.parent) from exc
        raise DiskError(detail=str(exc), path=target.parent) from exc
    return target
