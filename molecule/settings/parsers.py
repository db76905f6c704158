"""Text to setting value: each parser raises ValueError with the reason, for one-line errors."""

from molecule.durations import parse_duration


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"must be an integer, got {text!r}") from None


def http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"must be an http(s) URL, got {text!r}")
    return text


# Upstream's values; it logs a warning for any other and runs self-hosted, where a typo here
# stops startup instead, since it switches what the address guard allows.
DEPLOY_MODES = ("saas", "self-hosted", "selfhosted", "standalone")


def deploy_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode and mode not in DEPLOY_MODES:
        raise ValueError(f"must be one of {', '.join(DEPLOY_MODES)}, got {text!r}")
    return mode


def milliseconds(text: str) -> int:
    # A duration ("30s", "2m") or a bare number of milliseconds, as PostgreSQL reads it.
    text = text.strip()
    if text.isdigit():
        return int(text)
    if text.endswith("ms") and text[:-2].strip().isdigit():
        return int(text[:-2])
    return round(parse_duration(text).total_seconds() * 1000)
