"""The slow clients' child process: trickling uploads, dripping headers and slow readers of
one download, on one asyncio loop.

It runs apart from the poller, so its sends never compete with the poller for one GIL.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
# The penetration test's readers: 512 bytes every 2 s, which no send_timeout ever cuts off.
READ_BYTES = 512
READ_INTERVAL = 2.0


@dataclass(frozen=True)
class ClientsSpec:
    port: int
    cert: str | None
    workspace_id: str
    token: str
    uploads: int
    drips: int
    rate: int
    seconds: float
    stagger: float
    finish_spread: float
    # Uploads and readers (of the file ``file_id``) come from 127.0.0.2, .3, ..., this many
    # from each address: nginx's per-address limits, so the crowd is served, not refused.
    uploads_per_address: int
    readers_per_address: int
    readers: int = 0
    file_id: str = ""


async def _open(
    spec: ClientsSpec, source: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    context = ssl.create_default_context(cafile=spec.cert) if spec.cert else None
    return await asyncio.open_connection(
        HOST,
        spec.port,
        ssl=context,
        server_hostname="localhost" if context else None,
        local_addr=(source, 0) if source else None,
    )


async def _upload(
    spec: ClientsSpec, number: int, connected: asyncio.Queue[None], events: Any
) -> int:
    from devtools.processes.slow_clients import PAYLOAD_BYTE, source_address, upload_request_parts

    share = number / max(spec.uploads, 1)
    await asyncio.sleep(share * spec.stagger)
    size = int(spec.rate * (spec.seconds + share * spec.finish_spread))
    head, part, closing = upload_request_parts(
        host="localhost", workspace_id=spec.workspace_id, token=spec.token, size=size
    )
    reader, writer = await _open(spec, source_address(number, spec.uploads_per_address))
    writer.write(head + part)
    await writer.drain()
    connected.put_nowait(None)
    loop = asyncio.get_running_loop()
    started, sent, chunk = loop.time(), 0, max(spec.rate // 10, 1)
    while sent < size:
        count = min(chunk, size - sent)
        writer.write(PAYLOAD_BYTE * count)
        await writer.drain()
        sent += count
        # Hold the rate: the next chunk leaves when the average would otherwise exceed it.
        await asyncio.sleep(max(started + sent / spec.rate - loop.time(), 0))
    writer.write(closing)
    await writer.drain()
    # From here the server has whole bodies to parse and store: the "finishing" polls.
    events["body_sent"].set()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1]) if status_line else 0


async def _read_slowly(spec: ClientsSpec, number: int, connected: asyncio.Queue[None]) -> int:
    """One download read READ_BYTES every READ_INTERVAL for ``spec.seconds``; its status."""
    from devtools.processes.slow_clients import SLOW_READER_RCVBUF, download_request, source_address

    await asyncio.sleep(number / max(spec.readers, 1) * spec.stagger)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_READER_RCVBUF)
    sock.bind((source_address(number, spec.readers_per_address), 0))
    sock.setblocking(False)
    await loop.sock_connect(sock, (HOST, spec.port))
    context = ssl.create_default_context(cafile=spec.cert) if spec.cert else None
    # A small stream buffer: asyncio reads ahead of the caller only up to twice this.
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=context, server_hostname="localhost" if context else None, limit=1024
    )
    writer.write(
        download_request(
            host="localhost", workspace_id=spec.workspace_id, token=spec.token, file_id=spec.file_id
        )
    )
    await writer.drain()
    status_line = await reader.readline()
    connected.put_nowait(None)
    deadline = loop.time() + spec.seconds
    while loop.time() < deadline and await reader.read(READ_BYTES):
        await asyncio.sleep(READ_INTERVAL)
    writer.close()
    return int(status_line.split()[1]) if status_line else 0


async def _drip(spec: ClientsSpec, connected: asyncio.Queue[None], stop: asyncio.Event) -> None:
    from devtools.processes.slow_clients import dripped_request

    request = dripped_request("localhost")
    _, writer = await _open(spec)
    writer.write(request[:1])
    await writer.drain()
    connected.put_nowait(None)
    sent = 1
    while not stop.is_set() and sent < len(request):
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            writer.write(request[sent : sent + 1])
            sent += 1
            try:
                await writer.drain()
            except ConnectionError:
                return
    writer.close()


async def _clients(spec: ClientsSpec, events: Any) -> dict[str, Any]:
    connected: asyncio.Queue[None] = asyncio.Queue()
    stop = asyncio.Event()
    uploads = [
        asyncio.create_task(_upload(spec, number, connected, events))
        for number in range(spec.uploads)
    ]
    drips = [asyncio.create_task(_drip(spec, connected, stop)) for _ in range(spec.drips)]
    readers = [
        asyncio.create_task(_read_slowly(spec, number, connected)) for number in range(spec.readers)
    ]
    for _ in range(spec.uploads + spec.drips + spec.readers):
        await connected.get()
    events["connected"].set()
    statuses = await asyncio.gather(*uploads, return_exceptions=True)
    stop.set()
    await asyncio.gather(*drips, return_exceptions=True)
    read = await asyncio.gather(*readers, return_exceptions=True)
    return {
        "uploads_ok": sum(1 for status in statuses if status == 200),
        "upload_errors": [repr(s) for s in statuses if s != 200][:3],
        "readers_ok": sum(1 for status in read if status == 200),
        "readers_refused": sum(1 for status in read if status == 429),
        "reader_errors": [repr(s) for s in read if s not in (200, 429)][:3],
    }


def clients_main(spec: ClientsSpec, events: Any, results: Any) -> None:
    results.put(asyncio.run(_clients(spec, events)))
