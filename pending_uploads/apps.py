"""App config for pending uploads."""

from django.apps import AppConfig


class PendingUploadsConfig(AppConfig):
    name = "pending_uploads"
    verbose_name = "Pending uploads"

    def ready(self) -> None:
        # Create the counters in every process, so /metrics shows each series at 0.
        from pending_uploads import metrics  # noqa: F401
