"""Workspace registration, heartbeats and token rotation (the registry API's writes)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import IntegrityError, transaction

from molecule import conf
from molecule.addresses import url_check
from molecule.models import Workspace
from molecule.sealing import seal
from molecule.services.inbound_secrets import (
    inbound_secret_ensure,
    inbound_secret_log_minted,
    inbound_secret_open,
)
from molecule.tokens import token_generate, token_hash

logger = logging.getLogger(__name__)


class WorkspaceAuthError(Exception):
    """Re-registration without the workspace's own bearer token, or of a removed workspace."""


class WorkspaceRemovedError(WorkspaceAuthError):
    """Re-registration, with the right token, of a workspace that was removed: it stays removed."""


class PushUrlMissing(Exception):
    def __init__(self) -> None:
        super().__init__("url is required for push-mode workspaces")


@dataclass(frozen=True)
class Registration:
    workspace: Workspace
    # The plain token, present only on first registration; never in a repr (or a log line).
    auth_token: str | None = field(repr=False)
    # What the platform presents to the workspace on a forward; in every answer, as upstream.
    platform_inbound_secret: str = field(repr=False)


def workspace_register(
    *,
    workspace_id: uuid.UUID,
    name: str,
    delivery_mode: str,
    url: str | None,
    bearer_token: str | None,
) -> Registration:
    """Create the workspace and mint its token, or update it when the caller proves ownership.

    A push-mode workspace needs a URL the address guard allows (PushUrlMissing,
    AddressRefused). Every registration returns the platform_inbound_secret, minted on the
    first one and again whenever the stored one is missing or no key opens it.
    """
    existing = Workspace.objects.with_token_state().filter(pk=workspace_id).first()
    if existing is not None:
        # Ownership first, as upstream checks it: a stranger learns nothing about the URL rules.
        _owner_check(existing, bearer_token)
    if delivery_mode == Workspace.DeliveryMode.PUSH:
        if not url:
            raise PushUrlMissing
        # Outside the row lock, which heartbeats wait on: a lookup can take seconds.
        url_check(url)
    fields = {"name": name, "delivery_mode": delivery_mode, "url": url}
    with transaction.atomic():
        workspace = (
            Workspace.objects.with_token_state().select_for_update().filter(pk=workspace_id).first()
        )
        if workspace is None:
            token = token_generate()
            secret = token_generate()
            try:
                with transaction.atomic():
                    workspace = Workspace.objects.create(
                        id=workspace_id,
                        token_hash=token_hash(token),
                        platform_inbound_secret_sealed=seal(secret),
                        **fields,
                    )
            except IntegrityError:
                # A concurrent first registration won; this caller holds no token for it.
                raise WorkspaceAuthError from None
            logger.info(
                "workspace registered id=%s name=%s mode=%s", workspace_id, name, delivery_mode
            )
            return Registration(workspace, token, secret)
        _owner_check(workspace, bearer_token)
        secret = inbound_secret_open(workspace)
        if secret is None:
            secret = token_generate()
            inbound_secret_log_minted(workspace_id, workspace.platform_inbound_secret_sealed)
        Workspace.objects.filter(pk=workspace_id).update(
            **fields,
            status=Workspace.Status.ONLINE,
            updated_at=Now(),
            # Sealed afresh with the current key: a secret sealed with a key that has since
            # moved to SECRET_KEY_FALLBACKS no longer depends on it.
            platform_inbound_secret_sealed=seal(secret),
        )
        workspace.refresh_from_db()
    logger.info("workspace re-registered id=%s name=%s mode=%s", workspace_id, name, delivery_mode)
    return Registration(workspace, None, secret)


def _owner_check(workspace: Workspace, bearer_token: str | None) -> None:
    """Raise unless ``bearer_token`` is one of the workspace's tokens (the previous one within a
    rotation's overlap) and the workspace is not removed; the current one ends the overlap.
    ``workspace`` comes from Workspace.objects.with_token_state()."""
    owner = None if bearer_token is None else Workspace.objects.token_owner(workspace, bearer_token)
    if owner is None:
        raise WorkspaceAuthError
    if workspace.status == Workspace.Status.REMOVED:
        # Removed is terminal, as upstream's guard makes it: a late register never revives.
        raise WorkspaceRemovedError
    if owner == "current" and workspace.previous_token_hash is not None:
        Workspace.objects.forget_previous_token(workspace)


class TokenRotationRefused(Exception):
    """Only the workspace's own token rotates it; the operator removes a workspace instead."""


class TokenRotationRaced(Exception):
    """A concurrent rotation or removal changed the workspace first; nothing was rotated."""


class TokenRotation(NamedTuple):
    # The new plain token: returned once, never stored or logged.
    auth_token: str
    # Until when the token it replaced still works, unless the new one is used first.
    previous_expires_at: datetime


def workspace_token_rotate(*, workspace: Workspace) -> TokenRotation:
    """Give the workspace a new token; the old one keeps working until the new one is first
    used or TOKEN_ROTATION_OVERLAP ends, so a lost answer cannot lock the workspace out."""
    if workspace.by_admin_token:
        raise TokenRotationRefused
    token = token_generate()
    expires = Workspace.objects.rotate_token(
        workspace, token_hash(token), overlap=conf.token_rotation_overlap()
    )
    if expires is None:
        raise TokenRotationRaced
    logger.info(
        "workspace token rotated id=%s (with the %s token); the old one works until %s",
        workspace.id,
        "previous" if workspace.by_previous_token else "current",
        expires.isoformat(),
    )
    return TokenRotation(token, expires)


def workspace_heartbeat(
    *, workspace: Workspace, active_tasks: int, current_task: str
) -> str | None:
    """Record the beat; return the platform_inbound_secret, minting one if none is usable.

    Upstream hands the secret down on every beat, so a workspace whose secret was just
    minted here or by a rotation learns it without restarting. None if the workspace was
    removed meanwhile.
    """
    # exclude(): a workspace removed since it authenticated stays removed.
    Workspace.objects.filter(pk=workspace.pk).exclude(status=Workspace.Status.REMOVED).update(
        active_tasks=active_tasks,
        current_task=current_task,
        status=Workspace.Status.ONLINE,
        updated_at=Now(),
    )
    return inbound_secret_ensure(workspace)
