"""Batch matching of waiting calls to available agents, and the next step-change time.

:func:`assign` is a greedy matching: calls in priority-then-age order (then id), each given
the best eligible agent not yet taken. It never offers an agent or a call twice, every
pair is eligible, and it is maximal: no eligible (call, agent) pair is left with both
unassigned. A single freed agent therefore gets the best call it is eligible for.

Efficiency: calls that share a routing situation (queue, steps, hard minimums, the caller
attribute values the steps read) share their step timeline; calls that also share the
active step and the queue's skill share one ranked list of available agents, walked with
a cursor past agents already taken. Work is about O(C log C + G x A_q) for C calls, G
distinct situations and A_q agents per queue, instead of O(C x A).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentView, CallView, ModelError, Step
from acd.policy.conditions import caller_attributes_used
from acd.policy.select import call_order_key, rank_agents
from acd.policy.timeline import Phase, build_phases, phase_at, phase_change_after, possible_steps

logger = logging.getLogger(__name__)

Pair = tuple[str, str]


class _Ranked:
    """Eligible agents for one routing situation, best first, and how far they are taken."""

    __slots__ = ("agents", "pos")

    def __init__(self, agents: list[AgentView]) -> None:
        self.agents = agents
        self.pos = 0

    def first_free(self, taken: set[str]) -> AgentView | None:
        while self.pos < len(self.agents) and self.agents[self.pos].id in taken:
            self.pos += 1
        return self.agents[self.pos] if self.pos < len(self.agents) else None


class _Shape(NamedTuple):
    token: int                      # equal conditions (all steps) -> equal token
    attributes: tuple[str, ...]     # caller attributes the conditions read
    expiries: tuple[float, ...]


class _Batch:
    """Agents indexed by queue plus per-situation caches, for one (calls, agents, now).

    A call's *situation* is what its step possibilities and agent ranking depend on: queue,
    the steps' conditions (not their expiries), hard minimums and the caller attribute
    values the conditions read.
    """

    def __init__(self, agents: Iterable[AgentView], bands: AgeBands) -> None:
        self.bands = bands
        self.logged_in: dict[str, list[AgentView]] = defaultdict(list)
        self.available: dict[str, list[AgentView]] = defaultdict(list)
        for agent in agents:
            self._index(agent)
        self._shapes: dict[int, tuple[tuple[Step, ...], _Shape]] = {}
        self._by_value: dict[tuple[Step, ...], _Shape] = {}
        self._tokens: dict[Hashable, int] = {}
        self._possible: dict[Hashable, tuple[bool, ...]] = {}
        self._phases: dict[Hashable, tuple[Phase, ...]] = {}
        self._ranked: dict[Hashable, _Ranked] = {}

    def _index(self, agent: AgentView) -> None:
        if not agent.logged_in:
            return
        for queue in agent.queues:
            self.logged_in[queue].append(agent)
            if agent.available:
                self.available[queue].append(agent)

    def _shape(self, steps: tuple[Step, ...]) -> _Shape:
        """Memoised per steps object (fast path: no hashing; the entry keeps the object
        alive so its id is not reused), then per steps value (tickets parsed one by one
        give equal copies)."""
        entry = self._shapes.get(id(steps))
        if entry is None:
            shape = self._by_value.get(steps)
            if shape is None:
                shape = self._by_value[steps] = self._new_shape(steps)
            entry = self._shapes[id(steps)] = (steps, shape)
        return entry[1]

    def _new_shape(self, steps: tuple[Step, ...]) -> _Shape:
        conditions = tuple(step.conditions for step in steps)
        token = self._tokens.setdefault(conditions, len(self._tokens))
        return _Shape(token, caller_attributes_used(steps), tuple(step.expiry for step in steps))

    def situation(self, call: CallView) -> tuple[Hashable, _Shape]:
        shape = self._shape(call.steps)
        values = tuple(call.attributes.get(name) for name in shape.attributes)
        return (call.queue, shape.token, frozenset(call.required_skills.items()), values), shape

    def phases(self, call: CallView) -> tuple[Hashable, tuple[Phase, ...]]:
        situation, shape = self.situation(call)
        key = (situation, shape.expiries)
        phases = self._phases.get(key)
        if phases is None:
            phases = self._phases[key] = build_phases(call.steps, self._possible_steps(call, situation))
        return situation, phases

    def _possible_steps(self, call: CallView, situation: Hashable) -> tuple[bool, ...]:
        possible = self._possible.get(situation)
        if possible is None:
            queue_agents = self.logged_in.get(call.queue, ())
            possible = self._possible[situation] = possible_steps(call, queue_agents, self.bands)
        return possible

    def ranked(self, call: CallView, now: float) -> _Ranked:
        situation, phases = self.phases(call)
        active = phase_at(phases, call.enqueued_at, now).step
        key = (situation, active, call.queue_skill)
        ranked = self._ranked.get(key)
        if ranked is None:
            candidates = self.available.get(call.queue, ())
            ranked = self._ranked[key] = _Ranked(rank_agents(call, candidates, active, self.bands))
        return ranked


def _check_unique(ids: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ModelError(f"assign: duplicate {what} id {item!r}")
        seen.add(item)


def _free_counts(batch: _Batch) -> tuple[dict[str, int], int]:
    per_queue = {queue: len(agents) for queue, agents in batch.available.items()}
    total = len({agent.id for agents in batch.available.values() for agent in agents})
    return per_queue, total


def assign(calls: Sequence[CallView], agents: Sequence[AgentView], now: float,
           *, bands: AgeBands = DEFAULT_AGE_BANDS) -> list[Pair]:
    """Offers to make now: ``(call_id, agent_id)`` pairs, in the order calls were served.

    ``calls``: the waiting calls; ``agents``: every agent (logged-in ones decide which steps
    are skipped; available ones can be offered a call). Raises ModelError on duplicate ids.
    """
    _check_unique((call.id for call in calls), "call")
    _check_unique((agent.id for agent in agents), "agent")
    batch = _Batch(agents, bands)
    free, total_free = _free_counts(batch)
    taken: set[str] = set()
    pairs: list[Pair] = []
    for call in sorted(calls, key=call_order_key):
        if total_free == 0:
            break
        if not free.get(call.queue):
            continue
        agent = batch.ranked(call, now).first_free(taken)
        if agent is None:
            continue
        taken.add(agent.id)
        pairs.append((call.id, agent.id))
        total_free -= 1
        for queue in agent.queues:
            free[queue] -= 1
    logger.debug("assign at %.3f: %d calls, %d agents -> %d offers", now, len(calls), len(agents), len(pairs))
    return pairs


def next_wakeup(calls: Iterable[CallView], agents: Sequence[AgentView], now: float,
                *, bands: AgeBands = DEFAULT_AGE_BANDS) -> float | None:
    """The earliest time after ``now`` when some call's active step changes, or None.

    Valid while the set of logged-in agents stays the same (a login or logout can make a
    step possible or impossible; the dispatcher recomputes on every agent change anyway).
    """
    batch = _Batch(agents, bands)
    times = (phase_change_after(batch.phases(call)[1], call.enqueued_at, now) for call in calls)
    return min((t for t in times if t is not None), default=None)
