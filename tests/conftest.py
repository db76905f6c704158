"""Shared fixtures: registered workspaces with their tokens, and a CSRF-enforcing client."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from molecule.models import Workspace
from molecule.services import workspace_register
from tests.helpers import RegisteredWorkspace


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
def other_workspace(register) -> RegisteredWorkspace:
    return register("other", "poll")


@pytest.fixture
def api() -> Client:
    # Real clients carry no CSRF token: enforcing the checks proves the API is exempt.
    return Client(enforce_csrf_checks=True)
