"""FastAGI server (panoramisk) so dialplan-driven sites run the same flows.

Only ``async def`` handlers are registered: panoramisk 1.4 wraps plain functions with
``asyncio.coroutine``, which Python 3.11 removed.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from panoramisk.fast_agi import Application

logger = logging.getLogger(__name__)

Handler = Callable[[object], Awaitable[None]]


class AgiServer:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.app = Application(loop=asyncio.get_event_loop())
        self._server: asyncio.AbstractServer | None = None

    def route(self, path: str, handler: Handler) -> None:
        if not asyncio.iscoroutinefunction(handler):
            raise TypeError(f"FastAGI route {path}: handler must be async def")
        self.app.add_route(path, self._guarded(path, handler))

    @staticmethod
    def _guarded(path: str, handler: Handler) -> Handler:
        async def run(request) -> None:
            try:
                await handler(request)
            except Exception:
                logger.exception("FastAGI %s failed for %s", path, request.headers.get("agi_uniqueid"))
        return run

    async def start(self) -> None:
        self._server = await asyncio.start_server(self.app.handler, self.host, self.port)
        logger.info("FastAGI listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
