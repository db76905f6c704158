"""Secrets the service must present again, sealed at rest with keys derived from SECRET_KEY."""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# The HKDF info label: a key derived for sealing can never equal one derived from the same
# SECRET_KEY for another purpose (Django's signing uses its own salts, never this label).
PURPOSE = b"molecule-uploads sealed secrets v1"


def seal(plain: str) -> str:
    """``plain`` encrypted and authenticated (Fernet) with the current SECRET_KEY."""
    return _fernet().encrypt(plain.encode("utf-8")).decode("ascii")


def unseal(sealed: str) -> str | None:
    """The plain text of a value sealed with SECRET_KEY or one of SECRET_KEY_FALLBACKS.

    None when no key opens it (the keys changed without a fallback, or it was altered):
    the caller treats the secret as missing.
    """
    try:
        return _fernet().decrypt(sealed.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        return None


def _fernet() -> MultiFernet:
    # Read at call time, so a rotation (and override_settings) applies at once.
    return _fernet_for((settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


@functools.lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    # The first key seals; every key opens. HKDF, not the raw key: Fernet wants 32 random
    # bytes, and SECRET_KEY is a string of any length.
    return MultiFernet([Fernet(_derive(key)) for key in keys])


def _derive(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode("utf-8")))
