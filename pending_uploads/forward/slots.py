"""How many forwards this worker process has in flight, and its cap."""

from __future__ import annotations

import threading

from pending_uploads import conf


class ForwardSlots:
    """Forwards in flight in this process, at most PENDING_UPLOADS_FORWARD_MAX_CONCURRENT.

    Each forward holds a gunicorn thread for its whole transfer; a cap below the thread count
    keeps threads for polls however slow the workspaces are. The cap is read at each
    acquire, so a change (or override_settings) applies to the next forward.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0

    def acquire(self) -> bool:
        with self._lock:
            if self.in_flight >= conf.forward_max_concurrent():
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1


SLOTS = ForwardSlots()
