"""Sync client: plain Python + httpx (no Qt); push the outbox, then pull the clinic's feed."""
