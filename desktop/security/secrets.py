"""Secret storage for one enrolled data folder: the OS keyring, or a 0600 file in the data folder without one.

The device refresh token (and later signing and database keys) live here, never in settings files or logs.
Each data folder gets its own keyring service name, "IntegMed:<namespace>:<hash of the data folder>", so two
enrolled PCs simulated on one machine with two data folders never read each other's secrets.

Only the operating system's own keyrings count (Windows Credential Locker, macOS Keychain, Secret Service or
KWallet on Linux). When none works, for example on a headless Linux box without a D-Bus session, the secrets
go to `keyrings.alt`'s PlaintextKeyring with its file inside the data folder, readable by the owner only;
`backend_name` and `is_file_backed` let the UI warn about it. `keyring.get_keyring()` itself would pick that
same plaintext backend on such a box but put its file in the user's home folder, shared by every data folder,
which is why the choice is made here and the process-wide keyring is never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyrings.alt.file import PlaintextKeyring

from desktop.errors import KeyringUnavailable

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "IntegMed"
SECRETS_FILE_NAME = "secrets.cfg"
FILE_BACKEND_NAME = "file in the data folder"
FILE_BACKEND_WARNING = (
    "Secrets are stored in a file in the data folder because this PC has no keyring service. "
    "Anyone who can read the data folder can read them."
)
_PROBE_KEY = "integmed-keyring-probe"
# Backends from these modules are OS keyrings (keyring's own Windows, macOS, SecretService, libsecret,
# KWallet); fail, null and the chainer are excluded by class below.
OS_KEYRING_MODULE_PREFIXES: tuple[str, ...] = ("keyring.backends.",)


class SecretStore:
    """get/set/delete named secrets for one namespace and one data folder.

    Args:
        namespace: what the secrets belong to, e.g. "device" (refresh token) or "signing".
        data_dir: the app's data folder; it is part of the service name and holds the fallback file.
        system_keyring: the keyring to try first; default `keyring.get_keyring()`. Tests pass a specific
            backend (for example `keyring.backends.fail.Keyring()`) to make the choice deterministic.
    """

    def __init__(self, namespace: str, data_dir: Path, *, system_keyring: KeyringBackend | None = None) -> None:
        if not namespace or ":" in namespace:
            raise ValueError("namespace must be non-empty and contain no ':'")
        self.namespace = namespace
        self.data_dir = Path(data_dir)
        self.service = service_name(namespace, self.data_dir)
        self.fallback_path = self.data_dir / SECRETS_FILE_NAME
        candidate = system_keyring if system_keyring is not None else keyring.get_keyring()
        os_backend = usable_os_keyring(candidate, self.service)
        self._backend: KeyringBackend
        if os_backend is None:
            self._backend = _data_dir_file_keyring(self.fallback_path)
            self.is_file_backed = True
            self.backend_name = FILE_BACKEND_NAME
            logger.warning(
                "No usable OS keyring (%s); secrets for %s go to %s", _name(candidate), namespace, self.fallback_path
            )
        else:
            self._backend = os_backend
            self.is_file_backed = False
            self.backend_name = _name(os_backend)
            logger.info("Secrets for %s are kept in %s", namespace, self.backend_name)

    def get(self, key: str) -> str | None:
        """The secret stored under `key`, or None.

        Raises:
            KeyringUnavailable: the keyring refused (for example it was locked after start-up).
        """
        _check_key(key)
        with self._keyring_errors("read"):
            value = self._backend.get_password(self.service, key)
            if value is None and not self.is_file_backed:
                value = self._adopt_from_file(key)
        return value

    def set(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any previous value.

        Raises:
            KeyringUnavailable: the keyring refused.
        """
        _check_key(key)
        if self.is_file_backed:
            _create_private_file(self.fallback_path)
        with self._keyring_errors("store"):
            self._backend.set_password(self.service, key, value)
        if self.is_file_backed:
            os.chmod(self.fallback_path, 0o600)
        logger.info("Stored secret %s/%s in %s", self.namespace, key, self.backend_name)

    def delete(self, key: str) -> None:
        """Forget `key`; deleting a key that is not stored is not an error.

        Raises:
            KeyringUnavailable: the keyring refused.
        """
        _check_key(key)
        with contextlib.suppress(keyring.errors.PasswordDeleteError), self._keyring_errors("delete"):
            self._backend.delete_password(self.service, key)
        logger.info("Deleted secret %s/%s from %s", self.namespace, key, self.backend_name)

    @contextlib.contextmanager
    def _keyring_errors(self, verb: str) -> Iterator[None]:
        try:
            yield
        except keyring.errors.PasswordDeleteError:
            raise
        except keyring.errors.KeyringError as exc:
            # The exception text comes from the backend, never from the secret, so it is safe to keep.
            raise KeyringUnavailable(detail=f"{self.backend_name} could not {verb} a secret: {exc!r}") from exc

    def _adopt_from_file(self, key: str) -> str | None:
        # A secret written while this PC had no keyring service moves into the keyring once there is one.
        if not self.fallback_path.exists():
            return None
        file_backend = _data_dir_file_keyring(self.fallback_path)
        value: str | None = file_backend.get_password(self.service, key)
        if value is not None:
            self._backend.set_password(self.service, key, value)
            file_backend.delete_password(self.service, key)
            logger.info("Moved secret %s/%s from the data folder file into %s", self.namespace, key, self.backend_name)
        return value


def service_name(namespace: str, data_dir: Path) -> str:
    """Keyring service name: "IntegMed:<namespace>:<first 16 hex of sha256 of the resolved data folder>"."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode("utf-8")).hexdigest()[:16]
    return f"{SERVICE_PREFIX}:{namespace}:{digest}"


def usable_os_keyring(candidate: KeyringBackend, service: str) -> KeyringBackend | None:
    """The OS keyring behind `candidate` if one answers a probe read, else None.

    A chainer is replaced by its highest-priority OS backend. The fail and null backends and every
    `keyrings.alt` backend (files in the home folder) do not count.
    """
    backend: KeyringBackend | None = candidate
    if isinstance(candidate, chainer.ChainerBackend):
        chained: list[KeyringBackend] = candidate.backends
        backend = next((b for b in chained if _is_os_keyring(b)), None)
    if backend is None or not _is_os_keyring(backend):
        return None
    try:
        backend.get_password(service, _PROBE_KEY)
    except Exception as exc:  # any failure (locked, no D-Bus, access denied) means "not usable"
        logger.warning("OS keyring %s failed a probe read: %s", _name(backend), type(exc).__name__)
        return None
    return backend


def _is_os_keyring(backend: KeyringBackend) -> bool:
    if isinstance(backend, fail.Keyring | null.Keyring | chainer.ChainerBackend):
        return False
    return type(backend).__module__.startswith(OS_KEYRING_MODULE_PREFIXES)


def _data_dir_file_keyring(path: Path) -> PlaintextKeyring:
    backend = PlaintextKeyring()
    backend.file_path = str(path)  # an instance-level override the library documents for `file_path`
    return backend


def _create_private_file(path: Path) -> None:
    """Create `path` with mode 0600 before the keyring library first writes it, and tighten it if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            os.chmod(path, 0o600)
    else:
        os.close(fd)


def _check_key(key: str) -> None:
    if not key:
        raise ValueError("secret key must be non-empty")


def _name(backend: KeyringBackend) -> str:
    return str(getattr(backend, "name", type(backend).__name__))
