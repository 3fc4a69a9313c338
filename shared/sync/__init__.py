"""Sync between desktop and server: the wire protocol (`protocol`) and the conflict rules (`merge`)."""
