"""serve's live status on a unix socket in the state dir (no TCP port to configure)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)


class StatusServer:
    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]]):
        self.path = path
        self.snapshot = snapshot
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        await web.UnixSite(self._runner, str(self.path)).start()
        self.path.chmod(0o600)

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.path.unlink(missing_ok=True)


async def fetch(path: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """serve's snapshot, or None when serve is not running."""
    if not path.exists():
        return None
    try:
        conn = aiohttp.UnixConnector(path=str(path))
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get("http://serve/status") as resp:
                return await resp.json()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None
