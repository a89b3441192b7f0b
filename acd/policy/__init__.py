"""Pure routing policy: who gets which call. No I/O and no clock: ``now`` is a parameter.

Semantics are documented in the modules: :mod:`acd.policy.timeline` (step clock and
skipping), :mod:`acd.policy.select` (eligibility and orderings), :mod:`acd.policy.assign`
(batch matching and timers).
"""
from acd.policy.assign import assign, next_wakeup
from acd.policy.conditions import can_serve, condition_holds, meets_required, step_holds
from acd.policy.select import (
    agent_order_key,
    best_agent,
    best_call,
    call_order_key,
    eligible_agents,
    eligible_calls,
    is_eligible,
    matched_step,
)
from acd.policy.timeline import Phase, activation_times, active_step

__all__ = [
    "Phase",
    "activation_times",
    "active_step",
    "agent_order_key",
    "assign",
    "best_agent",
    "best_call",
    "call_order_key",
    "can_serve",
    "condition_holds",
    "eligible_agents",
    "eligible_calls",
    "is_eligible",
    "matched_step",
    "meets_required",
    "next_wakeup",
    "step_holds",
]
