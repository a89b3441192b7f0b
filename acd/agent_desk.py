"""Agent commands (login, logout, pause, unpause) from a phone feature code or the CLI, and
the queue events they report.  Checks first, then the move: a refused command changes nothing."""
from __future__ import annotations

import logging
from collections.abc import Callable

from acd.agents import AgentRoster, LiveAgent
from acd.clock import Clock
from acd.events import QueueEventSink
from acd.model import AgentState

logger = logging.getLogger(__name__)

TARGETS = {"login": AgentState.AVAILABLE, "logout": AgentState.LOGGED_OUT,
           "pause": AgentState.PAUSED, "unpause": AgentState.AVAILABLE}


class AgentCommandError(ValueError):
    """An agent command that cannot apply now (the message says why)."""


class AgentDesk:
    def __init__(self, roster: AgentRoster, events: QueueEventSink, clock: Clock,
                 changed: Callable[[], None]):
        self.roster = roster
        self.events = events
        self.clock = clock
        self.changed = changed          # the dispatcher's kick: routing may change

    def adopt_roster(self, agents: list[LiveAgent]) -> None:
        """Agents loaded at start; the auto-logged-in ones are reported as logins."""
        for agent in agents:
            self.roster.add(agent)
            if agent.state is not AgentState.LOGGED_OUT:
                self.events.agent_login(agent.extension, sorted(agent.queues))

    def refresh_roster(self, agents: list[LiveAgent]) -> list[str]:
        """The database's agents again (the admin web changed them); the extensions changed.

        A known agent takes the new profile (queues, skills, languages, age band, wrap-up)
        and keeps its state, device state and call; a new one joins as at start.  An agent
        no longer in the database leaves the roster (logged out in the queue log): now if it
        is idle, after its call and wrap-up if it is on one (:meth:`AgentRoster.remove_when_idle`)."""
        changed = self._retire({a.extension for a in agents})
        for fresh in agents:
            known = self.roster.get(fresh.extension)
            self.roster.keep(fresh.extension)
            if known is None:
                self.adopt_roster([fresh])
            elif _profile(known) != _profile(fresh):
                known.queues, known.skills, known.languages = fresh.queues, fresh.skills, fresh.languages
                known.language = fresh.language
                known.age_band, known.wrapup_seconds = fresh.age_band, fresh.wrapup_seconds
                self.roster.touch(known.extension)
            else:
                continue
            changed.append(fresh.extension)
            logger.info("agent %s (re)loaded: queues=%s skills=%s", fresh.extension,
                        sorted(fresh.queues), fresh.skills)
        if changed:
            self.changed()
        return changed

    def _retire(self, present: set[str]) -> list[str]:
        """Agents gone from the database, taken out (or marked to leave after the call)."""
        gone = [ext for ext in self.roster.agents if ext not in present and not self.roster.leaving(ext)]
        for extension in gone:
            self.roster.remove_when_idle(extension, self._left)
        return gone

    def _left(self, agent: LiveAgent) -> None:
        if agent.state is not AgentState.LOGGED_OUT:
            self.events.agent_logout(agent.extension, sorted(agent.queues),
                                     self.clock.monotonic() - agent.logged_in_at)
        self.changed()

    def command(self, extension: str, action: str, reason: str = "") -> LiveAgent:
        """Raises AgentCommandError with a message fit for the person who asked."""
        agent = self.roster.get(extension)
        if agent is None:
            raise AgentCommandError(f"no agent {extension}")
        target = TARGETS.get(action)
        if target is None:
            raise AgentCommandError(f"unknown action {action!r}")
        check_command(agent, action)
        if agent.state is not target:
            previous = agent.state
            agent.move(target, f"{action} {reason}".strip(), at=self.clock.monotonic())
            agent.pause_reason = (reason or "break") if target is AgentState.PAUSED else ""
            self._report(agent, previous)
        self.changed()
        return agent

    def _report(self, agent: LiveAgent, previous: AgentState) -> None:
        queues, now = sorted(agent.queues), self.clock.monotonic()
        if agent.state is AgentState.LOGGED_OUT:
            self.events.agent_logout(agent.extension, queues, now - agent.logged_in_at)
        elif previous is AgentState.LOGGED_OUT:
            agent.logged_in_at = now
            self.events.agent_login(agent.extension, queues)
            if agent.state is AgentState.PAUSED:
                self.events.agent_pause(agent.extension, queues, agent.pause_reason)
        elif agent.state is AgentState.PAUSED:
            self.events.agent_pause(agent.extension, queues, agent.pause_reason)
        elif previous is AgentState.PAUSED:
            self.events.agent_unpause(agent.extension, queues)


def _profile(agent: LiveAgent) -> tuple:
    return (agent.queues, agent.skills, agent.languages, agent.language, agent.age_band, agent.wrapup_seconds)


def check_command(agent: LiveAgent, action: str) -> None:
    busy = agent.state in (AgentState.RINGING, AgentState.ON_CALL)
    if action == "logout" and busy:
        raise AgentCommandError(f"agent {agent.extension} is {agent.state.value}: log out after the call")
    if action in ("pause", "unpause") and agent.state is AgentState.LOGGED_OUT:
        raise AgentCommandError(f"agent {agent.extension} is logged out")
    if action == "pause" and busy:
        raise AgentCommandError(f"agent {agent.extension} is {agent.state.value}: pause after the call")
    if action == "login" and agent.state is not AgentState.LOGGED_OUT:
        raise AgentCommandError(f"agent {agent.extension} is already logged in ({agent.state.value})")
