"""serve's side of "the admin web changed agents" (status socket ``POST /reload/agents``).

1. The roster is re-read from the database and merged into the live one (new skills, levels,
   languages, queues; new agents join; states and calls are kept): ``acd``'s own logic.
2. Asterisk's configuration is rendered again from the database (the agents' PJSIP
   endpoints and their digest credentials, written 0600 like every rendered file).
3. serve asks Asterisk over AMI to reload ``res_pjsip.so`` (and ``app_queue.so``: the
   degraded path's queue lists the same agents).  A res_pjsip reload re-reads endpoints,
   auths and AORs; channels and registrations already up are kept (the e2e test holds a
   call through it).

The web only writes the database and notifies: it never touches Asterisk.  Database reads
and the rendering run off the event loop.  Reloads are serialised.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from acd.agents import LiveAgent
from acd.model import AgeBands
from acd.roster_store import load_roster
from callpilot.infra.asterisk import runner as asterisk_runner
from callpilot.infra.config import Config

logger = logging.getLogger(__name__)

MODULES = ("res_pjsip.so", "app_queue.so")


class AgentReload:
    def __init__(self, config: Config, sessions, bands: AgeBands,
                 refresh_roster: Callable[[list[LiveAgent]], list[str]],
                 reload_module: Callable[[str], Awaitable[bool]]) -> None:
        self.config = config
        self.sessions = sessions
        self.bands = bands
        self.refresh_roster = refresh_roster
        self.reload_module = reload_module
        self._lock = asyncio.Lock()

    async def __call__(self) -> dict[str, Any]:
        async with self._lock:
            agents = await asyncio.to_thread(load_roster, self.sessions, bands=self.bands)
            changed = self.refresh_roster(agents)
            await asyncio.to_thread(self._render)
            reloaded = {module: await self.reload_module(module) for module in MODULES}
            logger.info("agents reloaded: %d in the database, changed %s; Asterisk %s",
                        len(agents), changed, reloaded)
            return {"reloaded": "agents", "agents": len(agents), "changed": changed,
                    "asterisk": all(reloaded.values())}

    def _render(self) -> None:
        asterisk_runner.render(self.config, asterisk_runner.load_agents(self.config))
