"""``transfer``: end the flow by sending the call to another destination (blind transfer).

``target`` is an Asterisk dial string or extension (``PJSIP/1001``, ``1001``); it may use
{variables}.  The Stasis app / AGI handler carries the transfer out.
"""
from __future__ import annotations

from dataclasses import dataclass

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields, Prompt
from ivr.outcome import Outcome


@dataclass
class TransferNode(Node):
    type = "transfer"
    id: str
    target: str
    prompt: Prompt | None = None

    @classmethod
    def parse(cls, f: Fields) -> TransferNode:
        return cls(f.node_id, f.text("target", required=True) or "", f.prompt("prompt"))

    def prompts(self) -> list[Prompt]:
        return [self.prompt] if self.prompt else []

    async def run(self, ctx: CallContext) -> Step:
        if self.prompt:
            await ctx.driver.play(await ctx.sounds(self.prompt), barge_in=False)
        return Outcome("transfer", target=ctx.format(self.target))
