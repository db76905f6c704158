"""nginx under the slow clients: its workers' peak memory and temporary files."""

from __future__ import annotations

import time
from typing import Any

from bench.slow_clients.scale import MIB

# nginx's temporary files still growing (by more than a reader's reads) within this long:
# gunicorn is still sending the downloads' answers.
SPOOL_SETTLED_SECONDS = 0.5
SPOOL_NOISE_BYTES = 1024 * 1024


class NginxPeaks:
    """The most nginx's workers held while the clients were connected: memory, temp files.

    Also tells when the downloads' answers have all reached nginx: its temporary files stop
    growing, and from then on gunicorn has nothing left to send the readers.
    """

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        self.rss_before = proxy.workers_rss_bytes() if proxy else 0
        self.rss_peak = self.rss_before
        self.temp_bytes = {"proxy": 0, "client_body": 0}
        self._spooled = 0
        self._spool_changed_at = time.monotonic()

    def sample(self) -> None:
        if self.proxy is None:
            return
        self.rss_peak = max(self.rss_peak, self.proxy.workers_rss_bytes())
        for area, peak in self.temp_bytes.items():
            self.temp_bytes[area] = max(peak, self.proxy.temp_file_bytes(area))
        spooled = self.proxy.temp_file_bytes("proxy")
        if abs(spooled - self._spooled) > SPOOL_NOISE_BYTES:
            self._spooled, self._spool_changed_at = spooled, time.monotonic()

    def spooling(self) -> bool:
        return time.monotonic() - self._spool_changed_at < SPOOL_SETTLED_SECONDS

    def figures(self) -> dict[str, Any]:
        if self.proxy is None:
            return {}
        return {
            # Over the workers' RSS when the run started (they keep what earlier runs grew).
            "nginx_rss_before_mib": round(self.rss_before / MIB, 1),
            "nginx_rss_growth_peak_mib": round((self.rss_peak - self.rss_before) / MIB, 1),
            "proxy_temp_peak_mib": round(self.temp_bytes["proxy"] / MIB, 1),
            "client_body_temp_peak_mib": round(self.temp_bytes["client_body"] / MIB, 1),
        }
