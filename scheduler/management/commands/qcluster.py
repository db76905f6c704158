"""django-q2's qcluster, which first upserts the schedules and makes them due now.

The cluster's scheduler ticks about 30 s after start, so a restarted worker sweeps within
~30 s instead of waiting a whole interval.
"""

from typing import Any

from django_q.management.commands.qcluster import Command as QClusterCommand

from scheduler.services import schedules_mark_due


class Command(QClusterCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        schedules_mark_due()
        super().handle(*args, **options)
