"""QR rendering of a signed prescription's payload as PNG bytes.

The payload is RX1 text (base45 alphabet, `RX1:` prefix), so the whole symbol is encoded in QR alphanumeric
mode. Error correction M and a 4-module quiet zone follow clinical_rx.md §4.3 (printed 36-40 mm); 8 pixels
per module keep a phone camera, zbar and zxing-cpp decoding it from the PNG or a 300-dpi print.
"""

from __future__ import annotations

import base64
import io

BOX_PIXELS = 8
QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 minimum


def render_png(payload: str, *, box_pixels: int = BOX_PIXELS) -> bytes:
    """PNG bytes of a black-on-white QR code holding exactly ``payload``.

    Raises:
        ValueError: when the payload does not fit in a QR code (version 40) at error correction M.
    """
    # Imported on first use: qrcode brings Pillow (several MiB) into an API process that may never sign.
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_pixels, border=QUIET_ZONE_MODULES)
    qr.add_data(payload, optimize=0)
    try:
        qr.make(fit=True)
    except qrcode.exceptions.DataOverflowError as exc:
        raise ValueError(f"payload of {len(payload)} characters does not fit in one QR code") from exc
    image = qr.make_image(fill_color="black", back_color="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,…`` for a PNG (what the sign answer's ``qr_code`` carries)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
