"""The flow version each new call starts with, kept current while ``serve`` runs.

* :meth:`PublishedFlows.start` seeds every built-in flow that the store lacks as version 1,
  loads the newest version of every flow and renders its static prompts.
* Every ``poll_seconds`` one query (newest version number per flow, a GROUP BY on the
  primary key) finds what ``callpilot flows publish`` or the admin UI published; a new
  version is parsed and its prompts rendered before calls get it, for at most
  ``render_wait`` seconds (3 s): then it goes live anyway and the rest renders in the
  background (a call meeting a prompt not rendered yet synthesises it, once).  Each flow
  is taken on its own, so a big publish never delays another flow's.  A publish is live
  within ``poll_seconds`` (2 s by default) + ``render_wait``, without a restart.
* At start nothing waits for rendering: ``serve`` registers with ARI at once.
* When a rendering ends, prompts no live (or just replaced) version uses are deleted
  (``collect``, :func:`ivr.runner.collect_prompts`).
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
Collect = Callable[[list[Flow]], Awaitable[int]]   # delete prompts none of these flows uses

# How long a new version waits for its prompts before going live anyway.
RENDER_WAIT_SECONDS = 3.0


class PublishedFlows:
    def __init__(self, store: FlowStore, prerender: Prerender, *,
                 builtin: Iterable[str] | None = None, poll_seconds: float = 2.0,
                 render_wait: float = RENDER_WAIT_SECONDS, collect: Collect | None = None) -> None:
        self.store = store
        self.prerender = prerender
        self.builtin = list(builtin_flows.builtin_names() if builtin is None else builtin)
        self.poll_seconds = poll_seconds
        self.render_wait = render_wait
        self.collect = collect
        self._live: dict[str, Flow] = {}
        self._previous: dict[str, Flow] = {}
        self._rendering: dict[str, asyncio.Task] = {}
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
        """Seed, load every live version and start polling; prompts render in the background
        (``serve`` registers with ARI right after this, whatever the size of the flows)."""
        for name in self.builtin:
            await asyncio.to_thread(self._seed, name)
        await self.refresh(wait=0.0)
        self._poller = asyncio.create_task(self._poll(), name="flows-poll")
        logger.info("flows live: %s (prompts rendering in the background)", self.versions())

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
        for task in self._rendering.values():
            task.cancel()
        self._rendering.clear()

    async def rendered(self) -> None:
        """Wait until every background prompt rendering has finished (tests, benchmarks)."""
        while self._rendering:
            await asyncio.gather(*self._rendering.values(), return_exceptions=True)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except Exception:  # a DB hiccup must not stop the polling; calls keep the last flows
                logger.exception("checking for newly published flows failed")

    async def refresh(self, wait: float | None = None) -> list[tuple[str, int]]:
        """Take every version newer than the live one (each flow on its own, so one big
        publish never delays another flow's); returns what changed."""
        latest = await asyncio.to_thread(self.store.latest_versions)
        todo = [(name, number) for name, number in sorted(latest.items())
                if (live := self._live.get(name)) is None or live.version != number]
        done = await asyncio.gather(*(self._take_logged(n, v, wait) for n, v in todo))
        return [pair for pair, ok in zip(todo, done) if ok]

    async def _take_logged(self, name: str, number: int, wait: float | None) -> bool:
        try:
            await self._take(name, number, self.render_wait if wait is None else wait)
            return True
        except Exception:  # noqa: BLE001  (one bad version must not block the others)
            live = self._live.get(name)
            logger.exception("flow %s version %s could not be loaded; keeping %s", name,
                             number, live.version if live else None)
            return False

    async def _take(self, name: str, number: int, wait: float) -> None:
        """Parse, start rendering the prompts, and go live once they are rendered or after
        ``wait`` seconds, whichever is first: a call meeting a prompt not rendered yet
        synthesises it then (once).  A rendering that fails within ``wait`` keeps the
        previous version."""
        flow = await asyncio.to_thread(self.store.version, name, number)
        render = self._render(flow)
        try:
            await asyncio.wait_for(asyncio.shield(render), wait)
        except TimeoutError:
            logger.info("flow %s v%d: going live while its prompts still render", name, number)
        previous = self._live.get(name)
        if previous is not None:
            self._previous[name] = previous
        self._live[name] = flow
        logger.info("flow %s: version %d live (was %s)", name, number,
                    previous.version if previous else None)

    def _render(self, flow: Flow) -> asyncio.Task:
        old = self._rendering.pop(flow.name, None)
        if old is not None:
            old.cancel()           # a newer version supersedes it: its prompts are not needed
        task = asyncio.create_task(self._render_and_collect(flow), name=f"render-{flow.name}")
        self._rendering[flow.name] = task
        task.add_done_callback(lambda t: self._render_done(flow.name, t))
        return task

    def _render_done(self, name: str, task: asyncio.Task) -> None:
        if self._rendering.get(name) is task:
            del self._rendering[name]
        if not task.cancelled() and task.exception() is not None:
            logger.error("flow %s: prompt rendering failed: %s", name, task.exception())

    async def _render_and_collect(self, flow: Flow) -> int:
        count = await self.prerender(flow)
        logger.info("flow %s v%s: %d prompts ready", flow.name, flow.version, count)
        if self.collect is not None and not self._rendering_others(flow.name):
            await self.collect(self._in_use(flow))
        return count

    def _in_use(self, new: Flow) -> list[Flow]:
        """Flows whose prompts stay: ``new``, every live version (calls in progress may hold
        the one ``new`` replaces) and the version each other flow's live one replaced."""
        others = [f for name, f in self._previous.items() if name != new.name]
        return [new, *self._live.values(), *others]

    def _rendering_others(self, name: str) -> bool:
        return any(n != name and not t.done() for n, t in self._rendering.items())
