"""Workspace bearer tokens: 256 random bits, stored only as a SHA-256 digest."""

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits of entropy

# Compared against when the workspace does not exist, so both paths do the same work.
_ABSENT_HASH = "0" * 64


def token_generate() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    # A fast digest suffices: the token is random, not a password, so it cannot be guessed.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str | None) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash or _ABSENT_HASH)
