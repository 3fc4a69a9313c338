"""Secrets in the OS keyring (secrets.py) and offline unlock with a local PIN or passphrase (pin.py); no Qt."""
