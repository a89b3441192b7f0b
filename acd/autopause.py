"""Autopause: an agent whose phone misses offer after offer is paused, so a caller is not
offered to it again and again while it is the only free agent.

What app_queue users know as ``autopause`` (and mod_callcenter as ``max-no-answer``): after
``after`` offers missed in a row (the phone rang out, rejected the call, could not be reached,
or answered and hung up before the bridge) the agent is paused with the reason
:data:`PAUSE_REASON`, logged and reported like any pause (queue_log ``PAUSE``); below that
it is available again.  The count lives on the agent (``LiveAgent.missed_offers``) and starts
again when the agent answers a call, is paused or logs out (``LiveAgent.move``).  ``after``
0 turns autopause off: a missed offer never pauses.  The agent comes back the usual way
(feature code, web, API: an unpause).
"""
from __future__ import annotations

import logging

from acd.agents import LiveAgent
from acd.clock import Clock
from acd.events import QueueEventSink
from acd.model import AgentState

logger = logging.getLogger(__name__)

PAUSE_REASON = "not responding"
DEFAULT_AFTER = 3


def after_miss(missed: int, after: int) -> AgentState:
    """Where an agent goes once it has missed ``missed`` offers in a row (pure)."""
    return AgentState.PAUSED if after > 0 and missed >= after else AgentState.AVAILABLE


class AutoPause:
    def __init__(self, after: int, events: QueueEventSink, clock: Clock):
        if after < 0:
            raise ValueError(f"autopause after {after} missed offers: must be >= 0 (0 = off)")
        self.after = after
        self.events = events
        self.clock = clock

    def missed(self, agent: LiveAgent, call_id: str, why: str) -> AgentState:
        """The agent's offer for ``call_id`` was missed (``why``): paused or available again."""
        agent.missed_offers += 1
        missed = agent.missed_offers
        target = after_miss(missed, self.after)
        if target is AgentState.PAUSED:
            agent.move(target, f"{why}: {missed} offers missed in a row, autopaused", call_id=call_id)
            agent.pause_reason = PAUSE_REASON
            self.events.agent_pause(agent.extension, sorted(agent.queues), PAUSE_REASON)
        else:
            limit = self.after or "no limit"
            agent.move(target, f"{why}: {missed} missed in a row (pause at {limit})", call_id=call_id,
                       at=self.clock.monotonic())
        return target
