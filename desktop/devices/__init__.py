"""Bluetooth health devices: decoding captured bytes now; bleak sessions later (no Qt here)."""
