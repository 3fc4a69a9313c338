"""`integmed devices decode CHARACTERISTIC HEX`: JSON on stdout and exit 0, or a clear error and exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.cli import EXIT_BAD_INPUT, EXIT_OK, main
from desktop.devices.commands import parse_hex

INTEGMED = Path(sys.executable).parent / "integmed"


def test_decode_heart_rate_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path), "devices", "decode", "2A37", "0050"]) == EXIT_OK
    out, err = capsys.readouterr()
    reading = json.loads(out)
    assert reading["characteristic"] == "2A37"
    assert reading["values"]["heart_rate"] == {
        "value": 80,
        "unit": "bpm",
        "special": None,
        "mantissa": 80,
        "exponent": 0,
        "original": None,
    }
    assert err == ""


def test_decode_with_name_spaces_and_colons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--data-dir",
        str(tmp_path),
        "devices",
        "decode",
        "temperature_measurement",
        "06:6c:01:00:ff",
        "e4 07 0c 19 0a 1e 00",
        "06",
    ]
    assert main(argv) == EXIT_OK
    reading = json.loads(capsys.readouterr().out)
    assert reading["values"]["temperature"]["value"] == 36.4
    assert reading["values"]["temperature"]["unit"] == "°C"
    assert reading["timestamp"]["local"] == "2020-12-25T10:30:00"
    assert reading["timestamp"]["timezone"] == "device-local (unknown offset)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["2A35", "00"], "cannot decode 2A35 at byte 1: truncated"),
        (["2A35", "zz"], "bad HEX"),
        (["2A35", "0"], "bad HEX"),
        (["bogus", "00"], "unknown or unsupported characteristic"),
        (["2A37", "0050ff"], "trailing"),
    ],
)
def test_decode_errors_exit_1_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["--data-dir", str(tmp_path), "devices", "decode", *argv]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("integmed: ")
    assert message in err


@pytest.mark.parametrize(("text", "data"), [("00 50", b"\x00\x50"), ("0x0050", b"\x00\x50"), ("1E:78", b"\x1e\x78")])
def test_parse_hex(text: str, data: bytes) -> None:
    assert parse_hex(text) == data


def test_installed_command_error_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(INTEGMED), "--data-dir", str(tmp_path), "devices", "decode", "2A35", "00"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr
    assert "integmed: cannot decode 2A35" in result.stderr
    assert result.stdout == ""


def test_special_values_print_as_null_with_their_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--data-dir", str(tmp_path), "devices", "decode", "0x2a36", "00 96 00 ff 07 ff 07"]
    assert main(argv) == EXIT_OK
    values = json.loads(capsys.readouterr().out)["values"]
    assert values["cuff_pressure"]["value"] == 150
    assert values["diastolic"]["value"] is None
    assert values["diastolic"]["special"] == "NaN"
