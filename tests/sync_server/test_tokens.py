"""Access tokens: a verified token is remembered until it expires, never across secrets or issuers."""

from __future__ import annotations

import time
import uuid

import pytest

from sync_server.security import tokens

CLAIMS = tokens.AccessClaims(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "device", None)
SECRET = "s" * 48


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = tokens.issue_access(CLAIMS, secret=SECRET, issuer="integmed", ttl_s=60)
    assert tokens.decode_access(token, secret=SECRET, issuer="integmed") == CLAIMS
    assert tokens.decode_access(token, secret=SECRET, issuer="integmed") == CLAIMS  # from the memo
    now = time.time()
    monkeypatch.setattr(tokens.time, "time", lambda: now + 61)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.decode_access(token, secret=SECRET, issuer="integmed")


def test_a_remembered_token_is_not_valid_under_another_secret_or_issuer() -> None:
    token = tokens.issue_access(CLAIMS, secret=SECRET, issuer="integmed", ttl_s=60)
    assert tokens.decode_access(token, secret=SECRET, issuer="integmed") == CLAIMS
    with pytest.raises(tokens.InvalidToken, match="not valid"):
        tokens.decode_access(token, secret="t" * 48, issuer="integmed")
    with pytest.raises(tokens.InvalidToken, match="not valid"):
        tokens.decode_access(token, secret=SECRET, issuer="someone-else")
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(tokens.InvalidToken, match="not valid"):
        tokens.decode_access(tampered, secret=SECRET, issuer="integmed")
