"""Queue statistics: Erlang C staffing figures, estimated wait, and KPIs from call facts.

Pure functions, no I/O. Times are in seconds unless said otherwise; for the Erlang C
functions any time unit works as long as arrival rate, handle time and target share it.

Erlang C (M/M/N, callers never abandon), with offered traffic A = arrival_rate x AHT
erlangs and N agents:

* P(wait) = C(N, A), computed with the stable Erlang B recursion
  B(0) = 1, B(n) = A B(n-1) / (n + A B(n-1)), then C = N B / (N - A (1 - B)).
* service level for target t: SL(t) = 1 - C e^{-(N - A) t / AHT}.
* average speed of answer: ASA = C AHT / (N - A).

When N <= A the queue grows without bound: P(wait) = 1, SL = 0, ASA = infinity.
"""
from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean

logger = logging.getLogger(__name__)


class StatsError(ValueError):
    """Invalid input to a statistics function; ``code`` is a stable id."""

    code = "acd-stats-invalid"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise StatsError(message)


def _check_non_negative(value: float, name: str) -> None:
    _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0,
             f"{name}: expected a finite number >= 0, got {value!r}")


def _check_agents(agents: int) -> None:
    _require(isinstance(agents, int) and not isinstance(agents, bool) and agents >= 0,
             f"agents: expected an integer >= 0, got {agents!r}")


# ---------------------------------------------------------------- Erlang C


def erlang_b(traffic: float, agents: int) -> float:
    """Blocking probability of ``traffic`` erlangs offered to ``agents`` servers (Erlang B)."""
    _check_non_negative(traffic, "traffic")
    _check_agents(agents)
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = traffic * blocking / (n + traffic * blocking)
    return blocking


def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a call waits, ``traffic`` erlangs offered to ``agents`` agents."""
    _check_non_negative(traffic, "traffic")
    _check_agents(agents)
    if agents <= traffic:
        return 1.0
    if traffic == 0:
        return 0.0
    blocking = erlang_b(traffic, agents)
    return agents * blocking / (agents - traffic * (1.0 - blocking))


def _traffic(arrival_rate: float, aht: float) -> float:
    _check_non_negative(arrival_rate, "arrival_rate")
    _check_non_negative(aht, "aht")
    return arrival_rate * aht


def probability_of_wait(arrival_rate: float, aht: float, agents: int) -> float:
    """P(a call waits) for ``arrival_rate`` calls per time unit and ``aht`` time units each."""
    return erlang_c(_traffic(arrival_rate, aht), agents)


def service_level(arrival_rate: float, aht: float, agents: int, target: float) -> float:
    """Expected share of calls answered within ``target`` (same time unit as ``aht``)."""
    _check_non_negative(target, "target")
    traffic = _traffic(arrival_rate, aht)
    if agents <= traffic:
        return 0.0
    wait = erlang_c(traffic, agents)
    if wait == 0.0:
        return 1.0
    return 1.0 - wait * math.exp(-(agents - traffic) * target / aht)


def average_speed_of_answer(arrival_rate: float, aht: float, agents: int) -> float:
    """Expected wait over all calls (ASA), in the time unit of ``aht``; inf if overloaded."""
    traffic = _traffic(arrival_rate, aht)
    if agents <= traffic:
        return math.inf
    return erlang_c(traffic, agents) * aht / (agents - traffic)


# ---------------------------------------------------------------- estimated wait


def estimated_wait(position: int, recent_handle_times: Sequence[float], agents_staffed: int,
                   *, default_aht: float | None = None) -> float | None:
    """Seconds a caller at ``position`` (1 = next to be answered) should expect to wait.

    Assumes every staffed agent is busy (the caller is queued) and memoryless handle
    times: agents free up at a rate of ``agents_staffed / AHT``, and the caller needs
    ``position`` agents to free up, so EWT = position x AHT / agents_staffed.
    AHT is the mean of ``recent_handle_times``, else ``default_aht``. None when unknown:
    no agent staffed, or no handle time and no default.
    """
    _require(isinstance(position, int) and not isinstance(position, bool) and position >= 1,
             f"position: expected an integer >= 1, got {position!r}")
    _check_agents(agents_staffed)
    for value in recent_handle_times:
        _check_non_negative(value, "recent_handle_times item")
    aht = fmean(recent_handle_times) if recent_handle_times else default_aht
    if aht is None or agents_staffed == 0:
        return None
    _check_non_negative(aht, "default_aht")
    return position * aht / agents_staffed


# ---------------------------------------------------------------- KPIs from call facts


class AbandonRule(enum.Enum):
    """How calls abandoned within the service-level target count in the service level.

    COUNT_AGAINST (default, strictest): every offered call is in the denominator; an
    abandon never meets the target. SL = answered_in_target / offered.
    EXCLUDE: abandons within the target leave the denominator (the caller hung up before
    the centre could reasonably answer). SL = answered_in_target / (offered - abandoned_in_target).
    COUNT_AS_MET: abandons within the target count as meeting it.
    SL = (answered_in_target + abandoned_in_target) / offered.
    """

    COUNT_AGAINST = "count_against"
    EXCLUDE = "exclude"
    COUNT_AS_MET = "count_as_met"


@dataclass(frozen=True)
class CallFact:
    """What happened to one call in a queue (seconds, any epoch).

    Answered: ``answered_at`` set. Abandoned: the caller left while queued,
    ``abandoned_at`` set. Neither: still waiting. ``handle_time``: talk + hold + wrap-up
    of an answered call, when known.
    """

    enqueued_at: float
    answered_at: float | None = None
    abandoned_at: float | None = None
    handle_time: float | None = None

    def __post_init__(self) -> None:
        _require(self.answered_at is None or self.abandoned_at is None,
                 "call fact: a call cannot be both answered and abandoned")
        for name in ("answered_at", "abandoned_at"):
            moment = getattr(self, name)
            _require(moment is None or moment >= self.enqueued_at, f"call fact: {name} is before enqueued_at")
        _require(self.handle_time is None or self.answered_at is not None,
                 "call fact: handle_time needs answered_at")
        if self.handle_time is not None:
            _check_non_negative(self.handle_time, "call fact: handle_time")

    @property
    def wait(self) -> float | None:
        """Seconds in queue until answered or abandoned; None while waiting."""
        end = self.answered_at if self.answered_at is not None else self.abandoned_at
        return None if end is None else end - self.enqueued_at


@dataclass(frozen=True)
class QueueKpis:
    """Queue indicators; ratios and averages are None when their denominator is empty.

    offered = answered + abandoned, short abandons excluded. ``in_target`` means a wait
    <= target (inclusive). ``longest_wait`` covers answered, abandoned (short ones too)
    and, when ``now`` was given, still-waiting calls.
    """

    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    waiting: int
    answered_in_target: int
    abandoned_in_target: int
    service_level: float | None
    abandon_rate: float | None
    asa: float | None
    aht: float | None
    longest_wait: float | None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _service_level(answered_in: int, abandoned_in: int, offered: int, rule: AbandonRule) -> float | None:
    if rule is AbandonRule.EXCLUDE:
        return _ratio(answered_in, offered - abandoned_in)
    if rule is AbandonRule.COUNT_AS_MET:
        return _ratio(answered_in + abandoned_in, offered)
    return _ratio(answered_in, offered)


def _longest_wait(facts: Sequence[CallFact], now: float | None) -> float | None:
    waits = [fact.wait for fact in facts if fact.wait is not None]
    if now is not None:
        waits += [max(0.0, now - fact.enqueued_at) for fact in facts if fact.wait is None]
    return max(waits, default=None)


def queue_kpis(facts: Iterable[CallFact], target: float, *, short_abandon: float = 0.0,
               abandon_rule: AbandonRule = AbandonRule.COUNT_AGAINST, now: float | None = None) -> QueueKpis:
    """KPIs over ``facts`` for a service-level ``target`` in seconds.

    ``short_abandon``: abandons with a wait strictly under this many seconds are ghost
    calls, counted only in ``short_abandoned`` (0 = none). ``abandon_rule``: see
    :class:`AbandonRule`. ``now``: include still-waiting calls in ``longest_wait``.
    """
    _check_non_negative(target, "target")
    _check_non_negative(short_abandon, "short_abandon")
    facts = list(facts)
    answered = [f for f in facts if f.answered_at is not None]
    all_abandoned = [f for f in facts if f.abandoned_at is not None]
    abandoned = [f for f in all_abandoned if f.wait >= short_abandon]
    answered_in = sum(1 for f in answered if f.wait <= target)
    abandoned_in = sum(1 for f in abandoned if f.wait <= target)
    offered = len(answered) + len(abandoned)
    handle_times = [f.handle_time for f in answered if f.handle_time is not None]
    return QueueKpis(
        offered=offered,
        answered=len(answered),
        abandoned=len(abandoned),
        short_abandoned=len(all_abandoned) - len(abandoned),
        waiting=len(facts) - len(answered) - len(all_abandoned),
        answered_in_target=answered_in,
        abandoned_in_target=abandoned_in,
        service_level=_service_level(answered_in, abandoned_in, offered, abandon_rule),
        abandon_rate=_ratio(len(abandoned), offered),
        asa=fmean(f.wait for f in answered) if answered else None,
        aht=fmean(handle_times) if handle_times else None,
        longest_wait=_longest_wait(facts, now),
    )
