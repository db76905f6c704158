"""A stand-in for a push-mode workspace's ingest route: a threaded stdlib server on 127.0.0.1.

It checks the bearer secret as upstream's receiver does, reads the body (slowly, if asked),
and records what arrived: its size and SHA-256, its first bytes, and whether it was complete.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

READ_BYTES = 64 * 1024
# Bodies up to this size are kept whole, for tests to compare byte for byte.
KEEP_BYTES = 1024 * 1024


@dataclass
class Received:
    """One request as the stand-in saw it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    size: int = 0
    sha256: str = ""
    body: bytes = b""
    # False when the connection ended (or broke) before the body did.
    complete: bool = False
    authorized: bool = False
    # False when the connection broke while the answer was being written.
    answered: bool = False

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None


# (status, headers, body) to answer with, given what was received.
Reply = Callable[[Received], tuple[int, list[tuple[str, str]], bytes]]


def reply_receipt(received: Received) -> tuple[int, list[tuple[str, str]], bytes]:
    """The default answer: 200 JSON naming the size and digest of what arrived."""
    body = json.dumps({"received": received.size, "sha256": received.sha256}).encode()
    return 200, [("Content-Type", "application/json")], body


@dataclass
class StandInWorkspace:
    """Start with start() (or as a context manager); ``url`` is what to register."""

    secret: str
    reply: Reply = reply_receipt
    # Seconds to sleep before each READ_BYTES read: a slow workspace holds the forward.
    read_delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    # Requests whose body is being read right now.
    reading: int = 0
    # (certificate, key) PEM files: serve HTTPS with them.
    tls: tuple[Path, Path] | None = None

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._changed = threading.Condition()
        self.fast = threading.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the stand-in first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> StandInWorkspace:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                stand_in._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        # A short poll interval: stop() returns within it.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.fast.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandInWorkspace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def release(self) -> None:
        """Stop reading slowly: every body in flight is read at full speed from now on."""
        self.fast.set()

    def wait_for(self, predicate: Callable[[StandInWorkspace], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (checked whenever a request changes state)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    # --- the handler -------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        received = Received(handler.command, handler.path, list(handler.headers.items()))
        expected = f"Bearer {self.secret}"
        received.authorized = hmac.compare_digest(
            handler.headers.get("Authorization", "").encode(), expected.encode()
        )
        if not received.authorized:
            # As upstream's receiver: refused before the body is read, and the connection
            # closed with it unread.
            unauthorized = b'{"error":"unauthorized"}'
            self._answer(
                handler, received, 401, [("Content-Type", "application/json")], unauthorized
            )
            return
        with self._changed:
            self.reading += 1
            self._changed.notify_all()
        try:
            self._read_body(handler, received)
        finally:
            with self._changed:
                self.reading -= 1
                self._changed.notify_all()
        if received.complete:
            self._answer(handler, received, *self.reply(received))
        else:
            self._record(received)

    def _read_body(self, handler: BaseHTTPRequestHandler, received: Received) -> None:
        digest = hashlib.sha256()
        kept = bytearray()
        try:
            for chunk in _body_chunks(handler):
                if self.read_delay and not self.fast.is_set():
                    self.fast.wait(self.read_delay)
                digest.update(chunk)
                received.size += len(chunk)
                if len(kept) <= KEEP_BYTES:
                    kept += chunk
            received.complete = True
        except (OSError, ValueError):
            received.complete = False
        received.sha256 = digest.hexdigest()
        received.body = bytes(kept) if received.size <= KEEP_BYTES else b""

    def _record(self, received: Received) -> None:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        received: Received,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        """Write the answer, then record the request (answered or not)."""
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(body)
            handler.wfile.flush()
            received.answered = True
        except OSError:
            received.answered = False
        handler.close_connection = True
        self._record(received)


def _body_chunks(handler: BaseHTTPRequestHandler) -> Iterator[bytes]:
    """The request body in pieces; ValueError when it ends before its length says."""
    stream = handler.rfile
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        while True:
            size = int(stream.readline().split(b";")[0].strip() or b"x", 16)
            if size == 0:
                stream.readline()
                return
            while size:
                chunk = stream.read(min(size, READ_BYTES))
                if not chunk:
                    raise ValueError("chunked body ended early")
                size -= len(chunk)
                yield chunk
            stream.readline()
    left = int(handler.headers.get("Content-Length") or 0)
    while left:
        chunk = stream.read1(min(left, READ_BYTES))
        if not chunk:
            raise ValueError(f"body ended with {left} bytes missing")
        left -= len(chunk)
        yield chunk
