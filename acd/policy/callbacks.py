"""Callback release and retry policy (pure: no I/O, no clock, ``now`` is passed in).

A pending callback is a call that waits without a caller on the line: it enters the same
matching as the live calls (:func:`acd.policy.assign.assign`) with its ORIGINAL queue-entry
time, priority, steps and caller attributes, so it is ordered among live callers exactly as
if the caller still held, never bumped.  :func:`release` returns the callbacks the matching
gave an agent to, which means, by the matching's order and maximality:

* never more callbacks than free eligible agents that no live caller ahead could take (a
  live caller ahead is matched first and takes the agent it is eligible for);
* among equal tickets, callbacks come out in entry order.

Guards applied before the matching, so an excluded callback never holds an agent back:

* a callback whose number is being dialled now (``dialling_numbers``) waits: never two calls
  to one number at once; of several due callbacks to one number only the first in line runs;
* a callback not yet due (retry delay, or a requested window) or already expired waits or is
  left to :func:`expired`.

:func:`after_attempt` applies the retry rules per outcome.
"""
from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentView, CallView, ModelError
from acd.policy.assign import assign
from acd.policy.select import call_order_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingCallback:
    """A pending callback as the policy sees it; times on the same clock as ``now``."""
    id: str
    number: str
    view: CallView                 # queue, priority, ORIGINAL entry time, attributes, steps
    expires_at: float
    not_before: float | None = None

    def due(self, now: float) -> bool:
        return now < self.expires_at and (self.not_before is None or self.not_before <= now)


def due_callbacks(pending: Iterable[PendingCallback], now: float,
                  dialling_numbers: frozenset[str] = frozenset()) -> list[PendingCallback]:
    """The callbacks that may be dialled now: due, number not being dialled, first per number."""
    chosen: dict[str, PendingCallback] = {}
    for callback in sorted(pending, key=lambda cb: call_order_key(cb.view)):
        if callback.due(now) and callback.number not in dialling_numbers:
            chosen.setdefault(callback.number, callback)
    return list(chosen.values())


def assign_with_callbacks(live: Sequence[CallView], pending: Sequence[PendingCallback],
                          agents: Sequence[AgentView], now: float, *,
                          dialling_numbers: frozenset[str] = frozenset(),
                          bands: AgeBands = DEFAULT_AGE_BANDS) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """One matching of live calls and due callbacks: ``(live pairs, callback pairs)``, each
    ``(id, agent_id)`` in the order served.  Raises ModelError if a callback's view id
    equals a live call's id."""
    due = due_callbacks(pending, now, dialling_numbers)
    by_view = {callback.view.id: callback.id for callback in due}
    if by_view.keys() & {call.id for call in live}:
        raise ModelError("release: a callback and a live call share an id")
    pairs = assign([*live, *(callback.view for callback in due)], agents, now, bands=bands)
    released = [(by_view[call_id], agent_id) for call_id, agent_id in pairs if call_id in by_view]
    if released:
        logger.debug("release at %.3f: %d due callbacks, %d live calls -> %d dialled", now, len(due),
                     len(live), len(released))
    return [pair for pair in pairs if pair[0] not in by_view], released


def release(live: Sequence[CallView], pending: Sequence[PendingCallback], agents: Sequence[AgentView],
            now: float, *, dialling_numbers: frozenset[str] = frozenset(),
            bands: AgeBands = DEFAULT_AGE_BANDS) -> list[tuple[str, str]]:
    """``(callback_id, agent_id)`` pairs to dial now, first in line first.

    ``live``: the live calls waiting (not ringing an agent); ``agents``: every agent."""
    return assign_with_callbacks(live, pending, agents, now, dialling_numbers=dialling_numbers,
                                 bands=bands)[1]


def expired(pending: Iterable[PendingCallback], now: float) -> list[str]:
    """Ids of callbacks whose expiry has passed."""
    return [callback.id for callback in pending if now >= callback.expires_at]


def callbacks_ahead(call: CallView, pending: Iterable[PendingCallback]) -> int:
    """How many pending callbacks of the call's queue are ahead of it in line (for the
    position announcement): the same order as the matching, priority then entry time."""
    mine = call_order_key(call)
    return sum(1 for callback in pending
               if callback.view.queue == call.queue and call_order_key(callback.view) < mine)


# ---------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryRules:
    """``delays``: outcome -> seconds before the next attempt, None = never retried (e.g. an
    invalid number); an outcome missing from it is not retried either.  ``not_counted``:
    outcomes that are not the customer's attempts (the agent declined): tried again at once.
    ``max_attempts``: customer attempts in all."""
    max_attempts: int = 3
    delays: Mapping[Hashable, float | None] = field(default_factory=dict)
    not_counted: frozenset = frozenset()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ModelError(f"retry rules: max_attempts must be >= 1, got {self.max_attempts!r}")
        for outcome, delay in self.delays.items():
            if delay is not None and delay < 0:
                raise ModelError(f"retry rules: delay for {outcome!r} must be >= 0, got {delay!r}")


@dataclass(frozen=True)
class RetryDecision:
    retry_at: float | None         # None: close the callback as failed
    why: str


def after_attempt(rules: RetryRules, outcome: Hashable, attempts_done: int, now: float,
                  expires_at: float) -> RetryDecision:
    """What follows an attempt that did not connect the customer with an agent.

    ``attempts_done``: customer attempts so far, this one included if it counts."""
    if outcome in rules.not_counted:
        return RetryDecision(now, f"{_name(outcome)}: not a customer attempt, next agent")
    delay = rules.delays.get(outcome)
    if delay is None:
        return RetryDecision(None, f"{_name(outcome)}: not retried")
    if attempts_done >= rules.max_attempts:
        return RetryDecision(None, f"{_name(outcome)}: {attempts_done} of {rules.max_attempts} attempts used")
    if now + delay >= expires_at:
        return RetryDecision(None, f"{_name(outcome)}: the next try would be after expiry")
    return RetryDecision(now + delay, f"{_name(outcome)}: retry in {delay:.0f}s "
                                      f"(attempt {attempts_done + 1} of {rules.max_attempts})")


def _name(outcome: Hashable) -> str:
    return str(getattr(outcome, "value", outcome))
