"""Push mode: an upload streamed as it came to the workspace's ingest route, its answer back."""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from molecule.addresses import AddressPolicy, AddressRefused, AddressUnresolved, Target, url_check
from molecule.errors import first_line
from molecule.models import Workspace
from molecule.services.inbound_secrets import inbound_secret_open
from pending_uploads import conf, metrics
from pending_uploads.forward.slots import SLOTS, ForwardSlots
from pending_uploads.forward.transport import (
    CHUNK_BYTES,
    RequestChunks,
    WorkspaceConnection,
    timeout_set,
)
from pending_uploads.forward.types import (
    ForwardBusy,
    ForwardRefused,
    InboundSecretMissing,
    IncomingBody,
    RequestBodyIncomplete,
    RequestBodyTooLarge,
    WorkspaceUnreachable,
    WorkspaceUrlMissing,
    WorkspaceUrlNotAllowed,
)

__all__ = [
    "CHUNK_BYTES",
    "INGEST_PATH",
    "SLOTS",
    "ForwardBusy",
    "ForwardRefused",
    "ForwardSlots",
    "InboundSecretMissing",
    "IncomingBody",
    "Relay",
    "RequestBodyIncomplete",
    "RequestBodyTooLarge",
    "WorkspaceConnection",
    "WorkspaceUnreachable",
    "WorkspaceUrlMissing",
    "WorkspaceUrlNotAllowed",
    "upload_forward",
]

logger = logging.getLogger(__name__)

# Upstream's receiver route, after the workspace URL without its trailing slashes.
INGEST_PATH = "/internal/chat/uploads/ingest"


@dataclass
class Relay:
    """The workspace's answer, streamed back in chunks; close() ends the forward.

    The WSGI server closes it when the answer is sent or the client went away; closing
    frees the connection and the slot, and counts the outcome.
    """

    status: int
    content_type: str | None
    workspace_id: Any
    started: float
    deadline: float
    connection: WorkspaceConnection = field(repr=False)
    response: http.client.HTTPResponse = field(repr=False)
    sent: int = 0
    relayed: int = 0
    finished: bool = False
    failure: str | None = None
    closed: bool = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.finished:
            raise StopIteration
        try:
            timeout_set(self.connection, self.deadline)
            chunk = self.response.read(CHUNK_BYTES)
            if not chunk and self.response.length:
                # http.client ends a Content-Length body cut short without a word.
                missing = self.response.length
                raise http.client.IncompleteRead(b"", missing)
        except (OSError, http.client.HTTPException) as exc:
            self.failure = first_line(exc) or type(exc).__name__
            # Raised, not a quiet end: the client must see a broken answer, not a short one.
            raise WorkspaceUnreachable(f"the workspace's answer broke off: {self.failure}") from exc
        if not chunk:
            self.finished = True
            raise StopIteration
        self.relayed += len(chunk)
        return chunk

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.response.close()
        self.connection.close()
        SLOTS.release()
        if self.failure is not None:
            outcome = "unreachable"
        elif not self.finished:
            outcome = "cancelled"
        else:
            outcome = "ok" if 200 <= self.status < 300 else "workspace_error"
        _count(outcome, self.started)
        logger.log(
            logging.INFO if self.failure is None and self.finished else logging.WARNING,
            "chat upload forwarded workspace=%s outcome=%s status=%d sent=%d relayed=%d %.2f s%s",
            self.workspace_id,
            outcome,
            self.status,
            self.sent,
            self.relayed,
            time.monotonic() - self.started,
            f": {self.failure}" if self.failure else "",
        )


def upload_forward(*, workspace: Workspace, body: IncomingBody) -> Relay:
    """Send the upload to the workspace's ingest route; return its answer, still unread.

    Raise a ForwardRefused when nothing can be relayed. The caller must close() the Relay.
    """
    started = time.monotonic()
    if not workspace.url:
        raise WorkspaceUrlMissing
    secret = inbound_secret_open(workspace)
    if secret is None:
        raise InboundSecretMissing
    policy = AddressPolicy.current()
    try:
        target = url_check(workspace.url, policy)
    except AddressRefused as exc:
        logger.warning("chat upload to workspace %s refused: %s", workspace.pk, exc)
        _count("refused")
        raise WorkspaceUrlNotAllowed from None
    if not SLOTS.acquire():
        logger.warning(
            "chat upload to workspace %s refused: %d forwards in flight in this worker",
            workspace.pk,
            SLOTS.in_flight,
        )
        _count("busy")
        raise ForwardBusy
    deadline = started + conf.forward_timeout().total_seconds()
    connection = WorkspaceConnection(
        target, connect_timeout=conf.forward_connect_timeout().total_seconds(), policy=policy
    )
    try:
        response, sent = _exchange(connection, target, secret, body, deadline)
    except BaseException as exc:
        connection.close()
        SLOTS.release()
        outcome = _failure_outcome(exc)
        _count(outcome, started)
        logger.warning(
            "chat upload forward to workspace %s failed (%s): %s",
            workspace.pk,
            outcome,
            first_line(exc) or type(exc).__name__,
        )
        if isinstance(exc, OSError | http.client.HTTPException | AddressRefused):
            raise WorkspaceUnreachable from exc
        raise
    return Relay(
        status=response.status,
        content_type=response.getheader("Content-Type"),
        workspace_id=workspace.pk,
        started=started,
        deadline=deadline,
        connection=connection,
        response=response,
        sent=sent,
    )


def _failure_outcome(exc: BaseException) -> str:
    if isinstance(exc, RequestBodyIncomplete | RequestBodyTooLarge):
        return "cancelled"
    if isinstance(exc, AddressRefused) and not isinstance(exc, AddressUnresolved):
        # It resolved to a refused address at dial time (DNS rebinding); nothing was sent.
        return "refused"
    # No connection, a reset, the timeout, a certificate that does not verify, or a name
    # that stopped resolving between the check and the dial.
    return "unreachable"


def _exchange(
    connection: WorkspaceConnection,
    target: Target,
    secret: str,
    body: IncomingBody,
    deadline: float,
) -> tuple[http.client.HTTPResponse, int]:
    """Connect, send the headers and the body as it arrives, and read the answer's head."""
    connection.connect()
    headers = {"Authorization": f"Bearer {secret}"}
    if body.content_type:
        headers["Content-Type"] = body.content_type
    if body.length is not None:
        headers["Content-Length"] = str(body.length)
    chunks = RequestChunks(body, connection, deadline)
    path = target.path.partition("?")[0].rstrip("/") + INGEST_PATH
    try:
        connection.request("POST", path, body=chunks, headers=headers)
    except OSError as exc:
        if connection.sock is None:
            raise
        # The workspace may have answered before it read everything (a 401 or a 413) and
        # closed: its answer is worth more than the broken pipe.
        try:
            return _answer_head(connection, deadline), chunks.sent
        except (OSError, http.client.HTTPException):
            raise exc from None
    return _answer_head(connection, deadline), chunks.sent


def _answer_head(connection: WorkspaceConnection, deadline: float) -> http.client.HTTPResponse:
    timeout_set(connection, deadline)
    response = connection.getresponse()
    if response.status < 200:
        # http.client passes on any 1xx but 100 as if it were the answer; relayed, it would
        # break the client's connection (101) or end its request without an answer.
        raise http.client.HTTPException(f"a {response.status} where the answer should be")
    return response


def _count(outcome: str, started: float | None = None) -> None:
    metrics.chat_upload_forwards.labels(outcome).inc()
    if started is not None:
        metrics.chat_upload_forward_duration.observe(time.monotonic() - started)
