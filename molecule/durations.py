"""Operator-facing durations: parse ``90s``, ``1h``, ``2d`` or seconds; show ``1 min 30 s``."""

import re
from datetime import timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# How every duration is shown, largest first: commands, logs and the admin's messages.
_SHOWN_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
_MINUTE = [name for name, _ in _SHOWN_UNITS].index("min")
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


def format_duration(duration: timedelta | float, *, approximate: bool = False) -> str:
    """``45 s``, ``1 min 30 s``, ``10 min``, ``1 h 30 min``, ``30 d``: largest unit first,
    units that are 0 left out, fractions of a second to the millisecond (``0.5 s``).

    Exact by default. ``approximate`` rounds to the two largest units, and to the minute from
    one minute up (3,299.4 s is ``55 min``, 90,061 s is ``1 d 1 h``), for estimates such as
    "the next is due in". Below 0 is shown as ``0 s``.
    """
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    seconds = max(seconds, 0.0)
    if approximate:
        largest = next(
            (n for n, (_, size) in enumerate(_SHOWN_UNITS) if seconds >= size),
            len(_SHOWN_UNITS) - 1,
        )
        finest = _MINUTE if seconds >= 60 else len(_SHOWN_UNITS) - 1
        size = _SHOWN_UNITS[min(largest + 1, finest)][1]
        seconds = round(seconds / size) * size
    milliseconds = round(seconds * 1000)
    whole, fraction = divmod(milliseconds, 1000)
    parts = []
    for name, size in _SHOWN_UNITS[:-1]:
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count} {name}")
    if whole or fraction or not parts:
        parts.append(f"{whole + fraction / 1000:g} s")
    return " ".join(parts)
