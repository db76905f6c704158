"""Parse operator-facing durations such as ``90s``, ``30m``, ``1h``, ``2d`` or plain seconds."""

import re
from datetime import timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The sign is matched so that "-5m" is refused for being negative, not for its syntax.
_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str, *, positive: bool = False) -> timedelta:
    """Return the timedelta for ``text``; raise ValueError with a one-line reason.

    A duration is never negative; with ``positive`` it must be more than 0 as well (an
    interval, a TTL, a stale threshold), where 0 is allowed otherwise (a retention of 0 keeps
    nothing past the next sweep).
    """
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use seconds, or a number followed by s, m, h or d"
        )
    amount, unit = match.groups()
    try:
        duration = timedelta(seconds=float(amount) * _UNIT_SECONDS[unit or "s"])
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: out of range") from None
    if duration < timedelta(0):
        raise ValueError(f"invalid duration {text!r}: must not be negative")
    if positive and not duration:
        raise ValueError(f"invalid duration {text!r}: must be more than 0")
    return duration
