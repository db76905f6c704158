"""Shared fixtures: quick password hashes, registered workspaces with tokens, a CSRF client."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from molecule.models import Workspace
from molecule.services import workspace_register
from tests.helpers import RegisteredWorkspace


@pytest.fixture(autouse=True, scope="session")
def quick_password_hashing() -> Iterator[None]:
    # Every admin_client and login user costs one hash, half a second at Django's 1,000,000
    # PBKDF2 rounds. The default hashers stay listed, so any stored hash still verifies.
    hashers = ["tests.helpers.QuickPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    with override_settings(PASSWORD_HASHERS=hashers):
        yield


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
