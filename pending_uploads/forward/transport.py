"""The wire side of a forward: a guarded connection, the body in chunks, one deadline."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator

from molecule.addresses import AddressPolicy, Target, connection_open
from molecule.errors import first_line
from pending_uploads import conf
from pending_uploads.forward.types import IncomingBody, RequestBodyIncomplete, RequestBodyTooLarge

# Bytes read and sent at a time, in both directions: a forward holds about two of them.
CHUNK_BYTES = 64 * 1024


class WorkspaceConnection(http.client.HTTPConnection):
    """HTTP, or HTTPS with normal certificate checks, dialled only to checked addresses."""

    def __init__(self, target: Target, *, connect_timeout: float, policy: AddressPolicy) -> None:
        super().__init__(target.host, target.port, timeout=connect_timeout)
        # The Host header leaves out the port when it is the scheme's own.
        self.default_port = 443 if target.tls else 80
        self._tls = ssl.create_default_context() if target.tls else None
        self._policy = policy

    def connect(self) -> None:
        # Resolved and checked here, at dial time, not only when the URL was: see
        # connection_open. The timeout covers the TLS handshake as well.
        sock = connection_open(self.host, self.port, timeout=self.timeout, policy=self._policy)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class RequestChunks:
    """The client's body in CHUNK_BYTES reads, each sent before the next is read."""

    def __init__(self, body: IncomingBody, connection: WorkspaceConnection, deadline: float):
        self.body = body
        self.connection = connection
        self.deadline = deadline
        self.cap = conf.max_request_bytes()
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        length = self.body.length
        while length is None or self.sent < length:
            want = CHUNK_BYTES if length is None else min(CHUNK_BYTES, length - self.sent)
            try:
                chunk = self.body.stream.read(want)
            except OSError as exc:
                # The client reset the connection (Django raises UnreadablePostError).
                raise RequestBodyIncomplete(first_line(exc)) from exc
            if not chunk:
                if length is None:
                    return
                raise RequestBodyIncomplete(f"body ended after {self.sent} of {length} bytes")
            if len(chunk) > want:
                # More than declared (servers stop at Content-Length; this one did not).
                raise RequestBodyTooLarge(f"more than the {length} bytes declared")
            if self.sent + len(chunk) > self.cap:
                # A chunked body past the cap: stop, and send no more of it.
                raise RequestBodyTooLarge(f"more than {self.cap} bytes")
            timeout_set(self.connection, self.deadline)
            self.sent += len(chunk)
            yield chunk


def timeout_set(connection: WorkspaceConnection, deadline: float) -> None:
    """Bound the next socket operation by what is left of the whole forward's time."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("PENDING_UPLOADS_FORWARD_TIMEOUT reached")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)
