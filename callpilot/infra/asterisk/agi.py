"""FastAGI server (panoramisk) so dialplan-driven sites run the same flows.

Only ``async def`` handlers are registered: panoramisk 1.4 wraps plain functions with
``asyncio.coroutine``, which Python 3.11 removed.  panoramisk's own connection handler loops
forever without yielding when a client closes before sending its headers (a port scan or a
TCP health check would freeze the whole process), so the headers are read here with a
deadline and EOF handling, and panoramisk's ``Request`` carries the session from there.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from panoramisk.fast_agi import Request

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[None]]
HEADER_TIMEOUT = 5.0
MAX_HEADER_BYTES = 16384


class AgiServer:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.routes: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None

    def route(self, path: str, handler: Handler) -> None:
        if not asyncio.iscoroutinefunction(handler):
            raise TypeError(f"FastAGI route {path}: handler must be async def")
        if path in self.routes:
            raise ValueError(f"FastAGI route {path} already exists")
        self.routes[path] = handler

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            headers = await read_headers(reader)
            if headers is None:
                return
            script = headers.get("agi_network_script", "")
            handler = self.routes.get(script)
            if handler is None:
                logger.error("FastAGI: no route for %r", script)
                return
            await handler(Request(app=self, headers=headers, reader=reader, writer=writer))
        except Exception:
            logger.exception("FastAGI connection failed")
        finally:
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port,
                                                  limit=MAX_HEADER_BYTES)
        logger.info("FastAGI listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """The AGI environment block (``key: value`` lines up to a blank line), or None when the
    peer closed, stalled past HEADER_TIMEOUT, or sent more than MAX_HEADER_BYTES."""
    try:
        block = await asyncio.wait_for(reader.readuntil(b"\n\n"), HEADER_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
            ConnectionError) as exc:
        logger.warning("FastAGI: dropped a connection without a valid header block (%s)",
                       type(exc).__name__)
        return None
    lines = block.decode("utf-8", errors="replace").splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)
