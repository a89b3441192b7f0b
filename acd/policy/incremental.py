"""Incremental routing: the answer of :func:`acd.policy.assign`, kept up to date event by event.

:func:`assign` looks at every waiting call and every agent; at 10,000 waiting calls that is
hundreds of milliseconds per event.  :class:`IncrementalRouter` keeps the same matching
with work bounded by what an event touched.

Invariant between events: no waiting call has an eligible free agent (every offer the policy
would make has been made and handed out).  An event can only create eligible pairs that
involve what it changed, so only those are examined:

* a call enters, or its active step advances (a heap of step-change times): that call looks
  at the free agents of its queue;
* an agent becomes free: waiting calls are kept in *groups* of everything their eligibility
  and order depend on except their age (queue, steps, hard minimums, the caller attributes
  the steps read, priority, queue skill).  Inside a group an older call has a step at least
  as relaxed as a younger one, so it is eligible for every agent the younger one is: only
  group heads are examined, and a group whose head finds no agent is done;
* a login or logout (or a phone that unregisters) changes which steps are skipped: the groups
  of that agent's queues re-plan their step times, and a group whose plan changed is looked
  at as a whole (still head first).

Matching is assign's greedy, simulated lazily: candidate calls in priority-then-age order
(then id), each taking its best eligible free agent (earliest matched step, longest idle,
proficiency, id).  The property test checks that the answer equals :func:`assign` on random
event sequences; ``touched`` counts the calls examined (the bounded-work test reads it).

Pure: no I/O and no clock; ``now`` is a parameter of every event.
"""
from __future__ import annotations

import heapq
import itertools
import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator
from typing import NamedTuple

from sortedcontainers import SortedList

from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentView, CallView, ModelError
from acd.policy.conditions import caller_attributes_used
from acd.policy.select import agent_order_key, call_order_key, eligible_match
from acd.policy.timeline import Phase, build_phases, phase_at, phase_change_after, possible_steps

logger = logging.getLogger(__name__)

Pair = tuple[str, str]
PLANS_KEPT = 512      # step plans of emptied groups kept for the next call of the same group


def group_key(call: CallView, steps: Hashable = None, used: tuple[str, ...] | None = None) -> Hashable:
    """What a call's eligibility and order depend on, except its queue-entry time.
    ``steps``: a stand-in for ``call.steps`` equal for equal steps (the router's number for
    them: hashing a key then calls no ``Step.__hash__``); ``used``: the caller attributes the
    steps read, when the caller has them already."""
    if used is None:
        used = caller_attributes_used(call.steps)
    values = tuple(call.attributes.get(name) for name in used)
    return (call.queue, call.priority, call.steps if steps is None else steps,
            frozenset(call.required_skills.items()), values, call.queue_skill)


class _StepsInfo(NamedTuple):
    steps: tuple                  # held, so that its id() is not reused while it is known
    number: int                   # the same for equal steps (the group key's stand-in)
    used: tuple[str, ...]         # the caller attributes they read


class _Group:
    """Waiting calls of one group, oldest first, and their shared step plan."""

    __slots__ = ("key", "sample", "calls", "possible", "phases")

    def __init__(self, key: Hashable, sample: CallView) -> None:
        self.key = key
        self.sample = sample                    # any member: the group's steps and attributes
        self.calls: SortedList = SortedList()   # (enqueued_at, call id)
        self.possible: tuple[bool, ...] | None = None
        self.phases: tuple[Phase, ...] = ()

    def plan(self) -> tuple[tuple[bool, ...] | None, tuple[Phase, ...]]:
        return self.possible, self.phases

    def replan(self, logged_in: Iterable[AgentView], bands: AgeBands) -> bool:
        """Recompute which steps are possible; True if the plan changed."""
        possible = possible_steps(self.sample, logged_in, bands)
        if possible == self.possible:
            return False
        self.possible = possible
        self.phases = build_phases(self.sample.steps, possible)
        return True


def _first_possible(possible: tuple[bool, ...] | None, steps: int) -> int:
    """The earliest step an agent can match under a plan (``steps``: none, the final phase)."""
    if possible is None:
        return 0
    return next((index for index, ok in enumerate(possible) if ok), steps)


def _same_profile(old: AgentView, new: AgentView, *, queues: bool = True) -> bool:
    """Same skills and attributes (and queues): what eligibility reads besides the state."""
    return (old.skills == new.skills and old.age_band == new.age_band and old.languages == new.languages
            and old.attributes == new.attributes and (not queues or old.queues == new.queues))


class _Stream:
    """Candidate calls in one order: a group's members oldest first, or a single call.
    ``pool`` None means any free agent of the queue; else only those agent ids."""

    __slots__ = ("calls", "pool")

    def __init__(self, calls: Iterator[CallView], pool: set[str] | None) -> None:
        self.calls = calls
        self.pool = pool


class IncrementalRouter:
    """Waiting calls and agents, with the offers that each event makes possible.

    Every mutating method takes ``now`` and returns the offers ``(call_id, agent_id)`` made
    at that instant, in the order calls were served.  An offered call leaves the router and
    its agent is marked RINGING; hand them back with :meth:`add_call` / :meth:`set_agent`
    if the offer fails.
    """

    def __init__(self, *, bands: AgeBands = DEFAULT_AGE_BANDS) -> None:
        self.bands = bands
        self.agents: dict[str, AgentView] = {}
        self._free: dict[str, dict[str, AgentView]] = defaultdict(dict)       # queue -> id -> view
        self._free_order: dict[str, SortedList] = defaultdict(SortedList)    # queue -> (idle_since, id)
        self._logged_in: dict[str, dict[str, AgentView]] = defaultdict(dict)
        self._calls: dict[str, tuple[CallView, Hashable]] = {}
        self._groups: dict[Hashable, _Group] = {}
        self._queue_groups: dict[str, set[Hashable]] = defaultdict(set)
        # a queue's logins changed this many times; the step plan of a group that emptied,
        # valid while its queue's count is the one it was made at (a new call of the same
        # group, the common case when the line is short, re-plans nothing)
        self._logins_changed: dict[str, int] = defaultdict(int)
        self._plans: dict[Hashable, tuple[int, tuple[tuple[bool, ...] | None, tuple[Phase, ...]]]] = {}
        self._timers: list[tuple[float, int, str]] = []   # (when, seq, call id)
        self._armed: dict[str, int] = {}                     # call id -> seq of its live timer
        self._seq = itertools.count()
        # A queue's calls share one steps tuple: known by its id(), a new call's group key
        # reads no condition and hashes no step (D38).  Equal steps get one number, never
        # reused for others (forgotten only when no group or kept plan can hold it).
        self._steps_by_id: dict[int, _StepsInfo] = {}
        self._steps_numbers: dict[tuple, int] = {}
        self._step_serial = itertools.count()
        self.touched = 0          # calls examined since construction (work counter)

    # -- queries ------------------------------------------------------------------------
    def waiting(self) -> list[CallView]:
        return [call for call, _ in self._calls.values()]

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._calls

    def next_wakeup(self) -> float | None:
        """When some waiting call's active step changes next, or None."""
        while self._timers and not self._timer_valid(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # -- events -------------------------------------------------------------------------
    def add_call(self, call: CallView, now: float) -> list[Pair]:
        if call.id in self._calls:
            raise ModelError(f"incremental router: call {call.id!r} is already waiting")
        group = self._join(call)
        self._arm(call, group, now)
        return self._match(now, dirty_calls={call.id: call})

    def remove_call(self, call_id: str) -> None:
        """The call left the queue (answered elsewhere, hung up, overflowed)."""
        entry = self._calls.pop(call_id, None)
        if entry is None:
            return
        call, key = entry
        self._armed.pop(call_id, None)
        group = self._groups[key]
        group.calls.discard((call.enqueued_at, call.id))
        if not group.calls:
            del self._groups[key]
            self._queue_groups[call.queue].discard(key)
            if len(self._plans) >= PLANS_KEPT:
                self._plans.clear()
            self._plans[key] = (self._logins_changed[call.queue], group.plan())

    def set_agent(self, agent: AgentView, now: float) -> list[Pair]:
        """An agent appeared or changed (state, idle time, skills, queues)."""
        old = self.agents.get(agent.id)
        self._unindex(old)
        self.agents[agent.id] = agent
        self._index(agent)
        replanned = self._replan_if_login_changed(old, agent, now)
        freed = {agent.id} if agent.available and not (old is not None and old.available
                                                       and _same_profile(old, agent)) else set()
        return self._match(now, dirty_agents=freed, dirty_groups=replanned)

    def remove_agent(self, agent_id: str, now: float) -> list[Pair]:
        old = self.agents.pop(agent_id, None)
        self._unindex(old)
        replanned = self._replan_queues(old.queues, now) if old is not None and old.logged_in else set()
        return self._match(now, dirty_groups=replanned)

    def advance(self, now: float) -> list[Pair]:
        """Time passed: calls whose step relaxed may now take a free agent."""
        return self._match(now)

    # -- agents index -------------------------------------------------------------------
    def _index(self, agent: AgentView) -> None:
        for queue in agent.queues:
            if agent.logged_in:
                self._logged_in[queue][agent.id] = agent
            if agent.available:
                self._free[queue][agent.id] = agent
                self._free_order[queue].add((agent.idle_since, agent.id))

    def _unindex(self, agent: AgentView | None) -> None:
        if agent is None:
            return
        for queue in agent.queues:
            self._logged_in[queue].pop(agent.id, None)
            if self._free[queue].pop(agent.id, None) is not None:
                self._free_order[queue].discard((agent.idle_since, agent.id))

    def _replan_if_login_changed(self, old: AgentView | None, new: AgentView, now: float) -> set[Hashable]:
        was = frozenset(old.queues) if old is not None and old.logged_in else frozenset()
        now_in = frozenset(new.queues) if new.logged_in else frozenset()
        same = old is not None and _same_profile(old, new, queues=False)
        queues = (was ^ now_in) if same else (was | now_in)
        return self._replan_queues(queues, now)

    def _replan_queues(self, queues: Iterable[str], now: float) -> set[Hashable]:
        changed: set[Hashable] = set()
        for queue in queues:
            self._logins_changed[queue] += 1
            for key in self._queue_groups.get(queue, ()):
                group = self._groups[key]
                if group.replan(self._logged_in[queue].values(), self.bands):
                    changed.add(key)
                    for _, call_id in group.calls:
                        self._arm(self._calls[call_id][0], group, now)
        return changed

    # -- groups and step timers ---------------------------------------------------------
    def _join(self, call: CallView) -> _Group:
        info = self._steps_info(call.steps)
        key = group_key(call, info.number, info.used)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key, call)
            kept = self._plans.pop(key, None)
            if kept is not None and kept[0] == self._logins_changed[call.queue]:
                group.possible, group.phases = kept[1]
            else:
                group.replan(self._logged_in[call.queue].values(), self.bands)
            self._queue_groups[call.queue].add(key)
        group.calls.add((call.enqueued_at, call.id))
        self._calls[call.id] = (call, key)
        return group

    def _steps_info(self, steps: tuple) -> _StepsInfo:
        info = self._steps_by_id.get(id(steps))
        if info is not None and info.steps is steps:
            return info
        if len(self._steps_by_id) >= PLANS_KEPT:
            self._steps_by_id.clear()
        if len(self._steps_numbers) >= PLANS_KEPT and not self._groups:
            self._steps_numbers.clear()
            self._plans.clear()                 # (their keys hold the numbers forgotten)
        number = self._steps_numbers.get(steps)
        if number is None:
            number = self._steps_numbers[steps] = next(self._step_serial)
        info = self._steps_by_id[id(steps)] = _StepsInfo(steps, number, caller_attributes_used(steps))
        return info

    def _arm(self, call: CallView, group: _Group, now: float) -> None:
        """One live timer per call: the end of the step active at ``now``."""
        when = phase_change_after(group.phases, call.enqueued_at, now)
        if when is None:
            self._armed.pop(call.id, None)
            return
        seq = next(self._seq)
        self._armed[call.id] = seq
        heapq.heappush(self._timers, (when, seq, call.id))

    def _timer_valid(self, timer: tuple[float, int, str]) -> bool:
        return self._armed.get(timer[2]) == timer[1]

    def _due(self, now: float) -> dict[str, CallView]:
        """Calls whose active step changed at or before ``now`` (their timers re-armed)."""
        due: dict[str, CallView] = {}
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)
            if not self._timer_valid(timer):
                continue
            call, key = self._calls[timer[2]]
            due[call.id] = call
            self._arm(call, self._groups[key], now)
        return due

    # -- matching -----------------------------------------------------------------------
    def _match(self, now: float, *, dirty_calls: dict[str, CallView] | None = None,
               dirty_agents: set[str] | None = None,
               dirty_groups: set[Hashable] | None = None) -> list[Pair]:
        singles = self._due(now)
        singles.update(dirty_calls or {})
        streams = self._streams(singles, dirty_agents or set(), dirty_groups or set())
        return self._greedy(streams, set(singles), now)

    def _streams(self, singles: dict[str, CallView], freed: set[str],
                 regrouped: set[Hashable]) -> list[_Stream]:
        streams = [_Stream(iter((call,)), None) for call in singles.values()]
        freed_queues = {q for agent_id in freed for q in self.agents[agent_id].queues}
        keys = set(regrouped)
        for queue in freed_queues:
            keys.update(self._queue_groups.get(queue, ()))
        for key in keys:
            group = self._groups.get(key)
            if group is None:
                continue
            pool = None if key in regrouped else freed
            streams.append(_Stream(self._members(group, singles), pool))
        return streams

    def _members(self, group: _Group, skip: dict[str, CallView]) -> Iterator[CallView]:
        """The group's calls oldest first, robust to calls leaving while it is walked."""
        last = None
        while True:
            after = group.calls.irange(minimum=last, inclusive=(False, True)) if last else iter(group.calls)
            entry = next(after, None)
            if entry is None:
                return
            last = entry
            if entry[1] not in skip and entry[1] in self._calls:
                yield self._calls[entry[1]][0]

    def _greedy(self, streams: list[_Stream], singles: set[str], now: float) -> list[Pair]:
        heads: list[tuple[tuple, int, CallView]] = []
        for index, stream in enumerate(streams):
            self._push_next(heads, index, stream)
        pairs: list[Pair] = []
        while heads:
            _, index, call = heapq.heappop(heads)
            if call.id not in self._calls:          # taken through another stream already
                self._push_next(heads, index, streams[index])
                continue
            agent = self._best_agent(call, streams[index].pool, now)
            if agent is None:
                continue                            # nested eligibility: the stream is done
            self._take(call, agent)
            pairs.append((call.id, agent.id))
            self._push_next(heads, index, streams[index])
        return pairs

    def _push_next(self, heads: list, index: int, stream: _Stream) -> None:
        call = next(stream.calls, None)
        if call is not None:
            self.touched += 1
            heapq.heappush(heads, (call_order_key(call), index, call))

    def _best_agent(self, call: CallView, pool: set[str] | None, now: float) -> AgentView | None:
        free = self._free.get(call.queue)
        if not free:
            return None
        group = self._groups[self._calls[call.id][1]]
        active = phase_at(group.phases, call.enqueued_at, now).step
        if pool is not None:
            return self._best_of(call, (free[i] for i in pool if i in free), active, idle_order=False)
        return self._best_of(call, (free[i] for _, i in self._free_order[call.queue]), active,
                             idle_order=True, floor=_first_possible(group.possible, len(call.steps)))

    def _best_of(self, call: CallView, candidates: Iterable[AgentView], active: int, *,
                 idle_order: bool, floor: int = 0) -> AgentView | None:
        """The best eligible agent among ``candidates``.  ``idle_order``: they come longest
        idle first (the queue's free agents), so the walk stops at the first agent idle for
        less time than a best that matched step ``floor``, the earliest step any logged-in
        agent can satisfy (the group's plan): no later agent can come before it.  (A caller
        whose first steps nobody can meet, e.g. no age band, no longer walks every free
        agent (D36), nor are those steps evaluated for the agents it looks at (D38).)"""
        best, best_key = None, None
        for agent in candidates:
            if idle_order and best_key is not None and best_key[0] <= floor and agent.idle_since > best_key[1]:
                break
            matched = eligible_match(call, agent, active, self.bands, floor)
            if matched is None:
                continue
            key = agent_order_key(call, agent, matched)
            if best_key is None or key < best_key:
                best, best_key = agent, key
        return best

    def _take(self, call: CallView, agent: AgentView) -> None:
        self.remove_call(call.id)
        self._unindex(agent)
        ringing = agent.offered()
        self.agents[agent.id] = ringing
        self._index(ringing)
