"""A TCP relay that adds a fixed delay each way, in a process of its own: how many round trips a
request waits for is the time it gains when every round trip costs a known amount more.

Each direction of each connection is a queue of ``(due, bytes)``: bytes are read as they come
and written ``one_way_seconds`` later, in order, so requests sent together (a delivery's two
claims) still overlap, and a request sent without waiting for its answer (the answer's
``UpdateItem``) costs its sender nothing. Run in its own process so that its work is not
counted in the benchmark's CPU time nor competes for its GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    finally:
        queue.put_nowait((loop.time() + delay, b""))
        with contextlib.suppress(Exception):
            await sender


async def _serve(port_out: Any, upstream: tuple[str, int], delay: float) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
        with contextlib.suppress(Exception):
            await asyncio.gather(_pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay))

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port_out.put(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _main(port_out: Any, upstream: tuple[str, int], delay: float) -> None:
    asyncio.run(_serve(port_out, upstream, delay))


@contextlib.contextmanager
def latency_relay(upstream_url: str, one_way_seconds: float) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` relayed to ``upstream_url`` (``http://host:port``), each
    way ``one_way_seconds`` late."""
    from bench.harness import server_process

    host, _, port = upstream_url.removeprefix("http://").rstrip("/").partition(":")
    with server_process(_main, (host, int(port)), one_way_seconds) as url:
        yield url
