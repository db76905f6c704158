"""Process trees and memory, read from /proc: for tests, bench and soak to find and measure."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path


def _ppid_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces or parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1])


def process_children(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _ppid_of(int(entry.name)) == pid:
            children.append(int(entry.name))
    return sorted(children)


def process_descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children, grandchildren, ...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid = _ppid_of(int(entry.name))
            if ppid is not None:
                parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return sorted(found)


def process_rss_bytes(pid: int, field: str = "VmRSS") -> int | None:
    """Resident set size of ``pid`` (VmRSS, or its peak: VmHWM), or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def process_open_file_bytes(pid: int, under: Path) -> int:
    """Bytes in the files ``pid`` has open below ``under``, unlinked ones included.

    nginx unlinks its temporary files as soon as it creates them, so a directory listing
    shows nothing; only the open descriptors tell how much they hold. 0 when ``pid`` is gone.
    """
    prefix = f"{Path(under)}/"
    total = 0
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor).startswith(prefix):
                total += descriptor.stat().st_size
        except OSError:
            continue  # closed meanwhile
    return total


def process_reset_peak(pid: int) -> None:
    """Reset ``pid``'s VmHWM to its current RSS: writing 5 to clear_refs (Linux >= 4.0)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
