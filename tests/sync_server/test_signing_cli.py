"""`integmed-server keys …` and the dev server's issuing key (created once under the sandbox root, reused)."""

from __future__ import annotations

import base64
import signal
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shared.signing import keys
from shared.signing.certs import Role, parse_certificate
from shared.signing.rx import verify_qr_payload
from shared.signing.trust import Environment, default_trust, trusted_root
from sync_server import cli
from sync_server.app import create_app
from sync_server.settings import Settings
from sync_server.signing.issuer import IssuerConfigError, ensure_dev_signing, load_issuer
from tests.helpers.servers import free_port
from tests.sync_server.conftest import SignedIn, sign_in
from tests.sync_server.test_dev_command import _start, _stop
from tests.sync_server.test_signing import decode_qr_png, sign, signed_draft


def test_root_init_then_issuer_create(tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    assert cli.main(["keys", "root-init", "--out", str(tmp_path / "root"), "--name", "Test root"]) == 0
    out = capsys.readouterr().out
    root_key = keys.private_key_from_pem((tmp_path / "root" / "root_ed25519.pem").read_bytes())
    assert f"kid: {keys.key_id(root_key)}" in out
    assert f"public_key: {keys.b64url_encode(keys.public_key_bytes(root_key))}" in out
    assert (tmp_path / "root" / "root_ed25519.pem").stat().st_mode & 0o077 == 0
    assert cli.main(["keys", "root-init", "--out", str(tmp_path / "root")]) == 1  # never overwritten
    capsys.readouterr()

    args = ["keys", "issuer-create", "--root-key", str(tmp_path / "root" / "root_ed25519.pem")]
    assert cli.main([*args, "--out", str(tmp_path / "issuer"), "--days", "30"]) == 0
    out = capsys.readouterr().out
    key_path, cert_path = tmp_path / "issuer" / "issuer_ed25519.pem", tmp_path / "issuer" / "issuer.cert"
    assert f"INTEGMED_SIGNING_ISSUER_KEY={key_path}" in out and "INTEGMED_SIGNING_KEK=" in out
    key, cert = load_issuer(key_path, cert_path)
    assert cert.claims.role is Role.ISSUER and cert.issuer_kid == keys.key_id(root_key)
    assert (cert.claims.expires_at - cert.claims.not_before).days == 30
    assert cli.main([*args, "--out", str(tmp_path / "issuer")]) == 1
    assert cli.main([*args, "--out", str(tmp_path / "other"), "--days", "0"]) == 2
    assert cli.main(["keys", "issuer-create", "--root-key", str(cert_path), "--out", str(tmp_path / "x")]) == 1
    # A root that verifiers do not trust cannot start a server: the issuer is refused at start-up.
    kek = next(line for line in out.splitlines() if line.startswith("INTEGMED_SIGNING_KEK=")).split("=")[1].split()[0]
    unknown = settings.model_copy(
        update={"signing_issuer_key": key_path, "signing_issuer_cert": cert_path, "signing_kek": kek}
    )
    with pytest.raises(IssuerConfigError, match="not a trusted root"):
        create_app(unknown)
    trust = default_trust()
    trust.add_root(trusted_root(keys.public_key_bytes(root_key), "Test root", Environment.PRODUCTION))
    assert trust.learn_issuer(cert, at=datetime.now(UTC)).kid == keys.key_id(key)


def test_dev_issuer_is_created_once_and_reused(tmp_path: Path) -> None:
    key_path, cert_path, kek = ensure_dev_signing(tmp_path)
    first_cert = cert_path.read_bytes()
    assert ensure_dev_signing(tmp_path) == (key_path, cert_path, kek)
    assert cert_path.read_bytes() == first_cert
    cert = parse_certificate(first_cert)
    root = default_trust().root(cert.issuer_kid)
    assert root is not None and root.sandbox
    # A lost certificate is re-issued for the same key, not a new one.
    cert_path.unlink()
    ensure_dev_signing(tmp_path)
    assert parse_certificate(cert_path.read_bytes()).kid == cert.kid


def _sign_one(base: str, sport: int) -> dict[str, str]:
    with httpx.Client(base_url=base, trust_env=False) as client:
        sandbox = f"http://127.0.0.1:{sport}"
        doctor: SignedIn = sign_in(client, sandbox, "+919810000001")
        r = sign(client, doctor, signed_draft(client, doctor)["id"])
        assert r.status_code == 201, r.text
        return dict(r.json())


def test_dev_server_signs_under_the_sandbox_root_and_keeps_its_issuer(tmp_path: Path) -> None:
    port, sport = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    proc, lines = _start(tmp_path, port, sport)
    try:
        first = _sign_one(base, sport)
        issuer = httpx.get(f"{base}/api/v1/signing/trust", trust_env=False).json()["issuers"][0]["kid"]
    finally:
        _stop(proc, signal.SIGTERM)
    assert decode_qr_png(first["qr_code"]) == first["qr_payload"]
    result = verify_qr_payload(first["qr_payload"], default_trust())
    assert result.valid and result.sandbox and result.issuer is not None and result.issuer.kid == issuer
    assert f"signing: issuing key {issuer} under the public SANDBOX root" in "".join(lines)
    proc, _ = _start(tmp_path, port, sport)
    try:
        second = _sign_one(base, sport)
        assert httpx.get(f"{base}/api/v1/signing/trust", trust_env=False).json()["issuers"][0]["kid"] == issuer
        # The key signed before the restart stays the doctor's key (sealed with the same KEK).
        assert second["kid"] == first["kid"]
    finally:
        _stop(proc, signal.SIGINT)
    assert base64.b64decode(second["qr_code"].removeprefix("data:image/png;base64,"))[:4] == b"\x89PNG"
