"""Signing a prescription on the server: the outside contract over real HTTP, idempotence, immutability."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import zxingcpp
from PIL import Image

from shared.signing.rx import verify_qr_payload
from shared.signing.trust import default_trust
from sync_server.app import create_app
from sync_server.settings import Settings
from tests.helpers.servers import serve
from tests.sync_server.conftest import MBBS_MOBILE, SignedIn, sign_in
from tests.sync_server.test_prescription_drafts import METFORMIN_LINE, draft, encounter

PROBLEM = "application/problem+json"


def decode_qr_png(qr_code: str) -> str:
    """The text in the answer's QR PNG, read by a real decoder (zxing-cpp)."""
    data = base64.b64decode(qr_code.removeprefix("data:image/png;base64,"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


def signed_draft(client: Any, who: SignedIn) -> dict[str, Any]:
    rx = draft(client, who, encounter(client, who))
    assert rx.status_code == 201, rx.text
    return dict(rx.json())


def test_contract_over_real_http_then_offline_verification(
    settings: Settings, sandbox_url: str, tmp_path: Path
) -> None:
    from tests.sync_server.conftest import seed_demo

    seed_demo(settings)
    with serve(create_app(settings)) as base, httpx.Client(base_url=base, trust_env=False) as client:
        doctor = sign_in(client, sandbox_url, MBBS_MOBILE)
        rx = signed_draft(client, doctor)
        r = client.post(f"/api/v1/prescriptions/{rx['id']}/sign", headers=doctor.headers)
        assert r.status_code in (200, 201), r.text
        body = r.json()
    assert {"qr_code", "signature_hash", "qr_payload"} <= body.keys()
    # The QR decodes byte-exact to the payload, and the payload verifies offline against the shipped roots.
    assert decode_qr_png(body["qr_code"]) == body["qr_payload"]
    result = verify_qr_payload(body["qr_payload"], default_trust())
    assert result.valid, result.message
    assert result.sandbox and result.content_hash == body["signature_hash"]
    assert result.content is not None and str(result.content.rx_id) == rx["id"]
    assert [m.generic_name for m in result.content.medicines] == ["METFORMIN"]
    assert result.doctor is not None and result.doctor.hpr_id == doctor.user["hpr_id"].replace("-", "")
    signed = body["prescription"]
    assert signed["status"] == "signed" and signed["content_hash"] == body["signature_hash"]
    assert signed["medications"] == [METFORMIN_LINE]
