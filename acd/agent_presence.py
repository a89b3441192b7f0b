"""An agent's presence (logged in, paused, logged out) the same on every node of one database.

On one node the presence lives in the agent's ACD state (``acd.agent_desk`` commands, the
autopause, auto-login at start).  With several nodes, an agent who pauses through one node
(its phone's feature code reaches one Asterisk, the web asks one serve) must not be rung
by another.  So:

* **publish**: every presence change made on this node (a command, an autopause) is written
  to ``agent_presence`` with a new version; an agent's first sight here (start, reload) is
  not a change: a node starting up never overrides what the agent asked elsewhere;
* **follow** (every ``poll_seconds``): changes made on other nodes (and, at start, this
  node's own from before: a pause survives a restart) are applied here by
  :func:`presence_move`, quietly: the queue log has the change once, from the node where it
  was asked.  A change that cannot apply yet (a pause or log-out while the agent rings or
  talks here) is applied when the call ends.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from acd.agents import AgentRoster, LiveAgent
from acd.model import AgentState
from callpilot.infra.db.shared_state import AgentPresenceStore, Presence
from callpilot.infra.db.records import utcnow
from callpilot.infra.periodic import Periodic

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
READ_MARGIN = timedelta(seconds=30)     # re-read this far back: clocks of nodes differ a little
EPOCH = datetime(1970, 1, 1, tzinfo=utcnow().tzinfo)


class PresenceState(enum.Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"      # logged in: available, ringing, talking or wrapping up
    PAUSED = "paused"


def presence_of(state: AgentState) -> PresenceState:
    if state is AgentState.LOGGED_OUT:
        return PresenceState.LOGGED_OUT
    if state is AgentState.PAUSED:
        return PresenceState.PAUSED
    return PresenceState.AVAILABLE


WAIT = "wait"        # presence_move: not now (the agent rings or talks here)
_BUSY = frozenset({AgentState.RINGING, AgentState.ON_CALL})


def presence_move(state: AgentState, wanted: PresenceState) -> AgentState | str | None:
    """Pure: the move that gives an agent in ``state`` the presence asked elsewhere; None
    when it has it already; :data:`WAIT` while it rings or talks (as a command would be
    refused, ``acd.agent_desk.check_command``)."""
    if presence_of(state) is wanted:
        return None
    if wanted is PresenceState.AVAILABLE:
        return AgentState.AVAILABLE
    if state in _BUSY:
        return WAIT
    return AgentState.PAUSED if wanted is PresenceState.PAUSED else AgentState.LOGGED_OUT


class SharedPresence:
    def __init__(self, store: AgentPresenceStore, roster: AgentRoster, kick: Callable[[], None], *,
                 poll_seconds: float = POLL_SECONDS, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.roster = roster
        self.kick = kick
        self.now = now
        self.known: dict[str, PresenceState] = {}    # what this node last had or published
        self.seen: dict[str, int] = {}               # agent -> version applied or published
        self.waiting: dict[str, Presence] = {}       # asked elsewhere, to apply after the call
        self._applying: str | None = None
        self._publishing: dict[str, int] = {}        # agent -> publishes of this node in flight
        self._read_from = EPOCH                      # the first read takes every row
        self._tasks: set[asyncio.Task] = set()
        self._periodic = Periodic("agent-presence", self.follow, poll_seconds)
        roster.watch(self.agent_moved)

    # -- publish ------------------------------------------------------------------------
    def agent_moved(self, agent: LiveAgent) -> None:
        self.call_over(agent)
        presence = presence_of(agent.state)
        before = self.known.get(agent.extension)
        self.known[agent.extension] = presence
        if before is None or before is presence or self._applying == agent.extension:
            return                       # first sight, no change, or a change from elsewhere
        self.waiting.pop(agent.extension, None)          # asked here since: this one stands
        self._publishing[agent.extension] = self._publishing.get(agent.extension, 0) + 1
        self._spawn(self._publish(agent.extension))

    def call_over(self, agent: LiveAgent) -> None:
        """A presence asked elsewhere while the agent rang or talked here: now, if it can."""
        if agent.extension in self.waiting and agent.state not in _BUSY:
            asyncio.get_running_loop().call_soon(self.apply_waiting)

    async def _publish(self, extension: str) -> None:
        """The agent's presence as it is when this runs (after the command that moved it
        set the pause reason), published."""
        try:
            agent = self.roster.get(extension)
            if agent is not None:
                await self._write(agent)
        finally:
            self._publishing[extension] -= 1
            if not self._publishing[extension]:
                del self._publishing[extension]

    async def _write(self, agent: LiveAgent) -> None:
        presence, reason = presence_of(agent.state), agent.pause_reason
        try:
            version = await asyncio.to_thread(self.store.publish, agent.extension, presence.value, reason,
                                              self.now())
        except Exception:
            logger.exception("agent %s: presence %s not published: other nodes keep the old one",
                             agent.extension, presence.value)
            return
        self.seen[agent.extension] = max(self.seen.get(agent.extension, 0), version)
        logger.info("agent %s: presence %s published (version %d)", agent.extension, presence.value, version)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- follow -------------------------------------------------------------------------
    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def follow(self) -> None:
        first = self._read_from == EPOCH
        read_at = self.now()
        rows = await asyncio.to_thread(self.store.since, self._read_from)
        self._read_from = read_at - READ_MARGIN
        for row in rows:
            if row.agent in self._publishing:
                continue                 # a change made here is being written: it is newer
            if row.version > self.seen.get(row.agent, 0) and (first or row.node != self.store.node):
                self.waiting[row.agent] = row
            self.seen[row.agent] = max(self.seen.get(row.agent, 0), row.version)
        self.apply_waiting()

    def apply_waiting(self) -> None:
        for extension, row in list(self.waiting.items()):
            agent = self.roster.get(extension)
            if agent is None:
                continue                       # not (yet) in this node's roster: kept
            move = presence_move(agent.state, PresenceState(row.presence))
            if move == WAIT:
                continue
            del self.waiting[extension]
            if move is not None:
                self._apply(agent, move, row)

    def _apply(self, agent: LiveAgent, move: AgentState, row: Presence) -> None:
        self._applying = agent.extension
        try:
            agent.move(move, f"{row.presence} on node {row.node} {row.reason}".rstrip())
            agent.pause_reason = (row.reason or "break") if move is AgentState.PAUSED else ""
        finally:
            self._applying = None
        self.kick()
