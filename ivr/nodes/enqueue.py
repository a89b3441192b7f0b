"""``enqueue``: end the flow by handing the call to an ACD queue with its routing ticket."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields, Prompt
from ivr.outcome import Outcome

SKILL_LEVELS = range(1, 6)   # as acd.model (SKILL_MIN..SKILL_MAX)

# Call variables copied to the ticket for attribute matching (e.g. age band == agent's).
ROUTING_ATTRIBUTES = ("language", "age_band", "segment", "customer_name", "customer_known")


@dataclass
class EnqueueNode(Node):
    type = "enqueue"
    id: str
    queue: str
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    prompt: Prompt | None = None

    @classmethod
    def parse(cls, f: Fields) -> EnqueueNode:
        return cls(f.node_id, f.text("queue", required=True) or "",
                   f.integer("priority", 0, minimum=0, maximum=100),
                   _skills(f), _steps(f), f.prompt("prompt"))

    def prompts(self) -> list[Prompt]:
        return [self.prompt] if self.prompt else []

    async def run(self, ctx: CallContext) -> Step:
        if self.prompt:
            await ctx.driver.play(await ctx.sounds(self.prompt), barge_in=False)
        attributes = {k: ctx.variables[k] for k in ROUTING_ATTRIBUTES if k in ctx.variables}
        return Outcome("enqueue", queue=self.queue, priority=self.priority,
                       skills=dict(self.skills), steps=[dict(s) for s in self.steps],
                       attributes=attributes)


def _skills(f: Fields) -> dict[str, int]:
    skills = {}
    for name, level in f.mapping("skills").items():
        if isinstance(level, bool) or not isinstance(level, int) or level not in SKILL_LEVELS:
            f.error(f"skill {name!r} needs a level 1..5, got {level!r}")
            continue
        skills[str(name)] = level
    return skills


def _steps(f: Fields) -> list[dict[str, Any]]:
    """Relaxation steps in the ACD's JSON form: ``{"conditions": [...], "expiry": s | null}``.

    Only the shape is checked here; the ACD validates the conditions when it takes the call.
    """
    steps = f.listing("steps")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or set(step) != {"conditions", "expiry"}:
            f.error(f"step {i} must be {{conditions, expiry}}")
            continue
        expiry = step["expiry"]
        if not isinstance(step["conditions"], list) or not all(
                isinstance(c, dict) and isinstance(c.get("kind"), str) for c in step["conditions"]):
            f.error(f"step {i} conditions must be a list of {{kind, ...}}")
        if expiry is not None and (isinstance(expiry, bool) or not isinstance(expiry, (int, float))
                                   or expiry <= 0):
            f.error(f"step {i} expiry must be seconds > 0 or null")
    return [s for s in steps if isinstance(s, dict)]
