"""``hangup``: optionally say goodbye, then end the call."""
from __future__ import annotations

from dataclasses import dataclass

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields, Prompt
from ivr.outcome import Outcome


@dataclass
class HangupNode(Node):
    type = "hangup"
    id: str
    prompt: Prompt | None = None

    @classmethod
    def parse(cls, f: Fields) -> HangupNode:
        return cls(f.node_id, f.prompt("prompt"))

    def prompts(self) -> list[Prompt]:
        return [self.prompt] if self.prompt else []

    async def run(self, ctx: CallContext) -> Step:
        if self.prompt:
            await ctx.driver.play(await ctx.sounds(self.prompt), barge_in=False)
        await ctx.driver.hangup()
        return Outcome("hangup", reason="flow")
