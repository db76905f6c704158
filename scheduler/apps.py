"""App config for the scheduler: upserts the schedules after every migrate."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"

    def ready(self) -> None:
        # Create the counters in every process, so /metrics shows each series at 0.
        from scheduler import metrics  # noqa: F401
        from scheduler.services import schedules_sync_after_migrate

        post_migrate.connect(schedules_sync_after_migrate, dispatch_uid="scheduler.schedules_sync")
