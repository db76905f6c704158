"""What the admin's Sweep now button says it left alone, and when that becomes sweepable."""

from __future__ import annotations

from datetime import timedelta

from molecule.admin_utils import COUNT_CAP
from molecule.durations import format_duration
from pending_uploads.managers import SweepLeftAlone


def _count(count: int) -> str:
    return f"{COUNT_CAP:,}+" if count > COUNT_CAP else f"{count:,}"


def left_alone_message(left: SweepLeftAlone, retention: timedelta) -> str:
    """What the sweep did not delete, and when the next of each kind becomes sweepable."""
    keep = format_duration(retention)
    acked = left.acked_within_retention
    if acked:
        verb = "row is" if acked == 1 else "rows are"
        due = format_duration(left.acked_next_due_seconds or 0, approximate=True)
        acked_text = (
            f"{_count(acked)} acked {verb} still within the {keep} retention"
            f" (the next is due in {due})"
        )
    else:
        acked_text = f"no acked rows within the {keep} retention"
    unacked = left.unacked_unexpired
    if unacked:
        verb = "row has" if unacked == 1 else "rows have"
        due = format_duration(left.unacked_next_expiry_seconds or 0, approximate=True)
        unacked_text = f"{_count(unacked)} unacked {verb} not expired (the next expires in {due})"
    else:
        unacked_text = "no unacked rows waiting"
    return f"Left alone: {acked_text}; {unacked_text}."
