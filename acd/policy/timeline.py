"""The step clock of a waiting call: which routing step is active at a given time.

* The clock starts at ``call.enqueued_at``; steps follow each other by their expiries.
* A step that no logged-in agent of the queue could satisfy (whatever its availability,
  and counting the call's hard skill minimums) is skipped: it takes no time, so the next
  step is active at once.
* After the last step comes the final phase, index ``len(call.steps)``: any agent of the
  queue. A step that never expires (``expiry=inf``) hides everything after it.
* A step is active on ``[start, end)``: at exactly ``enqueued_at + end`` the next one is.

Every boundary is computed as ``enqueued_at + offset`` with the same offsets, so the time
that :func:`phase_at` reports as a change is exactly when :func:`phase_at` changes.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentView, CallView, Step
from acd.policy.conditions import can_serve, step_holds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phase:
    """Step ``step`` is active from ``enqueued_at + start`` to ``enqueued_at + end``."""

    step: int
    start: float
    end: float


def possible_steps(call: CallView, queue_agents: Iterable[AgentView], bands: AgeBands) -> tuple[bool, ...]:
    """For each step: can some logged-in agent of the queue (meeting the minimums) satisfy it?"""
    servers = [agent for agent in queue_agents if can_serve(call, agent)]
    return tuple(any(step_holds(step, call.attributes, a, bands) for a in servers) for step in call.steps)


def build_phases(steps: Sequence[Step], possible: Sequence[bool]) -> tuple[Phase, ...]:
    """The phases of a call, offsets in seconds from queue entry; the last one never ends."""
    phases: list[Phase] = []
    offset = 0.0
    for index, (step, ok) in enumerate(zip(steps, possible)):
        if not ok:
            continue
        phases.append(Phase(index, offset, offset + step.expiry))
        offset += step.expiry
        if math.isinf(offset):
            return tuple(phases)
    phases.append(Phase(len(steps), offset, math.inf))
    return tuple(phases)


def call_phases(call: CallView, agents: Iterable[AgentView], bands: AgeBands) -> tuple[Phase, ...]:
    return build_phases(call.steps, possible_steps(call, agents, bands))


def phase_at(phases: Sequence[Phase], enqueued_at: float, now: float) -> Phase:
    """The phase active at ``now`` (the first one if ``now`` is before queue entry)."""
    for phase in phases:
        if now < enqueued_at + phase.end:
            return phase
    return phases[-1]   # unreachable: the last phase ends at infinity


def phase_change_after(phases: Sequence[Phase], enqueued_at: float, now: float) -> float | None:
    """When the phase active at ``now`` ends, or None if it never does."""
    end = enqueued_at + phase_at(phases, enqueued_at, now).end
    return None if math.isinf(end) else end


def active_step(call: CallView, agents: Iterable[AgentView], now: float,
                *, bands: AgeBands = DEFAULT_AGE_BANDS) -> int:
    """Index of the call's active step at ``now``; ``len(call.steps)`` means any agent."""
    return phase_at(call_phases(call, agents, bands), call.enqueued_at, now).step


def activation_times(call: CallView, agents: Iterable[AgentView],
                     *, bands: AgeBands = DEFAULT_AGE_BANDS) -> tuple[float | None, ...]:
    """When each step becomes active (index ``len(call.steps)``: the final phase).

    None for a step that is skipped or that follows a step which never expires.
    """
    starts: list[float | None] = [None] * (len(call.steps) + 1)
    for phase in call_phases(call, agents, bands):
        starts[phase.step] = call.enqueued_at + phase.start
    return tuple(starts)
