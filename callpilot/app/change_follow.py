"""Settings the admin web changes, reloaded on every node of one database.

The web tells its own node's serve at once (status socket ``POST /reload/<what>``), and
before that counts the change in the database (``ChangeLog.bump``).  Every node with shared
agents (D43) reads the counters each second and reloads what another node's web changed:
agents (roster and PJSIP), queues.  A reload the web asked of this serve notes the counter
first, so the same change is not reloaded twice.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from callpilot.infra.db.shared_state import ChangeLog
from callpilot.infra.periodic import Periodic

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
FOLLOWED = ("agents", "queues")
Reload = Callable[[str], dict[str, Any] | Awaitable[dict[str, Any]]]


class ChangeFollower:
    def __init__(self, changes: ChangeLog, reload: Reload, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.changes = changes
        self.reload = reload
        self.seen: dict[str, int] | None = None     # None until the first read (start)
        self._periodic = Periodic("config-changes", self.follow, poll_seconds)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def follow(self) -> None:
        versions = await asyncio.to_thread(self.changes.versions)
        if self.seen is None:                 # this serve loaded everything at its start
            self.seen = dict(versions)
            return
        for what in FOLLOWED:
            if versions.get(what, 0) > self.seen.get(what, 0):
                self.seen[what] = versions[what]
                logger.info("%s changed on another node (version %d): reloading", what, versions[what])
                await settled(self.reload(what))

    async def noted(self, what: str) -> None:
        """The web asked this serve to reload ``what``: the change it counted is this one."""
        versions = await asyncio.to_thread(self.changes.versions)
        if self.seen is not None and what in versions:
            self.seen[what] = max(self.seen.get(what, 0), versions[what])


async def settled(result) -> Any:
    """A reload's result, awaited if it is one (agents: render + Asterisk reload)."""
    return await result if inspect.isawaitable(result) else result
