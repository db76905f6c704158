"""POST /workspaces/<id>/token/rotate: a new token once; the old one until the new one is used."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.test import Client, override_settings

from molecule.models import Workspace
from tests.helpers import RegisteredWorkspace, assert_json_error, run_sql

pytestmark = pytest.mark.django_db


def rotate(api: Client, ws: RegisteredWorkspace, token: str) -> object:
    return api.post(ws.url("token/rotate"), HTTP_AUTHORIZATION=f"Bearer {token}")


def works(api: Client, ws: RegisteredWorkspace, token: str) -> bool:
    status = api.get(ws.url("activity"), HTTP_AUTHORIZATION=f"Bearer {token}").status_code
    assert status in (200, 401)
    return status == 200


def reregister(api: Client, ws: RegisteredWorkspace, token: str) -> int:
    body = json.dumps({"id": str(ws.id), "delivery_mode": "poll"})
    return api.post(
        "/registry/register",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    ).status_code


def test_rotation_answers_a_new_token_once_and_uncached(api: Client, poll_workspace) -> None:
    response = rotate(api, poll_workspace, poll_workspace.token)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    answer = response.json()
    assert set(answer) == {"auth_token", "previous_token_expires_at"}
    assert answer["auth_token"] != poll_workspace.token
    assert works(api, poll_workspace, answer["auth_token"])


def test_the_old_token_works_until_the_new_one_is_first_used(api: Client, poll_workspace) -> None:
    new = rotate(api, poll_workspace, poll_workspace.token).json()["auth_token"]

    assert works(api, poll_workspace, poll_workspace.token)
    assert works(api, poll_workspace, poll_workspace.token)
    assert works(api, poll_workspace, new)

    assert not works(api, poll_workspace, poll_workspace.token)
    assert works(api, poll_workspace, new)


def test_the_old_token_ends_with_the_overlap_even_if_the_new_one_is_never_used(
    api: Client, poll_workspace
) -> None:
    new = rotate(api, poll_workspace, poll_workspace.token).json()["auth_token"]
    Workspace.objects.update(previous_token_expires_at="2000-01-01T00:00Z")

    assert not works(api, poll_workspace, poll_workspace.token)
    assert works(api, poll_workspace, new)


@override_settings(TOKEN_ROTATION_OVERLAP=timedelta(minutes=5))
def test_a_lost_answer_is_retried_with_the_old_token_without_extending_the_overlap(
    api: Client, poll_workspace
) -> None:
    lost = rotate(api, poll_workspace, poll_workspace.token).json()
    expires = Workspace.objects.get().previous_token_expires_at
    assert run_sql(
        "SELECT previous_token_expires_at - now() = interval '5 minutes' FROM workspaces"
    ) == [(True,)]

    retried = rotate(api, poll_workspace, poll_workspace.token).json()

    assert retried["previous_token_expires_at"] == lost["previous_token_expires_at"]
    assert Workspace.objects.get().previous_token_expires_at == expires
    assert not works(api, poll_workspace, lost["auth_token"])
    assert works(api, poll_workspace, retried["auth_token"])
    assert not works(api, poll_workspace, poll_workspace.token)


def test_rotating_with_the_new_token_starts_a_fresh_overlap(api: Client, poll_workspace) -> None:
    first = rotate(api, poll_workspace, poll_workspace.token).json()["auth_token"]
    second = rotate(api, poll_workspace, first).json()["auth_token"]

    assert not works(api, poll_workspace, poll_workspace.token)
    assert works(api, poll_workspace, first)
    assert works(api, poll_workspace, second)
    assert not works(api, poll_workspace, first)


def test_re_registration_takes_the_old_token_within_the_overlap(
    api: Client, poll_workspace
) -> None:
    new = rotate(api, poll_workspace, poll_workspace.token).json()["auth_token"]

    assert reregister(api, poll_workspace, poll_workspace.token) == 200
    assert reregister(api, poll_workspace, new) == 200
    assert reregister(api, poll_workspace, poll_workspace.token) == 401


REFUSALS = {
    "no token": (None, 401),
    "a wrong token": ("not-the-token", 401),
    "the operator's token": ("operator-secret", 403),
}


@override_settings(ADMIN_TOKEN="operator-secret")
@pytest.mark.parametrize(("token", "status"), REFUSALS.values(), ids=REFUSALS)
def test_only_the_workspace_itself_rotates(
    api: Client, poll_workspace, token: str | None, status: int
) -> None:
    headers = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    assert_json_error(api.post(poll_workspace.url("token/rotate"), **headers), status)
    assert works(api, poll_workspace, poll_workspace.token)


def test_a_removed_workspace_cannot_rotate(api: Client, poll_workspace) -> None:
    Workspace.objects.update(status="removed")

    assert_json_error(rotate(api, poll_workspace, poll_workspace.token), 401)


def test_a_rotation_that_lost_a_race_changes_nothing(api: Client, poll_workspace) -> None:
    from molecule.services import workspaces

    workspace = Workspace.objects.authenticate(poll_workspace.id, poll_workspace.token)
    assert workspace is not None
    workspaces.workspace_token_rotate(workspace=workspace)

    with pytest.raises(workspaces.TokenRotationRaced):
        workspaces.workspace_token_rotate(workspace=workspace)


def test_rotation_is_a_post(api: Client, poll_workspace) -> None:
    response = api.get(poll_workspace.url("token/rotate"), **poll_workspace.auth)

    assert_json_error(response, 405)


def test_no_token_is_logged(api: Client, poll_workspace, caplog) -> None:
    caplog.set_level(logging.DEBUG)

    new = rotate(api, poll_workspace, poll_workspace.token).json()["auth_token"]
    rotate(api, poll_workspace, new)

    assert "workspace token rotated" in caplog.text
    assert poll_workspace.token not in caplog.text
    assert new not in caplog.text
