"""Does one agent meet one routing condition, step or hard skill minimum of a call?

A missing value never matches: ``None == None`` is not a match, an unknown band is not
adjacent to anything, a caller without a language matches no agent's languages.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from acd.model import (
    AdjacentBand,
    AgeBands,
    AgentView,
    AttributeEquals,
    CallView,
    Condition,
    LanguageMatch,
    SkillAtLeast,
    Step,
    caller_attribute_of,
)

logger = logging.getLogger(__name__)


def condition_holds(condition: Condition, attributes: Mapping[str, Any], agent: AgentView, bands: AgeBands) -> bool:
    """True if ``agent`` meets ``condition`` for a caller with ``attributes``."""
    if isinstance(condition, SkillAtLeast):
        return agent.skills.get(condition.skill, 0) >= condition.level
    if isinstance(condition, AttributeEquals):
        value = attributes.get(condition.caller_attr)
        return value is not None and value == agent.attribute(condition.agent_attr)
    if isinstance(condition, AdjacentBand):
        return bands.same_or_adjacent(attributes.get(condition.attr), agent.attribute(condition.attr))
    if isinstance(condition, LanguageMatch):
        value = attributes.get(condition.attr)
        return value is not None and value in agent.languages
    raise TypeError(f"not a routing condition: {condition!r}")


def step_holds(step: Step, attributes: Mapping[str, Any], agent: AgentView, bands: AgeBands) -> bool:
    """True if ``agent`` meets every condition of ``step``."""
    return all(condition_holds(c, attributes, agent, bands) for c in step.conditions)


def meets_required(required_skills: Mapping[str, int], agent: AgentView) -> bool:
    """True if ``agent`` has every hard minimum skill level."""
    return all(agent.skills.get(skill, 0) >= level for skill, level in required_skills.items())


def can_serve(call: CallView, agent: AgentView) -> bool:
    """Logged in, member of the call's queue and above the call's hard minimums."""
    return agent.logged_in and call.queue in agent.queues and meets_required(call.required_skills, agent)


def caller_attributes_used(steps: Iterable[Step]) -> tuple[str, ...]:
    """The caller attributes the steps read, sorted (what a call's routing depends on)."""
    names = {caller_attribute_of(c) for step in steps for c in step.conditions}
    return tuple(sorted(name for name in names if name is not None))
