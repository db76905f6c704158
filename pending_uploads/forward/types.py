"""What a forward takes, and the ways it can be refused; the view maps each to a status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ForwardRefused(Exception):
    """A forward that did not happen or did not finish; the view picks the status."""


class WorkspaceUrlMissing(ForwardRefused):
    pass


class InboundSecretMissing(ForwardRefused):
    pass


class WorkspaceUrlNotAllowed(ForwardRefused):
    pass


class ForwardBusy(ForwardRefused):
    pass


class WorkspaceUnreachable(ForwardRefused):
    pass


class RequestBodyTooLarge(ForwardRefused):
    pass


class RequestBodyIncomplete(ForwardRefused):
    """The client's body ended before its Content-Length, or reading it failed: it went away."""


@dataclass(frozen=True)
class IncomingBody:
    """The upload's body, unread: a stream with read(n), its Content-Type and its length."""

    stream: Any
    content_type: str
    # None for a chunked body (no Content-Length); it is then sent on chunked as well.
    length: int | None
