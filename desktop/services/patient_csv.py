"""Patient CSV and JSON files: read rows with their file line numbers, map validation errors to columns, write.

File shape (``integmed patients import|export``): UTF-8 (a spreadsheet's byte-order mark is fine), comma
separated, first line names the columns in any order. Columns: ``name, mobile, gender, year_of_birth,
abha_number, abha_address`` (the documented contract), optionally ``id`` (a known id updates that patient),
and optionally ``date_of_birth`` and ``address_line, address_district, address_state, address_pincode`` so
that an export can be imported again without losing anything. An empty cell means the value is absent.

Line numbers are lines of the file as a text editor counts them (the header is line 1); a quoted cell may
span lines, and a row is reported by the line it starts on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from desktop.errors import InputFileError
from shared.ids import format_abha_number
from shared.records.patient import Patient

ADDRESS_COLUMNS = {
    "address_line": "line",
    "address_district": "district",
    "address_state": "state",
    "address_pincode": "pincode",
}
COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "mobile",
    "gender",
    "year_of_birth",
    "date_of_birth",
    "abha_number",
    "abha_address",
    *ADDRESS_COLUMNS,
)
"""Every column an import understands, in the order an export writes them."""

_FIELD_TO_COLUMN = {f"address.{key}": column for column, key in ADDRESS_COLUMNS.items()}


@dataclass(frozen=True, order=True)
class RowProblem:
    """One reason a file cannot be imported.

    Args:
        line: the file line (the header is line 1).
        field: the column concerned, when there is one.
        message: the shared validation message (the same words the server uses).
    """

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        if self.field:
            return f"line {self.line}: {self.field}: {self.message}"
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class CsvRow:
    """One data row: its first line and its non-empty cells by column name."""

    line: int
    cells: dict[str, str]

    def record_data(self) -> dict[str, object]:
        """The cells as input for the shared pydantic models (address columns nested, ``id`` left out)."""
        data: dict[str, object] = {}
        address: dict[str, str] = {}
        for column, value in self.cells.items():
            if column in ADDRESS_COLUMNS:
                address[ADDRESS_COLUMNS[column]] = value
            elif column != "id":
                data[column] = value
        if address:
            data["address"] = address
        return data


@dataclass(frozen=True)
class ParsedCsv:
    """The rows of a file and the problems found in its shape (header, cell counts, encoding)."""

    rows: list[CsvRow]
    problems: list[RowProblem]


def problems_from(line: int, exc: ValidationError) -> list[RowProblem]:
    """The field problems of a pydantic error, named by CSV column.

    Args:
        line: the row's line.
        exc: the validation error of the shared model.

    Returns:
        One problem per error; whole-record rules (``loc`` empty) have no column.
    """
    problems = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        problems.append(RowProblem(line, _FIELD_TO_COLUMN.get(path, path) or None, str(error["msg"])))
    return problems


def read_csv(path: Path) -> ParsedCsv:
    """Read and split a CSV file (nothing is validated beyond its shape).

    Raises:
        InputFileError: when the file cannot be read.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"Cannot read {path}: {exc.strerror or exc}.", detail=str(exc), path=path) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = "the file is not UTF-8 text: save it from the spreadsheet as 'CSV UTF-8'"
        return ParsedCsv([], [RowProblem(line, None, message)])
    return parse_csv_text(text)


def parse_csv_text(text: str) -> ParsedCsv:
    """Split CSV text into rows with line numbers; report header and shape problems."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[RowProblem] = []
    rows: list[CsvRow] = []
    header: list[str] | None = None
    header_line = 1
    previous_end = 0
    try:
        for record in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank lines, and rows of empty cells that spreadsheets leave at the end
            if header is None:
                header, header_line = [cell.strip().lower() for cell in record], start
                problems.extend(_header_problems(header, header_line))
                continue
            row = _row(start, header, record, problems)
            if row is not None:
                rows.append(row)
    except csv.Error as exc:
        problems.append(RowProblem(reader.line_num, None, f"the file is not valid CSV ({exc})"))
    if header is None:
        problems.append(RowProblem(1, None, "the file is empty: the first line must name the columns"))
    return ParsedCsv(rows, problems)


def _header_problems(header: list[str], line: int) -> list[RowProblem]:
    problems = []
    seen: set[str] = set()
    for name in header:
        if not name:
            continue  # an unnamed column is fine while its cells are empty (checked per row)
        if name not in COLUMNS:
            problems.append(RowProblem(line, None, f"unknown column {name!r}; the columns are: {', '.join(COLUMNS)}"))
        elif name in seen:
            problems.append(RowProblem(line, None, f"column {name!r} appears twice"))
        seen.add(name)
    return problems


def _row(line: int, header: list[str], record: list[str], problems: list[RowProblem]) -> CsvRow | None:
    if len(record) > len(header):
        extra = record[len(header) :]
        if any(cell.strip() for cell in extra):
            problems.append(
                RowProblem(line, None, f"the row has {len(record)} cells but the header names {len(header)}")
            )
            return None
    cells: dict[str, str] = {}
    for name, cell in zip(header, record, strict=False):
        value = cell.strip()
        if not value:
            continue  # empty cell: the value is absent
        if not name:
            problems.append(RowProblem(line, None, "a value is in a column without a name in the header"))
            return None
        if name in COLUMNS:  # an unknown column is reported once, on the header line
            cells[name] = value
    return CsvRow(line, cells)


# --- export --------------------------------------------------------------------------------------------


def _csv_cells(patient: Patient) -> list[str]:
    address = patient.address
    values: dict[str, object] = {
        "id": patient.id,
        "name": patient.name,
        "mobile": patient.mobile,
        "gender": patient.gender.value,
        "year_of_birth": patient.year_of_birth,
        "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
        # Dashed, as on the ABHA card: a spreadsheet would turn 14 bare digits into 9.1377E+13.
        "abha_number": format_abha_number(patient.abha_number) if patient.abha_number else None,
        "abha_address": patient.abha_address,
    }
    for column, key in ADDRESS_COLUMNS.items():
        values[column] = getattr(address, key) if address is not None else None
    return ["" if values[column] is None else str(values[column]) for column in COLUMNS]


def to_csv(patients: Iterable[Patient]) -> str:
    """Patients as CSV text with a header line (``\\n`` line ends), importable again."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for patient in patients:
        writer.writerow(_csv_cells(patient))
    return out.getvalue()


def to_json(patients: Iterable[Patient]) -> str:
    """Patients as a JSON list of records (every field, with id, clinic, version and times)."""
    records = [patient.model_dump(mode="json") for patient in patients]
    return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
