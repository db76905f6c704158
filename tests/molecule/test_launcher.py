"""The run command's setup steps, against the test database in child processes."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from devtools import launcher
from tests.helpers import current_database_url


@pytest.mark.django_db(transaction=True)
def test_admin_login_is_created_once_and_reused(capsys) -> None:
    env = {**os.environ, "DATABASE_URL": current_database_url(), "DEBUG": "1"}

    launcher._ensure_admin(env)
    first = capsys.readouterr().out
    launcher._ensure_admin(env)
    second = capsys.readouterr().out

    assert "created admin login: admin / " in first
    assert "admin login exists" in second
    assert "created admin login" not in second
    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
