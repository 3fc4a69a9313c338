"""Expected failures of the desktop's environment (`KnownError` family), each with text for the user.

A `KnownError` is something the user or the clinic's IT person can act on: free disk space, close the other
IntegMed window, install the newer version, check the network. `ui/error_dialogs.py` shows ``message`` and
``action``; the CLI prints them to stderr. Everything that is not a `KnownError` (nor a
`shared.errors.DomainError`, which is about the data a user typed) is a bug and goes to the report path
(STYLE §2.7, after qutebrowser's KnownError/BugError split).

Storage errors are made by `desktop.store.engine.translate_sqlite_error`, sorted by SQLite's primary result
code; nothing else in the program inspects SQLite error codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar


class KnownError(Exception):
    """An expected failure with a sentence for the user and what they can do about it.

    Args:
        message: what happened, in words a receptionist understands; the class default when omitted.
        detail: technical detail for logs and support (e.g. the SQLite error text); never shown alone.
        path: the file or folder concerned, when there is one (shown so the user knows where to look).
    """

    title: ClassVar[str] = "IntegMed could not finish this"
    default_message: ClassVar[str] = "Something outside IntegMed stopped this action."
    action: ClassVar[str] = "Try again. If it keeps happening, contact your IntegMed support person."
    code: ClassVar[str] = "desktop.known_error"

    def __init__(self, message: str | None = None, *, detail: str | None = None, path: Path | None = None):
        self.message = message or self.default_message
        self.detail = detail
        self.path = path
        super().__init__(self.message)

    def user_text(self) -> str:
        """The message, the folder concerned and the action, as one paragraph for a dialog or stderr."""
        where = f" ({self.path})" if self.path is not None else ""
        return f"{self.message}{where} {self.action}"


class Cancelled(KnownError):
    """The user cancelled a long task; shown to no one."""

    title = "Cancelled"
    default_message = "Cancelled."
    action = ""
    code = "desktop.cancelled"


# --- local storage -------------------------------------------------------------------------------------


class StorageError(KnownError):
    """Base of failures of the local database file or its folder."""

    title = "Problem with the data on this computer"
    code = "desktop.storage"


class DiskFull(StorageError):
    """SQLITE_FULL: the disk (or the database's size limit) is full."""

    title = "The disk is full"
    default_message = "The disk that holds IntegMed's data is full, so the last change was not saved."
    action = "Free some disk space (empty the recycle bin, remove old downloads), then try again."
    code = "desktop.disk_full"


class DatabaseLocked(StorageError):
    """SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: another program holds the write lock."""

    title = "The data is in use"
    default_message = "Another IntegMed window or command is saving data right now."
    action = "Wait a moment and try again. If it keeps happening, close other IntegMed windows."
    code = "desktop.database_locked"


class DatabaseReadOnly(StorageError):
    """SQLITE_READONLY / SQLITE_PERM: the file or its folder cannot be written."""

    title = "The data cannot be saved"
    default_message = "IntegMed may not write to its data folder."
    action = "Ask your IT person to give this Windows/Linux user write access to the data folder."
    code = "desktop.database_readonly"


class DiskError(StorageError):
    """SQLITE_IOERR: the operating system reported a read or write error."""

    title = "The disk reported an error"
    default_message = "The disk reported an error while IntegMed was reading or saving data."
    action = "Check that the disk or USB drive is connected and healthy, then restart IntegMed."
    code = "desktop.disk_error"


class DatabaseCorrupt(StorageError):
    """SQLITE_CORRUPT / SQLITE_NOTADB: the file is damaged or is not an IntegMed database."""

    title = "The data file is damaged"
    default_message = "IntegMed's data file is damaged or is not an IntegMed database."
    action = (
        "Do not delete anything. Contact your IntegMed support person: backups are in the 'backups' "
        "folder next to the data file, and synced records are safe on the server."
    )
    code = "desktop.database_corrupt"


class DatabaseUnavailable(StorageError):
    """SQLITE_CANTOPEN, or the data folder cannot be created."""

    title = "The data cannot be opened"
    default_message = "IntegMed cannot open or create its data file."
    action = "Check that the data folder exists and that the disk is connected, then start IntegMed again."
    code = "desktop.database_unavailable"


class DatabaseTooNew(StorageError):
    """The data file was upgraded by a newer IntegMed; this version refuses to open it (and never changes it).

    Args:
        revision: the schema revision found in the file.
    """

    title = "A newer IntegMed made this data"
    default_message = "The data on this computer was saved by a newer version of IntegMed."
    action = "Install the newest IntegMed version. Nothing was changed in your data."
    code = "desktop.database_too_new"

    def __init__(self, revision: str, *, path: Path | None = None):
        super().__init__(
            f"The data on this computer was saved by a newer version of IntegMed (schema {revision}).",
            detail=f"unknown schema revision {revision!r}",
            path=path,
        )
        self.revision = revision


# --- records -------------------------------------------------------------------------------------------


class NotFound(KnownError):
    """A record asked for by id is not on this computer (e.g. deleted by a sync in the meantime)."""

    title = "Not found"
    default_message = "This record is not on this computer."
    action = "Search again; it may have been deleted or merged on another computer."
    code = "desktop.not_found"


class InputFileError(KnownError):
    """A file named on the command line or in a dialog cannot be read."""

    title = "The file cannot be read"
    default_message = "The file cannot be read."
    action = "Check the file name and that the file is not open in another program."
    code = "desktop.input_file"


# --- network, enrolment, secrets (raised by desktop/sync and desktop/security) -----------------------------


class ServerUnreachable(KnownError):
    """The sync server did not answer (offline, DNS, TLS, timeout). Local work goes on; sync retries."""

    title = "No connection to the server"
    default_message = "The IntegMed server cannot be reached. Your work is saved on this computer."
    action = "Check the internet connection. Changes will be sent automatically when it is back."
    code = "desktop.server_unreachable"


class KeyringUnavailable(KnownError):
    """The operating system's credential store cannot be used, so device secrets cannot be kept."""

    title = "Secure storage is not available"
    default_message = "IntegMed cannot use this computer's secure credential store."
    action = "Sign in to the computer with a normal user account (not a guest) and start IntegMed again."
    code = "desktop.keyring_unavailable"


class NotEnrolled(KnownError):
    """The PC has not been enrolled with a clinic yet, so it cannot sync."""

    title = "This computer is not linked to a clinic"
    default_message = "This computer has not been linked to a clinic yet."
    action = "A doctor or clinic admin can link it: sign in online, or run 'integmed enroll'."
    code = "desktop.not_enrolled"
