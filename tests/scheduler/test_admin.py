"""django-q2's task pages as the scheduler registers them: fewer, shorter columns."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django_q.models import Failure, OrmQ, Schedule, Success

from scheduler.admin import (
    FailureListAdmin,
    QueueListAdmin,
    ScheduleListAdmin,
    SuccessListAdmin,
    dotted_path,
)
from scheduler.schedules import SCHEDULES
from tests.helpers import django_q_task_rows
from tests.molecule.test_admin import row_cells

pytestmark = pytest.mark.django_db


def test_the_scheduler_replaces_every_django_q_list() -> None:
    registered = {
        model: type(admin.site._registry[model]) for model in (Schedule, Success, Failure, OrmQ)
    }

    assert registered == {
        Schedule: ScheduleListAdmin,
        Success: SuccessListAdmin,
        Failure: FailureListAdmin,
        OrmQ: QueueListAdmin,
    }


def test_dotted_paths_may_wrap_after_each_dot() -> None:
    assert dotted_path("a.b<c>.d") == "a.<wbr>b&lt;c&gt;.<wbr>d"
    assert dotted_path("") == "-"


# (page, a text of the row to look at, the cells it must show)
PAGES = {
    "scheduled": (
        "/admin/django_q/schedule/",
        ">molecule.activity_sweep<",
        {"function": "molecule.tasks.sweep_activity", "every": "every 1 h"},
    ),
    "scheduled once": (
        "/admin/django_q/schedule/",
        "(operator,",
        {"function": "pending_uploads.tasks.sweep_pending_uploads", "every": "once"},
    ),
    "successful": (
        "/admin/django_q/success/",
        # The result's acked count: the first row's.
        "12345",
        {
            "function": "pending_uploads.tasks.sweep_pending_uploads",
            "task_group": "pending_uploads.sweep",
            "took": "3 s",
        },
    ),
    "failed": (
        "/admin/django_q/failure/",
        "3.004 s",
        # The one failed row that took 3.004 s is the fifth (n = 4) of django_q_task_rows.
        {"function": SCHEDULES[4 % len(SCHEDULES)].func, "took": "3.004 s"},
    ),
    "queued": (
        "/admin/django_q/ormq/",
        "sweep_activity",
        {"function": "molecule.tasks.sweep_activity", "task_group": "molecule.activity_sweep"},
    ),
}


@pytest.mark.parametrize(("url", "marker", "expected"), PAGES.values(), ids=PAGES.keys())
def test_task_pages_show_short_columns(
    admin_client: Client, url: str, marker: str, expected: dict[str, str]
) -> None:
    django_q_task_rows()

    response = admin_client.get(url)

    assert response.status_code == 200
    cells = row_cells(response.content.decode(), marker)
    assert {name: cells[name] for name in expected} == expected
    # Dropped: ids, repeats, cluster, the queue key and task id.
    assert not {"id", "repeats", "cluster", "key", "task_id"} & set(cells)
