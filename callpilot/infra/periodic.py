"""A step run every few seconds for as long as serve runs: a failed step is logged and the
next one runs on time (a database away for a while must not end the loop)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, step: Callable[[], Awaitable[None]], every: float) -> None:
        self.name = name
        self.step = step
        self.every = every
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                logger.exception("%s: step failed; trying again in %.0f s", self.name, self.every)
            await asyncio.sleep(self.every)
