"""Parse operator-facing durations such as ``90s``, ``30m``, ``1h``, ``2d`` or plain seconds."""

import re
from datetime import timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> timedelta:
    """Return the timedelta for ``text``; raise ValueError with a one-line reason."""
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use seconds, or a number followed by s, m, h or d"
        )
    amount, unit = match.groups()
    try:
        return timedelta(seconds=float(amount) * _UNIT_SECONDS[unit or "s"])
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: out of range") from None
