"""Clients that hold a connection: an upload sent in pieces, headers dripped a byte at a time,
a download read a few bytes at a time.

Blocking sockets for tests; the bench drives the same requests from an asyncio loop.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any

BOUNDARY = "molecule-slow-client-boundary"
PAYLOAD_BYTE = b"s"


def upload_request_parts(
    *, host: str, workspace_id: str, token: str, size: int, filename: str = "slow.bin"
) -> tuple[bytes, bytes, bytes]:
    """(request head, part header, closing delimiter) of a one-file upload of ``size`` bytes.

    The body is the part header, ``size`` payload bytes, then the closing delimiter; the head's
    Content-Length counts all three. ``Connection: close`` so the answer ends at EOF.
    """
    part = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="files"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    closing = f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (
        f"POST /workspaces/{workspace_id}/chat/uploads HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(part) + size + len(closing)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head, part, closing


def dripped_request(host: str) -> bytes:
    """A request whose headers never end: a dripping client sends it a byte at a time."""
    return f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nX-Drip: {'d' * 4096}".encode()


# A slow reader's receive buffer: small, so the server cannot park a whole file in it.
SLOW_READER_RCVBUF = 4096


def source_address(number: int, per_address: int) -> str:
    """Client ``number``'s loopback address when each address holds ``per_address`` clients.

    127.0.0.2 onwards: 127.0.0.1 stays for the caller's own requests. Loopback answers for the
    whole 127.0.0.0/8, so a crowd can stay within nginx's per-address limits.
    """
    return f"127.0.0.{2 + number // per_address}"


def download_request(*, host: str, workspace_id: str, token: str, file_id: str) -> bytes:
    """GET of one pending upload's content; ``Connection: close`` so the answer ends at EOF."""
    return (
        f"GET /workspaces/{workspace_id}/pending-uploads/{file_id}/content HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ).encode()


def connect(
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    source: str = "",
    timeout: float = 30.0,
    rcvbuf: int | None = None,
) -> socket.socket:
    """A connection to 127.0.0.1:``port``, from ``source`` (a loopback address) when given.

    ``rcvbuf`` sets the receive buffer before connecting, as the window is agreed then.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise
    return sock


def response_read(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response from ``sock``: (status, headers, body)."""
    response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
    response.begin()
    return response.status, dict(response.headers), response.read()


class SlowUpload:
    """One upload whose body the caller sends in pieces (``send``), then completes (``finish``)."""

    def __init__(
        self,
        port: int,
        *,
        host: str,
        workspace_id: str,
        token: str,
        size: int,
        tls: ssl.SSLContext | None = None,
        source: str = "",
    ) -> None:
        self.head, self.part, self.closing = upload_request_parts(
            host=host, workspace_id=workspace_id, token=token, size=size
        )
        self.size = size
        self.sent = 0
        self.sock = connect(port, tls=tls, source=source)
        self.sock.sendall(self.head + self.part)

    def send(self, count: int) -> None:
        count = min(count, self.size - self.sent)
        self.sock.sendall(PAYLOAD_BYTE * count)
        self.sent += count

    def finish(self) -> tuple[int, Any]:
        """Send the rest of the body; return (status, parsed JSON answer)."""
        self.send(self.size - self.sent)
        self.sock.sendall(self.closing)
        status, _, body = response_read(self.sock)
        self.sock.close()
        return status, json.loads(body)


def upload_file(port: int, *, host: str, workspace_id: str, token: str, size: int) -> str:
    """Store one file of ``size`` bytes in one go; its file id. RuntimeError if refused."""
    upload = SlowUpload(port, host=host, workspace_id=workspace_id, token=token, size=size)
    status, answer = upload.finish()
    if status != 200:
        raise RuntimeError(f"the upload was refused: {status} {answer}")
    return answer["files"][0]["uri"].rsplit("/", 1)[-1]


class HeaderDrip:
    """A connection that sends the start of a request and then a byte at a time (``drip``)."""

    def __init__(self, port: int, *, host: str, tls: ssl.SSLContext | None = None) -> None:
        self.request = dripped_request(host)
        self.sent = 0
        self.sock = connect(port, tls=tls)

    def drip(self, count: int = 1) -> None:
        self.sock.sendall(self.request[self.sent : self.sent + count])
        self.sent += count

    def close(self) -> None:
        self.sock.close()


class SlowDownload:
    """One download whose answer the caller reads a few bytes at a time (``read``), or never."""

    def __init__(
        self,
        port: int,
        *,
        host: str,
        workspace_id: str,
        token: str,
        file_id: str,
        tls: ssl.SSLContext | None = None,
        source: str = "",
    ) -> None:
        self.sock = connect(port, tls=tls, source=source, rcvbuf=SLOW_READER_RCVBUF)
        self.sock.sendall(
            download_request(host=host, workspace_id=workspace_id, token=token, file_id=file_id)
        )
        self.received = b""

    def status(self) -> int:
        """The answer's status code, once its status line has arrived."""
        while b"\r\n" not in self.received:
            self.read()
        return int(self.received.split(b" ", 2)[1])

    def read(self, count: int = 512) -> bytes:
        chunk = self.sock.recv(count)
        if not chunk:
            raise ConnectionError("the server closed the download")
        self.received += chunk
        return chunk

    def close(self) -> None:
        self.sock.close()
