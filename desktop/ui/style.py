"""Colours and the few style-sheet rules the screens share (contrast checked against a white window, WCAG AA)."""

from __future__ import annotations

ERROR_COLOR = "#b3261e"  # red, 6.1:1 on white
OK_COLOR = "#1b7a3a"  # green, 5.4:1 on white
MUTED_COLOR = "#555555"  # grey text, 7.5:1 on white
WARNING_COLOR = "#8a5300"  # dark amber, 5.9:1 on white

# Fields marked invalid (`FieldError.show_message`) get a red frame as well as the red text under them.
APP_STYLE_SHEET = f"""
QLineEdit[invalid="true"], QComboBox[invalid="true"] {{
    border: 2px solid {ERROR_COLOR};
    border-radius: 3px;
    padding: 2px 4px;
}}
QLabel[role="heading"] {{
    font-size: 15pt;
    font-weight: 600;
}}
QLabel[role="hint"] {{
    color: {MUTED_COLOR};
}}
QLabel[role="error"] {{
    color: {ERROR_COLOR};
}}
"""
