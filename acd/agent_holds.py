"""Agents shared by several nodes on one database: a node rings an agent only while it
holds the agent (``callpilot.infra.db.shared_state`` is the mechanism).

* **take** (before every ring, ACD offer or callback): the agent is already RINGING in this
  node's memory, so this node offers it nothing else; the hold decides between nodes.  A
  take another node wins is refused: the agent is marked *held elsewhere* (not routable
  here) and the caller goes back in line, the agent not blamed.
* **release**: as soon as the agent is no longer busy here (available again, paused, logged
  out: out of :data:`acd.agents.BUSY_STATES`), the hold is freed, after the wrap-up.
* **watch** (every ``poll_seconds``): this node's holds are renewed; agents held by other
  nodes are marked, and unmarked once freed, which wakes routing; a hold this node left
  behind (its release failed, a previous run's, a take that came back after its call
  ended) is freed unless the agent is busy here (a previous run's only after the first
  re-adoption, :meth:`AgentHolds.resynced`).  A node that stops renewing
  (crashed, cut off) loses its holds after ``stale_seconds``.
* **database away** (a take fails, or outlasts :data:`TAKE_DEADLINE`): the agent is rung
  without a hold, logged as an error.  Callers come first: a node on PostgreSQL keeps
  answering through a database outage, as it did before holds, at the risk of two nodes
  ringing one agent until the database is back.

Each node needs a name of its own (``acd.node``): holds are told apart by it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from acd.agents import BUSY_STATES, AgentRoster, LiveAgent
from callpilot.infra.db.shared_state import AgentHoldStore, Hold
from callpilot.infra.db.records import utcnow
from callpilot.infra.periodic import Periodic

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
STALE_SECONDS = 15.0     # a hold not renewed for this long is free (its node is gone)
# seconds a take may take; then the agent is rung without it (the database is away: calls
# are still answered, at the risk of two nodes ringing one agent until it is back)
TAKE_DEADLINE = 2.0


class AgentHolds:
    def __init__(self, store: AgentHoldStore, roster: AgentRoster, kick: Callable[[], None], *,
                 poll_seconds: float = POLL_SECONDS, stale_seconds: float = STALE_SECONDS,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.roster = roster
        self.kick = kick
        self.stale = timedelta(seconds=stale_seconds)
        self.now = now
        self.mine: dict[str, str] = {}          # agent -> call id this node holds it for
        # this node's holds from before are freed only once its calls are re-adopted (the
        # first resync after a start): until then an agent on such a call looks free here
        self.resync_done = False
        self._tasks: set[asyncio.Task] = set()
        self._periodic = Periodic("agent-holds", self.watch, poll_seconds)
        roster.watch(self.agent_moved)

    @property
    def node(self) -> str:
        return self.store.node

    # -- take and release ---------------------------------------------------------------
    async def take(self, agent: LiveAgent, call_id: str) -> str | None:
        """Hold ``agent`` for ``call_id`` before it is rung: None when held, else why not
        (the agent is then marked held elsewhere)."""
        now = self.now()
        try:
            async with asyncio.timeout(TAKE_DEADLINE):
                holder = await asyncio.to_thread(self.store.take, agent.extension, call_id, now, now - self.stale)
        except Exception as exc:          # the database is slow or away: callers come first
            logger.error("agent %s: hold for %s not taken (%s): rung without it", agent.extension,
                         call_id, exc or type(exc).__name__)
            return None                    # a take that lands later is adopted or freed by watch
        if holder is not None:
            logger.info("agent %s: held by node %s for %s: not rung for %s", agent.extension,
                        holder.node, holder.call_id, call_id)
            self._mark(agent, holder.node)
            return f"held by node {holder.node}"
        if agent.call_id == call_id and _busy(agent):
            self.mine[agent.extension] = call_id
        else:                              # the call ended while the hold was taken
            self._release(agent.extension, call_id)
        return None

    def agent_moved(self, agent: LiveAgent) -> None:
        """The roster's watcher: an agent no longer busy here is freed.  (Not "no longer on
        that call id": a callback renames the agent's call when its attempt is claimed.)"""
        held_for = self.mine.get(agent.extension)
        if held_for is not None and not _busy(agent):
            del self.mine[agent.extension]
            self._release(agent.extension, held_for)

    def _release(self, extension: str, call_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._released(extension, call_id),
                                                      name=f"hold-release-{extension}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _released(self, extension: str, call_id: str) -> None:
        try:
            if await asyncio.to_thread(self.store.release, extension, call_id):
                logger.info("agent %s: hold for %s released", extension, call_id)
        except Exception:                  # the next watch frees it (not on that call here)
            logger.exception("agent %s: hold for %s not released now", extension, call_id)

    # -- watch --------------------------------------------------------------------------
    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def resynced(self) -> None:
        """After each ARI (re)connect's re-adoption: the calls this node still has are known."""
        self.resync_done = True
        await self.watch()

    async def watch(self) -> None:
        now = self.now()
        holds = await asyncio.to_thread(self._renew_and_read, now)
        self.apply(holds)

    def _renew_and_read(self, now: datetime) -> list[Hold]:
        self.store.renew(now)
        return self.store.live(now - self.stale)

    def apply(self, holds: list[Hold]) -> None:
        """Mark the agents other nodes hold, unmark the rest; free what this node left."""
        elsewhere = {hold.agent: hold.node for hold in holds if hold.node != self.node}
        for agent in self.roster.agents.values():
            self._mark(agent, elsewhere.get(agent.extension))
        for hold in holds:
            if hold.node == self.node and self.mine.get(hold.agent) != hold.call_id:
                agent = self.roster.get(hold.agent)
                if agent is not None and _busy(agent):
                    self.mine[hold.agent] = hold.call_id     # a previous run's call, re-adopted
                elif self.resync_done:
                    logger.info("agent %s: hold for %s left by this node: released", hold.agent,
                                hold.call_id)
                    self._release(hold.agent, hold.call_id)

    def _mark(self, agent: LiveAgent, node: str | None) -> None:
        if agent.held_by == node:
            return
        logger.info("agent %s: %s", agent.extension,
                    f"held by node {node}" if node else f"free again (was held by node {agent.held_by})")
        agent.held_by = node
        self.roster.touch(agent.extension)
        if node is None:
            self.kick()                    # routable again: a pass now


def _busy(agent: LiveAgent) -> bool:
    """Ringing, talking or wrapping up on this node."""
    return agent.state in BUSY_STATES
