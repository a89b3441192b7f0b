"""``say``: play a prompt (TTS text with {variables}, or an audio file), then go on."""
from __future__ import annotations

from dataclasses import dataclass

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields, Prompt, parse_prompt


@dataclass
class SayNode(Node):
    type = "say"
    id: str
    prompt: Prompt
    next: str
    barge_in: bool = True

    @classmethod
    def parse(cls, f: Fields) -> SayNode:
        prompt = _prompt(f)
        return cls(f.node_id, prompt or Prompt(text="?"), f.target("next") or "",
                   f.boolean("barge_in", True))

    def targets(self) -> list[str]:
        return [self.next]

    def prompts(self) -> list[Prompt]:
        return [self.prompt]

    async def run(self, ctx: CallContext) -> Step:
        if self.barge_in and ctx.pending_digit is not None:
            return self.next   # the caller is typing ahead: do not make them listen
        digit = await ctx.driver.play(await ctx.sounds(self.prompt), barge_in=self.barge_in)
        if self.barge_in and digit:
            ctx.pending_digit = digit
        return self.next


def _prompt(f: Fields) -> Prompt | None:
    """``text`` or ``audio`` directly on the node, or a ``prompt`` object."""
    if f.has("prompt"):
        return f.prompt("prompt")
    text, audio = f.get("text"), f.get("audio")
    if text is None and audio is None:
        f.error("say needs text, audio or prompt")
        return None
    return parse_prompt({"text": text} if audio is None else {"audio": audio}, "text", f)
