"""Signing in and enrolling this PC (online, HPR OTP), and unlocking offline with a local PIN.

Online sign-in goes to the IntegMed server, which asks the HPR registry to send the OTP. The first sign-in
on a PC enrols it for the user's clinic: the server gives a device id and a device token; the token goes to
the OS keyring (`desktop.security.secrets`), the ids to ``sync_state``. Records made on the PC before
enrolment are re-homed to the clinic in the same transaction. Later, a known user unlocks offline with a
PIN hashed with scrypt (`desktop.security.pin`); wrong PINs lock unlock for a growing time.
"""

from __future__ import annotations

import base64
import logging
import platform
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from desktop.errors import KnownError
from desktop.security import pin as pins
from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.store.unit_of_work import UnitOfWorkFactory
from desktop.store.users import LocalUser, LocalUserRepository
from desktop.sync.errors import ServerRefused
from desktop.sync.transport import Transport
from shared.signing.keys import b64url_encode

logger = logging.getLogger(__name__)

DEVICE_TOKEN = "device_token"
SERVER_URL = "server_url"
CLINIC_NAME = "clinic_name"


class WrongPin(ServerRefused):
    """The PIN did not match; carries how many tries remain before unlock locks."""

    title = "Wrong PIN"
    default_message = "That PIN is not right."
    action = "Type it again, or sign in online with the one-time code."
    code = "desktop.wrong_pin"


@dataclass(frozen=True)
class Enrolment:
    device_id: uuid.UUID
    clinic_id: uuid.UUID
    clinic_name: str
    server_url: str


class AuthService:
    def __init__(
        self,
        uows: UnitOfWorkFactory,
        secrets: SecretStore,
        transport_for: Callable[[str], Transport],
        *,
        lockout: pins.LockoutPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        doctor_keys: DoctorKeys | None = None,
    ) -> None:
        self._doctor_keys = doctor_keys
        self._uows = uows
        self._secrets = secrets
        self._transport_for = transport_for
        self._lockout = lockout or pins.LockoutPolicy()
        self._now = now

    # ---- state ------------------------------------------------------------------------------------------

    def enrolment(self) -> Enrolment | None:
        """This PC's enrolment, or None when it was never enrolled (or its token is gone from the keyring)."""
        with self._uows.read() as uow:
            device_id = uow.sync_state.device_id()
            clinic_id = uow.sync_state.clinic_id()
            server = uow.sync_state.get(SERVER_URL)
            clinic_name = uow.sync_state.get(CLINIC_NAME) or ""
        if device_id is None or clinic_id is None or server is None or self._secrets.get(DEVICE_TOKEN) is None:
            return None
        return Enrolment(device_id, clinic_id, clinic_name, server)

    def device_token(self) -> str | None:
        return self._secrets.get(DEVICE_TOKEN)

    def known_users(self) -> list[LocalUser]:
        with self._uows.read() as uow:
            return LocalUserRepository(uow.connection).all()

    # ---- online sign-in ---------------------------------------------------------------------------------

    def start_sign_in(self, server_url: str, mobile: str) -> tuple[str, str]:
        """Ask the server to have HPR send an OTP. Returns (txn id, message to show)."""
        answer = self._transport_for(server_url).sign_in_init(mobile)
        return str(answer["txn_id"]), str(answer["message"])

    def finish_sign_in(self, server_url: str, txn_id: str, otp: str, *, pc_name: str | None = None) -> LocalUser:
        """Check the OTP; enrol this PC on its first sign-in; remember the user for offline unlock."""
        transport = self._transport_for(server_url)
        tokens = transport.sign_in_verify(txn_id, otp)
        profile = tokens["user"]
        clinic_id = uuid.UUID(str(profile["clinic"]["id"]))
        current = self.enrolment()
        enrolled = None
        if current is None or current.clinic_id != clinic_id or current.server_url != server_url.rstrip("/"):
            device_id = self._uows.writer.run(self._device_id)
            enrolled = transport.enroll_device(tokens["access_token"], pc_name or _default_pc_name(), device_id)
            self._secrets.set(DEVICE_TOKEN, enrolled["device_token"])
        user = self._uows.writer.run(self._remember, profile, server_url.rstrip("/"), enrolled is not None)
        if user.role == "doctor":
            self.certify_signing_key(transport, str(tokens["access_token"]), user.user_id)
        return user

    def certify_signing_key(self, transport: Transport, access_token: str, user_id: uuid.UUID) -> bool:
        """Make (once) the doctor's signing key on this PC and have the server certify it; True when certified.

        Sign-in never fails for this: a server without signing keys, or a refusal, leaves the PC unable to
        sign (the Rx pad then says why) and is logged; the next online sign-in tries again.
        """
        if self._doctor_keys is None:
            return False
        try:
            public = self._doctor_keys.public_key(user_id)
            answer = transport.certify_doctor_key(access_token, b64url_encode(public))
            self._doctor_keys.store_certificates(
                user_id, base64.b64decode(answer["certificate"]), base64.b64decode(answer["issuer_certificate"])
            )
        except (KnownError, KeyError, ValueError) as exc:
            logger.warning("the signing key on this PC was not certified: %s", exc)
            return False
        return True

    def _device_id(self) -> uuid.UUID:
        with self._uows.write() as uow:
            device_id = uow.sync_state.ensure_device_id()
            uow.commit()
            return device_id

    def _remember(self, profile: dict[str, object], server_url: str, newly_enrolled: bool) -> LocalUser:
        now = self._now()
        with self._uows.write() as uow:
            clinic = profile["clinic"]
            assert isinstance(clinic, dict)
            clinic_id = uuid.UUID(str(clinic["id"]))
            if newly_enrolled:
                uow.sync_state.set(SERVER_URL, server_url)
                uow.sync_state.set(CLINIC_NAME, str(clinic["name"]))
                if uow.sync_state.clinic_id() not in (None, clinic_id):
                    # Moving a PC to another clinic: start its feed from the beginning of the new clinic's.
                    uow.sync_state.set("pull_cursor", None)
                uow.sync_state.set_clinic_id(clinic_id)
                uow.patients.adopt_clinic(clinic_id)
            user = LocalUserRepository(uow.connection).upsert_profile(dict(profile), now=now)
            uow.commit()
            return user

    # ---- offline unlock ----------------------------------------------------------------------------------

    def set_pin(self, user_id: uuid.UUID, pin: str) -> None:
        """Set the user's offline PIN (after an online sign-in); raises RuleViolation for a weak PIN."""
        pins.check_pin_policy(pin)
        encoded = pins.hash_pin(pin)

        def write() -> None:
            with self._uows.write() as uow:
                LocalUserRepository(uow.connection).set_pin_hash(user_id, encoded, now=self._now())
                uow.commit()

        self._uows.writer.run(write)

    def unlock(self, user_id: uuid.UUID, pin: str) -> LocalUser:
        """Unlock offline; raises `PinLockedError` while locked and `WrongPin` for a wrong PIN."""
        return self._uows.writer.run(self._unlock, user_id, pin)

    def _unlock(self, user_id: uuid.UUID, pin: str) -> LocalUser:
        now = self._now()
        with self._uows.write() as uow:
            users = LocalUserRepository(uow.connection)
            user = users.get(user_id)
            self._lockout.check(user.locked_until, now)
            encoded = users.pin_hash(user_id)
            if encoded is None:
                raise WrongPin("No offline PIN is set for this user: sign in online first.")
            if pins.verify_pin(pin, encoded):
                users.record_unlock_result(user_id, failed_attempts=0, locked_until=None, now=now)
                uow.commit()
                return users.get(user_id)
            failed = user.failed_attempts + 1
            locked_until = self._lockout.after_failure(failed, now)
            users.record_unlock_result(user_id, failed_attempts=failed, locked_until=locked_until, now=now)
            uow.commit()
        left = max(0, self._lockout.max_attempts - failed)
        if locked_until is not None:
            self._lockout.check(locked_until, now)
        raise WrongPin(f"That PIN is not right. {left} tr{'y' if left == 1 else 'ies'} left before a pause.")


def _default_pc_name() -> str:
    return f"{platform.node() or 'Clinic PC'}"[:100]
