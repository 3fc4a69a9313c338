"""Desktop settings: the command line beats INTEGMED_DESKTOP_* which beats the platform default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from desktop.config import DesktopSettings, default_data_dir, load_settings, resolve_data_dir


class TestSettings:
    def test_default_is_the_platform_data_folder(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("INTEGMED_DESKTOP_DATA_DIR", raising=False)
        settings = DesktopSettings()
        assert settings.data_dir == default_data_dir().absolute()
        assert settings.data_dir.name == "IntegMed"
        assert settings.server_url is None

    def test_environment_then_command_line(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("INTEGMED_DESKTOP_DATA_DIR", str(tmp_path / "env"))
        monkeypatch.setenv("INTEGMED_DESKTOP_SERVER_URL", "https://env.example.org/")
        assert resolve_data_dir(None) == tmp_path / "env"
        assert resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
        settings = load_settings()
        assert (settings.data_dir, settings.server_url) == (tmp_path / "env", "https://env.example.org")
        settings = load_settings(data_dir=str(tmp_path / "cli"), server_url="http://127.0.0.1:8000")
        assert (settings.data_dir, settings.server_url) == (tmp_path / "cli", "http://127.0.0.1:8000")
        assert settings.database_path == tmp_path / "cli" / "integmed.sqlite3"
        assert settings.backups_dir == tmp_path / "cli" / "backups"

    def test_relative_data_dir_is_made_absolute(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        assert resolve_data_dir("rel") == tmp_path / "rel"

    def test_server_url_must_be_http(self) -> None:
        with pytest.raises(ValidationError, match="http"):
            DesktopSettings(server_url="ftp://example.org")
