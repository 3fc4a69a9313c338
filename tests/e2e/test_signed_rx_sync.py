"""A prescription signed offline on a PC reaches the server, which verifies it; a tampered one is refused."""

from __future__ import annotations

import base64
import json
import pathlib
import uuid
from collections.abc import Callable

import httpx
import pytest
import sqlalchemy as sa
from keyring.backends import fail

from desktop.config import DesktopSettings
from desktop.rx.revocations import load_cached
from desktop.security.doctor_keys import DoctorKeys
from desktop.security.secrets import SecretStore
from desktop.services.auth import AuthService
from desktop.services.encounters import EncounterService
from desktop.services.prescribing import PrescribingService, prescriber_for
from desktop.services.rx_signing import RxSigningService
from desktop.services.signing import SignatureNotVerifiable, SigningService
from desktop.sync.commands import device_secrets
from shared.signing.keys import key_id
from shared.signing.trust import default_trust
from tests.e2e.conftest import PC, Server
from tests.sync_server.conftest import MBBS_MOBILE, last_otp

RADHA = {"name": "राधा कुमारी", "gender": "F", "year_of_birth": 1990, "mobile": "+919812300001"}
MBBS = {"qualification": "MBBS", "system_of_medicine": "modern_medicine", "state": "Delhi"}


def signed_on_pc(pc: PC, keys: DoctorKeys, doctor: uuid.UUID, patient_id: uuid.UUID) -> uuid.UUID:
    """Start an encounter, save a prescription and sign it on the PC (offline); the prescription id."""
    assert pc.store is not None
    encounters = EncounterService(writer=pc.store.writer, uow=pc.store.uow, clock=pc.store.clock)
    e = encounters.start(
        {"patient_id": patient_id, "encounter_type": "opd", "start_time": "2026-11-25T09:30:00Z",
         "chief_complaint": "Review of sugars"},
        doctor,
    )  # fmt: skip
    rx = PrescribingService(writer=pc.store.writer, uow=pc.store.uow)
    assert rx.save(e.id, ["Metf 1000 bd 30d"], prescriber_for(MBBS, "doctor", "opd"), doctor) is not None
    signing = RxSigningService(pc.store.uow, SigningService(keys, pc.data_dir), pc.data_dir, clock=pc.store.clock)
    return signing.sign_and_print(doctor, e.id).prescription_id


def server_signed(server: Server, sandbox: str, rx_id: uuid.UUID) -> httpx.Response:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        init = http.post("/api/v1/auth/doctor/init", json={"mobile": MBBS_MOBILE}).json()
        token = http.post(
            "/api/v1/auth/doctor/verify", json={"txn_id": init["txn_id"], "otp": last_otp(sandbox, MBBS_MOBILE)}
        ).json()["access_token"]
        return http.get(f"/api/v1/prescriptions/{rx_id}/signed", headers={"Authorization": f"Bearer {token}"})


def test_signed_offline_verified_by_the_server_and_a_tampered_one_refused(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a = make_pc("pc-a")
    assert a.store is not None
    keys = DoctorKeys(SecretStore("signing", a.data_dir, system_keyring=fail.Keyring()), a.data_dir)
    auth = AuthService(
        a.store.uow, device_secrets(DesktopSettings(data_dir=a.data_dir)), lambda url: a.transport(), doctor_keys=keys
    )
    txn, _ = auth.start_sign_in(a.server_url, MBBS_MOBILE)
    doctor = auth.finish_sign_in(a.server_url, txn, last_otp(sandbox_url, MBBS_MOBILE), pc_name="pc-a").user_id
    p = a.patients.register(RADHA, actor="test")
    good = signed_on_pc(a, keys, doctor, p.id)
    report = a.sync()
    assert report.complete and not report.rejected, report.rejected
    stored = server_signed(server, sandbox_url, good)
    assert stored.status_code == 200, stored.text
    with a.store.uow.read() as uow:
        qr = uow.connection.execute(sa.text("SELECT qr_payload FROM signed_prescriptions")).scalar_one()
    assert stored.json()["qr_payload"] == qr

    bad = signed_on_pc(a, keys, doctor, p.id)

    def tamper() -> None:  # one bit of the queued signature flips (a bad disk, or a forger)
        assert a.store is not None
        with a.store.uow.write() as uow:
            row = uow.connection.execute(
                sa.text("SELECT seq, payload FROM outbox WHERE kind = 'signed_prescription' AND record_id = :id"),
                {"id": str(bad)},
            ).one()
            payload = json.loads(row.payload)
            cose = bytearray(base64.b64decode(payload["fields"]["cose"]))
            cose[-1] ^= 0x01
            payload["fields"]["cose"] = base64.b64encode(bytes(cose)).decode()
            uow.connection.execute(
                sa.text("UPDATE outbox SET payload = :p WHERE seq = :s"), {"p": json.dumps(payload), "s": row.seq}
            )
            uow.commit()

    a.store.writer.run(tamper)
    report = a.sync()
    assert [(r.record_id, r.kind, r.reason) for r in report.rejected] == [(bad, "signed_prescription", "bad_signature")]
    assert report.rejected[0].message.startswith("bad_signature")
    assert server_signed(server, sandbox_url, bad).status_code == 404  # stored nowhere


def test_a_revoked_key_reaches_the_pc_by_sync_and_its_signatures_stop_verifying(
    make_pc: Callable[..., PC], server: Server, sandbox_url: str
) -> None:
    a = make_pc("pc-a")
    assert a.store is not None
    keys = DoctorKeys(SecretStore("signing", a.data_dir, system_keyring=fail.Keyring()), a.data_dir)
    auth = AuthService(
        a.store.uow, device_secrets(DesktopSettings(data_dir=a.data_dir)), lambda url: a.transport(), doctor_keys=keys
    )
    txn, _ = auth.start_sign_in(a.server_url, MBBS_MOBILE)
    doctor = auth.finish_sign_in(a.server_url, txn, last_otp(sandbox_url, MBBS_MOBILE), pc_name="pc-a").user_id
    p = a.patients.register(RADHA, actor="test")
    signed_on_pc(a, keys, doctor, p.id)  # before the revocation: signs, and the QR verifies
    assert a.sync().complete
    assert not any(lst.entries for lst in load_cached(a.data_dir, default_trust()).lists)
    kid = key_id(keys.public_key(doctor))
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        init = http.post("/api/v1/auth/doctor/init", json={"mobile": MBBS_MOBILE}).json()
        token = http.post(
            "/api/v1/auth/doctor/verify", json={"txn_id": init["txn_id"], "otp": last_otp(sandbox_url, MBBS_MOBILE)}
        ).json()["access_token"]
        revoked = http.post(
            "/api/v1/signing/revocations",
            json={"kid": kid, "reason": "PC stolen"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert revoked.status_code == 201, revoked.text
    assert a.sync().complete  # the round also installs the server's signed revocation list
    cached = load_cached(a.data_dir, default_trust())
    assert [e.kid for lst in cached.lists for e in lst.entries] == [kid] and not cached.problems
    with pytest.raises(SignatureNotVerifiable) as refused:
        signed_on_pc(a, keys, doctor, p.id)  # signed after the revocation: refused at signing, offline
    assert refused.value.detail is not None and refused.value.detail.startswith("revoked_key")


def test_a_server_without_signing_still_syncs_and_the_log_says_why_no_revocations(
    server: Server,
    sandbox_url: str,
    tmp_path: pathlib.Path,
    sqlite_template_e2e: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The revocation refresh never fails a sync; what the server said (503 "not configured") is in the log,
    not a bare "internal problem"."""
    import shutil

    from desktop.config import DATABASE_FILE
    from tests.helpers.servers import free_port

    plain = Server(server.settings.model_copy(update={"signing_issuer_key": None}), free_port())
    plain.start()
    try:
        data_dir = tmp_path / "no-signing-pc"
        data_dir.mkdir()
        shutil.copyfile(sqlite_template_e2e, data_dir / DATABASE_FILE)
        pc = PC("No-signing PC", data_dir, plain.url, sandbox_url).open()
        try:
            pc.enroll()
            with caplog.at_level("WARNING", logger="desktop.sync.client"):
                report = pc.sync()
            assert report.pending == 0
            logged = [r.getMessage() for r in caplog.records if "revocation list not refreshed" in r.getMessage()]
            assert logged and "Signing is not configured" in logged[0], logged
        finally:
            pc.close()
    finally:
        plain.stop()
