"""The platform_inbound_secret: opened from its sealed form, or minted when none is usable."""

from __future__ import annotations

import logging
import uuid

from molecule.models import Workspace
from molecule.sealing import seal, unseal
from molecule.tokens import token_generate

logger = logging.getLogger(__name__)


def inbound_secret_open(workspace: Workspace) -> str | None:
    """The workspace's platform_inbound_secret, or None when there is none or no key opens it."""
    sealed = workspace.platform_inbound_secret_sealed
    if sealed is None:
        return None
    secret = unseal(sealed)
    if secret is None:
        logger.warning(
            "platform_inbound_secret of workspace %s opens with no key of SECRET_KEY or "
            "SECRET_KEY_FALLBACKS; it counts as missing until a new one is minted",
            workspace.pk,
        )
    return secret


def inbound_secret_ensure(workspace: Workspace) -> str | None:
    """The usable secret, or a new one stored in its place; None if the workspace is removed."""
    secret = inbound_secret_open(workspace)
    if secret is not None:
        return secret
    minted = token_generate()
    expected = workspace.platform_inbound_secret_sealed
    sealed = seal(minted)
    if Workspace.objects.inbound_secret_replace(workspace.pk, expected=expected, sealed=sealed):
        workspace.platform_inbound_secret_sealed = sealed
        inbound_secret_log_minted(workspace.pk, expected)
        return minted
    # Another request stored one first (or the workspace was removed): present that one.
    workspace.refresh_from_db(fields=["platform_inbound_secret_sealed", "status"])
    if workspace.status == Workspace.Status.REMOVED:
        return None
    return inbound_secret_open(workspace)


def inbound_secret_log_minted(workspace_id: uuid.UUID, previous: str | None) -> None:
    # The id and why, never the value (upstream logs its lazy heal the same way).
    logger.info(
        "platform_inbound_secret minted for workspace %s (%s)",
        workspace_id,
        "none was stored" if previous is None else "the stored one could not be opened",
    )
