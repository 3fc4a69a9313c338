"""Desktop settings (`DesktopSettings`): data folder and server URL, from the command line or ``INTEGMED_DESKTOP_*``.

Precedence: a command-line flag beats the environment, which beats the default. The data folder defaults to
the platform's per-user data folder (``platformdirs``: ``%LOCALAPPDATA%\\IntegMed`` on Windows,
``~/Library/Application Support/IntegMed`` on macOS, ``~/.local/share/IntegMed`` on Linux).
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "IntegMed"
DATABASE_FILE = "integmed.sqlite3"
BACKUPS_FOLDER = "backups"


def default_data_dir() -> Path:
    """The platform's per-user data folder for IntegMed (not created here)."""
    # appauthor=False: on Windows the folder is %LOCALAPPDATA%\IntegMed, not IntegMed\IntegMed.
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class DesktopSettings(BaseSettings):
    """Everything the desktop app and the ``integmed`` commands need to start.

    Args:
        data_dir: folder holding the database, its backups and logs (``INTEGMED_DESKTOP_DATA_DIR``).
        server_url: base URL of the IntegMed server, e.g. ``https://sync.example.org``
            (``INTEGMED_DESKTOP_SERVER_URL``); ``None`` until enrolment sets one.
    """

    model_config = SettingsConfigDict(env_prefix="INTEGMED_DESKTOP_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    server_url: str | None = None

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Absolute once, here: the app may change its working directory, the data must not move with it.
        return value.expanduser().absolute()

    @field_validator("server_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError("the server URL must start with http:// or https://")
        return url

    @property
    def database_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / DATABASE_FILE

    @property
    def backups_dir(self) -> Path:
        """Where `desktop.store.migrate` copies the database before upgrading it."""
        return self.data_dir / BACKUPS_FOLDER


def resolve_data_dir(cli_value: str | Path | None) -> Path:
    """The data folder to use: the ``--data-dir`` value when given, else the environment or the default.

    Args:
        cli_value: the ``--data-dir`` argument, or ``None`` when the flag was not given.

    Returns:
        An absolute path (the folder may not exist yet).
    """
    if cli_value is not None and str(cli_value).strip():
        return Path(cli_value).expanduser().absolute()
    return DesktopSettings().data_dir


def load_settings(*, data_dir: str | Path | None = None, server_url: str | None = None) -> DesktopSettings:
    """Settings with command-line values applied over the environment and the defaults.

    Args:
        data_dir: the ``--data-dir`` value, or ``None``.
        server_url: the ``--server`` value, or ``None``.

    Returns:
        Validated settings.
    """
    # Keyword arguments beat the environment in pydantic-settings; an absent flag must not clear an env value.
    if server_url is None:
        return DesktopSettings(data_dir=resolve_data_dir(data_dir))
    return DesktopSettings(data_dir=resolve_data_dir(data_dir), server_url=server_url)
