"""The small typed values the pending-uploads manager takes and returns."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload


class SweepResult(NamedTuple):
    acked: int
    expired: int

    @property
    def total(self) -> int:
        return self.acked + self.expired

    def __add__(self, other: object) -> SweepResult:
        if not isinstance(other, SweepResult):
            return NotImplemented
        return SweepResult(self.acked + other.acked, self.expired + other.expired)


class Backlog(NamedTuple):
    pending: int
    fetched: int
    acked: int
    oldest_unacked_age_seconds: float
    # Bucket objects whose rows are deleted, waiting in the outbox for their delete.
    objects_pending: int = 0


class SweepError(Exception):
    """The pending-uploads sweep failed; ``partial`` holds what committed batches deleted."""

    def __init__(self, message: str, partial: SweepResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial or SweepResult(0, 0)


class DrainResult(NamedTuple):
    """Objects the outbox drain deleted, and keys whose delete failed (they stay queued)."""

    deleted: int
    failed: int

    def __add__(self, other: object) -> DrainResult:
        if not isinstance(other, DrainResult):
            return NotImplemented
        return DrainResult(self.deleted + other.deleted, self.failed + other.failed)


class OrphanPage(NamedTuple):
    """Of one listing page: the objects no row and no outbox entry names, and the reapable."""

    orphans: list[str]
    # Orphans older than the grace period (an upload in flight is younger).
    reapable: list[str]


class FileTooLarge(Exception):
    def __init__(self, filename: str, size: int, limit: int) -> None:
        super().__init__(f"{filename} is {size} bytes, over the {limit}-byte cap")
        self.filename = filename
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class NewUpload:
    filename: str
    mimetype: str
    size_bytes: int
    # Read once, at insert time, so only one file's bytes are in memory at once.
    source: IO[bytes]


class AckOutcome(enum.Enum):
    # Stamped now, or stamped before and still there (a repeated ack).
    ACKED = "acked"
    # Unacked and unexpired when the ack began, deleted by the sweep before it could be stamped.
    RACED = "raced"
    # Absent, expired or another workspace's.
    ABSENT = "absent"


class OpenedContent(NamedTuple):
    """A stored file ready to serve: its row (bytes not loaded), length and chunk iterator."""

    row: PendingUpload
    length: int
    chunks: Iterator[bytes]
