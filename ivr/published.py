"""The flow version each new call starts with, kept current while ``serve`` runs.

* :meth:`PublishedFlows.start` seeds every built-in flow that the store lacks as version 1,
  loads the newest version of every flow and renders its static prompts.
* Every ``poll_seconds`` one query (newest version number per flow, a GROUP BY on the
  primary key) finds what ``callpilot flows publish`` or the admin UI published; a new
  version is parsed and its prompts rendered *before* calls get it, so no caller waits for
  TTS.  A publish is live within ``poll_seconds`` (2 s by default), without a restart.
* ``flows(name)`` is synchronous and touches no database: the call takes the
  :class:`~ivr.schema.Flow` once at its start and keeps it, so publishing (or rolling back)
  never changes a call already in the IVR.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator

from ivr import flows as builtin_flows
from ivr.errors import FlowInvalid
from ivr.schema import Flow
from ivr.store import FlowStore, UnknownFlow

logger = logging.getLogger(__name__)

Prerender = Callable[[Flow], Awaitable[int]]


class PublishedFlows:
    def __init__(self, store: FlowStore, prerender: Prerender, *,
                 builtin: Iterable[str] | None = None, poll_seconds: float = 2.0) -> None:
        self.store = store
        self.prerender = prerender
        self.builtin = list(builtin_flows.builtin_names() if builtin is None else builtin)
        self.poll_seconds = poll_seconds
        self._live: dict[str, Flow] = {}
        self._poller: asyncio.Task | None = None

    # -- what calls use -------------------------------------------------------------------
    def __call__(self, name: str) -> Flow:
        """The live version of ``name`` (raises UnknownFlow if it was never published)."""
        try:
            return self._live[name]
        except KeyError:
            raise UnknownFlow(f"flow {name!r} has no published version") from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._live))

    def versions(self) -> dict[str, int | None]:
        return {name: flow.version for name, flow in sorted(self._live.items())}

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        for name in self.builtin:
            await asyncio.to_thread(self._seed, name)
        await self.refresh()
        self._poller = asyncio.create_task(self._poll(), name="flows-poll")
        logger.info("flows live: %s", self.versions())

    def _seed(self, name: str) -> None:
        try:
            if self.store.seed(name, builtin_flows.load_builtin(name)) is not None:
                logger.info("flow %s: built-in document published as version 1", name)
        except FlowInvalid as exc:
            logger.error("built-in flow %s not seeded: %s", name, exc)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except Exception:  # a DB hiccup must not stop the polling; calls keep the last flows
                logger.exception("checking for newly published flows failed")

    async def refresh(self) -> list[tuple[str, int]]:
        """Take every version newer than the live one; returns what changed."""
        latest = await asyncio.to_thread(self.store.latest_versions)
        taken = []
        for name, number in sorted(latest.items()):
            live = self._live.get(name)
            if live is not None and live.version == number:
                continue
            try:
                await self._take(name, number)
                taken.append((name, number))
            except Exception:  # noqa: BLE001  (one bad version must not block the others)
                logger.exception("flow %s version %s could not be loaded; keeping %s", name,
                                 number, live.version if live else None)
        return taken

    async def _take(self, name: str, number: int) -> None:
        flow = await asyncio.to_thread(self.store.version, name, number)
        prompts = await self.prerender(flow)
        previous = self._live.get(name)
        self._live[name] = flow
        logger.info("flow %s: version %d live (was %s), %d prompts ready", name, number,
                    previous.version if previous else None, prompts)
