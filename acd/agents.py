"""Live agents: their ACD state (named enum, every move checked and logged) and the
device state Asterisk reports for their phone (AMI).  An agent is routable only when the
ACD state is AVAILABLE and the phone is registered and idle.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from acd.log_later import NOW, LogLater
from acd.model import AgentState, transition

logger = logging.getLogger(__name__)

IDLE_DEVICE_STATES = frozenset({"NOT_INUSE"})
#: an agent in these states is in the middle of a call: removing it waits until it leaves them
BUSY_STATES = frozenset({AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP})
#: moving into these starts the count of missed offers again (answered, paused, logged out)
FRESH_COUNT_STATES = frozenset({AgentState.ON_CALL, AgentState.PAUSED, AgentState.LOGGED_OUT})


@dataclass
class LiveAgent:
    extension: str
    queues: frozenset[str]
    skills: dict[str, int] = field(default_factory=dict)
    age_band: str | None = None
    languages: frozenset[str] = frozenset()
    language: str | None = None             # spoken to in this one: the first of its languages
    state: AgentState = AgentState.LOGGED_OUT
    device_state: str = "UNKNOWN"
    idle_since: float = field(default_factory=time.monotonic)
    pause_reason: str = ""
    call_id: str | None = None
    logged_in_at: float = field(default_factory=time.monotonic)
    wrapup_seconds: float | None = None     # None: the ACD's default
    missed_offers: int = 0                  # offers missed in a row (acd.autopause)
    held_by: str | None = None              # another node on the database uses it (acd.agent_holds)
    # the roster's change log (set by AgentRoster.add): routing re-reads only changed agents
    on_change: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint(self) -> str:
        return f"PJSIP/{self.extension}"

    @property
    def routable(self) -> bool:
        return (self.state is AgentState.AVAILABLE and self.device_state in IDLE_DEVICE_STATES
                and self.held_by is None)

    def move(self, new: AgentState, why: str = "", *, call_id: str | None = None,
             at: float | None = None, log: LogLater | None = None) -> None:
        """``at``: the mover's monotonic clock (the dispatcher passes its injected one);
        ``log``: the line goes there (written a moment later) instead of out now."""
        transition(self.state, new)
        (NOW if log is None else log).info(logger, "agent %s call=%s: %s -> %s %s", self.extension,
                                           call_id or self.call_id, self.state.name, new.name, why)
        self.state = new
        if new is AgentState.AVAILABLE:
            self.idle_since = time.monotonic() if at is None else at
            self.call_id = None
            self.pause_reason = ""
        elif new in FRESH_COUNT_STATES:
            self.missed_offers = 0
        if self.on_change is not None:
            self.on_change(self.extension)


class AgentRoster:
    """The agents, which of them changed (state, device state, added) since routing last
    looked (:meth:`take_changed`), and per-queue counts by state kept as agents move."""

    def __init__(self) -> None:
        self.agents: dict[str, LiveAgent] = {}
        self._changed: set[str] = set()
        self._counts: dict[str, Counter[AgentState]] = {}
        self._counted: dict[str, tuple[frozenset[str], AgentState]] = {}   # what the counts hold
        self._leaving: dict[str, Callable[[LiveAgent], None]] = {}        # removed after the call
        self._watchers: list[Callable[[LiveAgent], None]] = []            # told of every touch

    def watch(self, watcher: Callable[[LiveAgent], None]) -> None:
        """``watcher(agent)`` after every move of an agent in the roster (and every touch)."""
        self._watchers.append(watcher)

    def add(self, agent: LiveAgent) -> None:
        self.agents[agent.extension] = agent
        agent.on_change = self.touch
        self.touch(agent.extension)

    def touch(self, extension: str) -> None:
        """Routing must look at this agent again (it moved, or an offer to it failed)."""
        self._changed.add(extension)
        self._recount(extension)
        agent = self.agents.get(extension)
        if agent is not None:
            for watcher in self._watchers:
                watcher(agent)
        if extension in self._leaving and agent is not None and agent.state not in BUSY_STATES:
            self._remove(agent, self._leaving.pop(extension))

    def remove_when_idle(self, extension: str, removed: Callable[[LiveAgent], None]) -> bool:
        """Take the agent out of the roster now if it is not busy (:data:`BUSY_STATES`),
        otherwise as soon as it moves out of them (the call and its wrap-up end first);
        ``removed(agent)`` is called then.  True if removed now."""
        agent = self.agents.get(extension)
        if agent is None:
            return False
        if agent.state in BUSY_STATES:
            self._leaving[extension] = removed
            logger.info("agent %s leaves the roster after its call (%s)", extension, agent.state.name)
            return False
        self._remove(agent, removed)
        return True

    def keep(self, extension: str) -> None:
        """The agent stays after all (it is back in the database before its call ended)."""
        if self._leaving.pop(extension, None) is not None:
            logger.info("agent %s stays in the roster", extension)

    def leaving(self, extension: str) -> bool:
        return extension in self._leaving

    def _remove(self, agent: LiveAgent, removed: Callable[[LiveAgent], None]) -> None:
        del self.agents[agent.extension]
        agent.on_change = None
        self.touch(agent.extension)          # counts drop it; routing forgets it
        logger.info("agent %s removed from the roster (%s)", agent.extension, agent.state.name)
        removed(agent)

    def _recount(self, extension: str) -> None:
        agent = self.agents.get(extension)
        now = (agent.queues, agent.state) if agent is not None else None
        before = self._counted.get(extension)
        if now == before:
            return
        if before is not None:
            for queue in before[0]:
                self._counts[queue][before[1]] -= 1
        if now is None:
            self._counted.pop(extension, None)
            return
        for queue in now[0]:
            self._counts.setdefault(queue, Counter())[now[1]] += 1
        self._counted[extension] = now

    def count(self, queue: str, *states: AgentState) -> int:
        """How many of the queue's agents are in one of ``states`` (O(states))."""
        counts = self._counts.get(queue)
        return sum(counts[s] for s in states) if counts else 0

    def take_changed(self) -> set[str]:
        changed = set(self._changed)
        self._changed.clear()
        return changed

    def get(self, extension: str) -> LiveAgent | None:
        return self.agents.get(extension)

    def by_device(self, device: str) -> LiveAgent | None:
        if device.upper().startswith("PJSIP/"):
            return self.agents.get(device.split("/", 1)[1])
        return None

    def set_device_state(self, device: str, state: str) -> LiveAgent | None:
        agent = self.by_device(device)
        if agent is not None and agent.device_state != state:
            logger.info("agent %s device %s -> %s", agent.extension, agent.device_state, state)
            agent.device_state = state
            self._changed.add(agent.extension)
        return agent

    def routable(self) -> list[LiveAgent]:
        return [a for a in self.agents.values() if a.routable]
