"""Shared fixtures: quick password hashes, registered workspaces with tokens, a CSRF client,
an S3 server with a bucket per test, and the storage mode the API tests run in."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client, override_settings

from devtools.processes import S3Server
from molecule.models import Workspace
from molecule.services.workspaces import workspace_register
from tests.helpers import RegisteredWorkspace, bucket_create, bucket_remove, s3_unreachable


@pytest.fixture(autouse=True, scope="session")
def quick_password_hashing() -> Iterator[None]:
    # Every admin_client and login user costs one hash, half a second at Django's 1,000,000
    # PBKDF2 rounds. The default hashers stay listed, so any stored hash still verifies.
    hashers = ["tests.helpers.QuickPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    with override_settings(PASSWORD_HASHERS=hashers):
        yield


# Where the register fixture's push workspaces point unless a test names a URL: the discard
# port on loopback, where nothing listens. Loopback passes the address guard only with
# MOLECULE_ENV=development, so outside it an upload to them is refused before any connect.
PUSH_URL = "http://127.0.0.1:9"


@pytest.fixture
def register() -> Callable[..., RegisteredWorkspace]:
    def make(
        name: str = "agent", delivery_mode: str = "poll", url: str | None = None, **fields: Any
    ) -> RegisteredWorkspace:
        if delivery_mode == "push" and url is None:
            url = PUSH_URL
        with override_settings(MOLECULE_ENV="development"):
            registration = workspace_register(
                workspace_id=uuid.uuid4(),
                name=name,
                delivery_mode=delivery_mode,
                url=url,
                bearer_token=None,
            )
        workspace = registration.workspace
        if fields:
            Workspace.objects.filter(pk=workspace.pk).update(**fields)
            workspace.refresh_from_db()
        assert registration.auth_token is not None
        return RegisteredWorkspace(
            workspace, registration.auth_token, registration.platform_inbound_secret
        )

    return make


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[list[str]]]]:
    """Names the test controls, mapped to their answers; no lookup reaches the network.

    Each lookup of a name takes its next answer (the last one repeats); literal addresses
    resolve as themselves, and every other name, localhost included, does not resolve.
    """
    answers: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def lookup(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host not in answers:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            return real(host, port, *args, **kwargs)
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [real(address, port, type=socket.SOCK_STREAM)[0] for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    yield answers


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto_server for the whole run (or AWS_ENDPOINT_URL_S3's server), in this process's
    environment, so boto3 here and every child process (gunicorn, manage.py) reach it."""
    with S3Server() as server, mock.patch.dict(os.environ, server.env):
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A new, empty bucket, set as PENDING_UPLOADS_S3_BUCKET for the test."""
    name = bucket_create()
    with override_settings(PENDING_UPLOADS_S3_BUCKET=name):
        yield name
    bucket_remove(name)


@pytest.fixture(params=["postgres", "s3"])
def storage_mode(request: pytest.FixtureRequest) -> str:
    """Run the test once with the bytes in PostgreSQL and once with them in a bucket."""
    if request.param == "s3":
        request.getfixturevalue("s3_bucket")
    return request.param


@pytest.fixture
def unreachable_s3() -> Iterator[None]:
    """boto3 pointed at a port nothing listens on for the whole test (see s3_unreachable)."""
    with s3_unreachable():
        yield
