"""How many slow clients, how slow, for how long: the two scales."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class SlowScale:
    direct_uploads: int
    nginx_uploads: int
    dripping_headers: int
    rate_bytes_per_s: int
    seconds: float
    # Connections open over this long, so 200 clients do not arrive as one SYN burst.
    stagger_seconds: float
    # Client n trickles n/N of this longer, so bodies complete spread out as real ones do;
    # every client is still connected at once for ``seconds``.
    finish_spread_seconds: float
    # Downloads of one file read 512 bytes every 2 s through nginx, each for ``seconds``,
    # spread over loopback addresses at the shipped per-address limit.
    slow_readers: int
    reader_file_bytes: int


SCALES = {
    "full": SlowScale(10, 200, 4, 50 * KIB, 10.0, 1.0, 10.0, 64, 16 * MIB),
    "quick": SlowScale(4, 20, 2, 50 * KIB, 1.0, 0.1, 1.0, 16, 2 * MIB),
}
