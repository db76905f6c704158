"""Sealed secrets: Fernet under keys derived from SECRET_KEY, rotated through the fallbacks."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.test import override_settings

from molecule.sealing import seal, unseal

OLD_KEY = "old-secret-key-" + "o" * 40
NEW_KEY = "new-secret-key-" + "n" * 40
PLAIN = "x" * 43


def test_a_sealed_value_opens_and_hides_the_plain_text() -> None:
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        sealed = seal(PLAIN)

        assert PLAIN not in sealed
        # Fernet's version byte, base64url: the stored text says how it was sealed.
        assert sealed.startswith("gAAAAA")
        assert unseal(sealed) == PLAIN
        # A fresh IV each time: equal secrets do not look equal at rest.
        assert seal(PLAIN) != sealed


def test_a_fallback_key_still_opens_what_the_old_key_sealed() -> None:
    with override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]):
        sealed = seal(PLAIN)

    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        assert unseal(sealed) == PLAIN
        resealed = seal(PLAIN)

    # Sealed now with the new key alone: the old key can be dropped.
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        assert unseal(resealed) == PLAIN
        assert unseal(sealed) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda sealed: sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1],
        lambda sealed: sealed[:20],
        lambda sealed: "not a token",
        lambda sealed: "",
        lambda sealed: "gAAAAA\u00e9",
    ],
    ids=["flipped", "truncated", "garbage", "empty", "non-ascii"],
)
def test_an_altered_value_opens_to_nothing(tamper) -> None:
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        assert unseal(tamper(seal(PLAIN))) is None


def test_the_key_is_derived_not_the_secret_key_itself() -> None:
    # A Fernet key made straight from SECRET_KEY's bytes must not open a sealed value.
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        sealed = seal(PLAIN)
    naive = Fernet(base64.urlsafe_b64encode(NEW_KEY.encode()[:32]))
    with pytest.raises(InvalidToken):
        naive.decrypt(sealed.encode())
