"""`integmed` commands: the patients import/export contract, exit codes, output streams, no Qt import."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.cli import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE, build_parser, main

GOOD_CSV = (
    "name,mobile,gender,year_of_birth,abha_number,abha_address\n"
    "राधा कुमारी,+919812300001,F,1990,,\n"
    "Arun Murugan,+919812300002,M,1975,91-3772-0586-4665,\n"
)
BAD_CSV = "name,mobile,gender,year_of_birth\nOk Row,+919812300003,M,1980\nBad Row,12345,Q,3000\n"
INTEGMED = Path(sys.executable).parent / "integmed"


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _export_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["--data-dir", str(data_dir), "patients", "export", "--format", "json"]) == EXIT_OK
    records: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return records


class TestPatientsCommands:
    def test_import_then_export_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        data_dir = tmp_path / "pc"  # a new PC: the database is created on first use
        assert main(["--data-dir", str(data_dir), "patients", "import", _file(tmp_path, "p.csv", GOOD_CSV)]) == 0
        assert "Imported 2" in capsys.readouterr().out
        records = _export_json(data_dir, capsys)
        assert [r["name"] for r in records] == ["राधा कुमारी", "Arun Murugan"]
        assert all(isinstance(r["id"], str) for r in records)
        assert records[1]["abha_number"] == "91377205864665"

    def test_bad_row_is_reported_by_line_and_nothing_is_imported(
        self, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(["--data-dir", str(data_dir), "patients", "import", _file(tmp_path, "bad.csv", BAD_CSV)])
        captured = capsys.readouterr()
        assert code == EXIT_BAD_INPUT
        assert captured.out == ""
        assert "line 3: mobile: Mobile number must have 10 digits" in captured.err.splitlines()
        assert "line 2" not in captured.err
        assert _export_json(data_dir, capsys) == []

    def test_csv_export_reimports_into_another_pc(
        self, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["--data-dir", str(data_dir), "patients", "import", _file(tmp_path, "p.csv", GOOD_CSV)]) == 0
        capsys.readouterr()
        assert main(["--data-dir", str(data_dir), "patients", "export", "--format", "csv"]) == EXIT_OK
        exported = capsys.readouterr().out
        assert exported.splitlines()[0].startswith("id,name,mobile,gender,year_of_birth")
        other = tmp_path / "other-pc"
        assert main(["--data-dir", str(other), "patients", "import", _file(tmp_path, "e.csv", exported)]) == 0

        def ids_and_names(folder: Path) -> list[tuple[object, object]]:
            return [(r["id"], r["name"]) for r in _export_json(folder, capsys)]

        assert ids_and_names(other) == ids_and_names(data_dir)

    def test_missing_file_is_bad_input(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--data-dir", str(data_dir), "patients", "import", str(data_dir / "nope.csv")]) == 1
        assert "nope.csv" in capsys.readouterr().err


class TestUsageAndEnvironment:
    @pytest.mark.parametrize(
        "argv",
        [
            ["patients"],
            ["patients", "export"],
            ["patients", "export", "--format", "xml"],
            ["patients", "import"],
            ["frobnicate"],
            ["--server", "ftp://example.org", "patients", "export", "--format", "json"],
        ],
    )
    def test_usage_errors_exit_2(self, argv: list[str], data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--data-dir", str(data_dir), *argv]) == EXIT_USAGE
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err

    def test_help_exits_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--help"]) == EXIT_OK
        assert "patients" in capsys.readouterr().out

    def test_database_from_a_newer_app_exits_3_and_says_so(
        self, data_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        conn = sqlite3.connect(data_dir / "integmed.sqlite3")
        conn.execute("UPDATE alembic_version SET version_num = '2099_01_01_0001'")
        conn.commit()
        conn.close()
        assert main(["--data-dir", str(data_dir), "patients", "export", "--format", "json"]) == EXIT_ENVIRONMENT
        assert "newer version of IntegMed" in capsys.readouterr().err

    def test_parser_has_the_patients_command(self) -> None:
        parser = build_parser()
        commands = next(a for a in parser._actions if a.dest == "command")
        assert "patients" in commands.choices  # type: ignore[operator]


class TestInstalledCommand:
    def test_contract_through_the_installed_script(self, tmp_path: Path) -> None:
        env = dict(os.environ, PYTHONIOENCODING="ascii")  # output must not depend on the console's encoding
        data_dir = str(tmp_path / "pc")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(INTEGMED), "--data-dir", data_dir, *args],
                capture_output=True,
                text=True,
                encoding="utf-8",
                env=env,
                timeout=120,
                check=False,
            )

        good = run("patients", "import", _file(tmp_path, "p.csv", GOOD_CSV))
        assert good.returncode == 0, good.stderr
        bad = run("patients", "import", _file(tmp_path, "bad.csv", BAD_CSV))
        assert bad.returncode != 0
        assert "line 3" in bad.stdout + bad.stderr
        assert "Traceback" not in bad.stderr
        exported = run("patients", "export", "--format", "json")
        assert exported.returncode == 0, exported.stderr
        rows = json.loads(exported.stdout)
        assert len(rows) == 2
        assert all("id" in row for row in rows)
        assert "राधा कुमारी" in exported.stdout

    def test_commands_never_import_qt(self) -> None:
        code = "import sys, desktop.cli; sys.exit('PySide6' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
