"""Live agents: their ACD state (named enum, every move checked and logged) and the
device state Asterisk reports for their phone (AMI).  An agent is routable only when the
ACD state is AVAILABLE and the phone is registered and idle.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from acd.model import AgentState, transition

logger = logging.getLogger(__name__)

IDLE_DEVICE_STATES = frozenset({"NOT_INUSE"})


@dataclass
class LiveAgent:
    extension: str
    queues: frozenset[str]
    skills: dict[str, int] = field(default_factory=dict)
    age_band: str | None = None
    languages: frozenset[str] = frozenset()
    state: AgentState = AgentState.LOGGED_OUT
    device_state: str = "UNKNOWN"
    idle_since: float = field(default_factory=time.monotonic)
    pause_reason: str = ""
    call_id: str | None = None
    logged_in_at: float = field(default_factory=time.monotonic)
    wrapup_seconds: float | None = None     # None: the ACD's default

    @property
    def endpoint(self) -> str:
        return f"PJSIP/{self.extension}"

    @property
    def routable(self) -> bool:
        return self.state is AgentState.AVAILABLE and self.device_state in IDLE_DEVICE_STATES

    def move(self, new: AgentState, why: str = "", *, call_id: str | None = None,
             at: float | None = None) -> None:
        """``at``: the mover's monotonic clock (the dispatcher passes its injected one)."""
        transition(self.state, new)
        logger.info("agent %s call=%s: %s -> %s %s", self.extension, call_id or self.call_id,
                    self.state.name, new.name, why)
        self.state = new
        if new is AgentState.AVAILABLE:
            self.idle_since = time.monotonic() if at is None else at
            self.call_id = None
            self.pause_reason = ""


class AgentRoster:
    def __init__(self) -> None:
        self.agents: dict[str, LiveAgent] = {}

    def add(self, agent: LiveAgent) -> None:
        self.agents[agent.extension] = agent

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
        return agent

    def routable(self) -> list[LiveAgent]:
        return [a for a in self.agents.values() if a.routable]
