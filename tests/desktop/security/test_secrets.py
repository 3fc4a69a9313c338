"""SecretStore: OS keyring or a private file in the data folder, one service name per data folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import cast

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import KeyringLocked
from keyrings.alt.file import PlaintextKeyring

from desktop.errors import KeyringUnavailable
from desktop.security import secrets
from desktop.security.secrets import (
    FILE_BACKEND_NAME,
    SECRETS_FILE_NAME,
    SecretStore,
    service_name,
    usable_os_keyring,
)

NO_KEYRING = fail.Keyring()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Stand-ins for OS keyring services, which do not run on a headless CI box. They are plain classes, not
# KeyringBackend subclasses: keyring registers every concrete subclass process-wide, and keyring.get_keyring()
# would then pick them for the rest of the session.


class _LockedKeyring:
    """An OS keyring that exists but refuses access (locked, or no D-Bus session)."""

    name = "locked OS keyring"

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("locked")


class _WorkingOsKeyring:
    """An in-memory OS keyring service; `locked` makes it refuse from then on."""

    name = "working OS keyring"

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}
        self.locked = False

    def get_password(self, service: str, username: str) -> str | None:
        if self.locked:
            raise KeyringLocked("locked")
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.locked:
            raise KeyringLocked("locked")
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.values[(service, username)]


@pytest.fixture
def fake_os_keyrings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let SecretStore treat this module's stand-ins as OS keyrings."""
    monkeypatch.setattr(secrets, "OS_KEYRING_MODULE_PREFIXES", (*secrets.OS_KEYRING_MODULE_PREFIXES, __name__))


def _as_backend(fake: object) -> KeyringBackend:
    return cast(KeyringBackend, fake)


class TestFallbackFile:
    def test_round_trip_without_a_keyring_service(self, tmp_path: Path) -> None:
        store = SecretStore("device", tmp_path, system_keyring=NO_KEYRING)
        assert store.is_file_backed
        assert store.backend_name == FILE_BACKEND_NAME
        assert store.get("refresh_token") is None
        store.set("refresh_token", "rt-1")
        assert store.get("refresh_token") == "rt-1"
        store.set("refresh_token", "rt-2")
        assert store.get("refresh_token") == "rt-2"
        store.delete("refresh_token")
        assert store.get("refresh_token") is None
        store.delete("refresh_token")  # deleting twice is fine

    def test_file_is_in_the_data_folder_and_private(self, tmp_path: Path) -> None:
        store = SecretStore("device", tmp_path, system_keyring=NO_KEYRING)
        store.set("refresh_token", "rt-1")
        assert store.fallback_path == tmp_path / SECRETS_FILE_NAME
        assert _mode(store.fallback_path) == 0o600
        store.delete("refresh_token")
        assert _mode(store.fallback_path) == 0o600

    def test_loose_permissions_are_tightened_on_the_next_write(self, tmp_path: Path) -> None:
        store = SecretStore("device", tmp_path, system_keyring=NO_KEYRING)
        store.set("a", "1")
        os.chmod(store.fallback_path, 0o644)
        store.set("b", "2")
        assert _mode(store.fallback_path) == 0o600

    def test_a_value_survives_a_new_store_object(self, tmp_path: Path) -> None:
        SecretStore("device", tmp_path, system_keyring=NO_KEYRING).set("refresh_token", "rt-1")
        assert SecretStore("device", tmp_path, system_keyring=NO_KEYRING).get("refresh_token") == "rt-1"

    def test_unicode_and_long_values(self, tmp_path: Path) -> None:
        store = SecretStore("signing", tmp_path, system_keyring=NO_KEYRING)
        value = "डॉ. राधा " + "x" * 5000 + "\n=;[]"
        store.set("key", value)
        assert store.get("key") == value


class TestIsolation:
    def test_two_data_folders_never_see_each_others_secrets(self, tmp_path: Path) -> None:
        pc_a = SecretStore("device", tmp_path / "pc-a", system_keyring=NO_KEYRING)
        pc_b = SecretStore("device", tmp_path / "pc-b", system_keyring=NO_KEYRING)
        pc_a.set("refresh_token", "token-a")
        pc_b.set("refresh_token", "token-b")
        assert (pc_a.get("refresh_token"), pc_b.get("refresh_token")) == ("token-a", "token-b")
        pc_a.delete("refresh_token")
        assert pc_b.get("refresh_token") == "token-b"

    def test_two_namespaces_in_one_data_folder_are_isolated(self, tmp_path: Path) -> None:
        device = SecretStore("device", tmp_path, system_keyring=NO_KEYRING)
        signing = SecretStore("signing", tmp_path, system_keyring=NO_KEYRING)
        device.set("key", "device-secret")
        signing.set("key", "signing-secret")
        assert device.get("key") == "device-secret"
        assert signing.get("key") == "signing-secret"
        signing.delete("key")
        assert device.get("key") == "device-secret"

    @pytest.mark.usefixtures("fake_os_keyrings")
    def test_two_data_folders_share_one_os_keyring_without_collision(self, tmp_path: Path) -> None:
        os_keyring = _WorkingOsKeyring()  # the one keyring both simulated PCs on this machine share
        pc_a = SecretStore("device", tmp_path / "pc-a", system_keyring=_as_backend(os_keyring))
        pc_b = SecretStore("device", tmp_path / "pc-b", system_keyring=_as_backend(os_keyring))
        pc_a.set("refresh_token", "token-a")
        pc_b.set("refresh_token", "token-b")
        assert (pc_a.get("refresh_token"), pc_b.get("refresh_token")) == ("token-a", "token-b")
        assert len(os_keyring.values) == 2

    def test_service_name_names_the_app_namespace_and_folder(self, tmp_path: Path) -> None:
        name = service_name("device", tmp_path)
        prefix, namespace, digest = name.split(":")
        assert (prefix, namespace, len(digest)) == ("IntegMed", "device", 16)
        assert service_name("device", tmp_path / "." / "") == name  # the same folder spelled differently

    @pytest.mark.parametrize("namespace", ["", "a:b"])
    def test_bad_namespace_is_refused(self, tmp_path: Path, namespace: str) -> None:
        with pytest.raises(ValueError, match="namespace"):
            SecretStore(namespace, tmp_path, system_keyring=NO_KEYRING)


class TestBackendChoice:
    def test_this_machine_without_secret_service_uses_the_data_folder_file(self, tmp_path: Path) -> None:
        # The default candidate: keyring's own choice. On a headless box keyring picks keyrings.alt's
        # plaintext file in the home folder, which must not be used.
        store = SecretStore("device", tmp_path)
        if usable_os_keyring(keyring.get_keyring(), store.service) is None:
            assert store.is_file_backed
            assert store.fallback_path.parent == tmp_path
        store.set("refresh_token", "rt-1")
        try:
            assert store.get("refresh_token") == "rt-1"
        finally:
            store.delete("refresh_token")
        assert store.get("refresh_token") is None

    @pytest.mark.parametrize("candidate", [fail.Keyring(), PlaintextKeyring()], ids=["fail", "keyrings.alt-home-file"])
    def test_non_os_backends_are_not_used(self, tmp_path: Path, candidate: KeyringBackend) -> None:
        assert usable_os_keyring(candidate, "IntegMed:t:0") is None

    @pytest.mark.usefixtures("fake_os_keyrings")
    def test_os_keyring_that_fails_the_probe_falls_back_to_the_file(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = SecretStore("device", tmp_path, system_keyring=_as_backend(_LockedKeyring()))
        assert store.is_file_backed
        store.set("refresh_token", "super-secret-value")
        assert store.get("refresh_token") == "super-secret-value"
        assert "super-secret-value" not in caplog.text

    @pytest.mark.usefixtures("fake_os_keyrings")
    def test_a_working_os_keyring_is_used(self, tmp_path: Path) -> None:
        os_keyring = _WorkingOsKeyring()
        store = SecretStore("device", tmp_path, system_keyring=_as_backend(os_keyring))
        assert not store.is_file_backed
        assert store.backend_name == _WorkingOsKeyring.name
        store.set("refresh_token", "rt-1")
        assert os_keyring.values == {(store.service, "refresh_token"): "rt-1"}
        assert not (tmp_path / SECRETS_FILE_NAME).exists()

    @pytest.mark.usefixtures("fake_os_keyrings")
    def test_a_secret_from_the_file_moves_into_a_keyring_that_appeared(self, tmp_path: Path) -> None:
        SecretStore("device", tmp_path, system_keyring=NO_KEYRING).set("refresh_token", "rt-1")
        os_keyring = _WorkingOsKeyring()
        store = SecretStore("device", tmp_path, system_keyring=_as_backend(os_keyring))
        assert store.get("refresh_token") == "rt-1"
        assert os_keyring.values == {(store.service, "refresh_token"): "rt-1"}
        assert SecretStore("device", tmp_path, system_keyring=NO_KEYRING).get("refresh_token") is None

    @pytest.mark.usefixtures("fake_os_keyrings")
    def test_keyring_refusing_after_start_up_is_a_known_error(self, tmp_path: Path) -> None:
        os_keyring = _WorkingOsKeyring()
        store = SecretStore("device", tmp_path, system_keyring=_as_backend(os_keyring))
        os_keyring.locked = True
        with pytest.raises(KeyringUnavailable):
            store.set("refresh_token", "rt-1")
        with pytest.raises(KeyringUnavailable):
            store.get("refresh_token")
