"""Shared fixtures: registered workspaces with their tokens, and rows backdated in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from molecule.models import Workspace
from molecule.services import workspace_register


@dataclass
class RegisteredWorkspace:
    workspace: Workspace
    token: str

    @property
    def id(self) -> uuid.UUID:
        return self.workspace.id

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}

    def url(self, suffix: str) -> str:
        return f"/workspaces/{self.id}/{suffix}"


@pytest.fixture
def register() -> Callable[..., RegisteredWorkspace]:
    def make(
        name: str = "agent", delivery_mode: str = "poll", **fields: Any
    ) -> RegisteredWorkspace:
        registration = workspace_register(
            workspace_id=uuid.uuid4(),
            name=name,
            delivery_mode=delivery_mode,
            url=None,
            bearer_token=None,
        )
        workspace = registration.workspace
        if fields:
            Workspace.objects.filter(pk=workspace.pk).update(**fields)
            workspace.refresh_from_db()
        assert registration.auth_token is not None
        return RegisteredWorkspace(workspace, registration.auth_token)

    return make


@pytest.fixture
def poll_workspace(db, register) -> RegisteredWorkspace:
    return register("poller", "poll")


@pytest.fixture
def api() -> Client:
    return Client()


def run_sql(sql: str, params: Any = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []
