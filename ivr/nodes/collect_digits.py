"""``collect_digits``: read a number (account, card, PIN) into a variable, with checks.

Fields: ``variable``, ``min_digits`` (1), ``max_digits``, ``terminator`` ("#"),
``timeout`` (5 s to the first key), ``inter_digit_timeout`` (3 s), ``pattern`` (regular
expression the whole number must match), ``luhn`` (card numbers), ``secret`` (the journey
keeps only the last 4 digits), ``retries`` (2) with ``no_input`` / ``invalid`` prompts,
then ``fallback``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields, Prompt
from ivr.nodes.inputs import Answer, ask


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def mask(digits: str) -> str:
    return "*" * max(0, len(digits) - 4) + digits[-4:]


@dataclass
class CollectDigitsNode(Node):
    type = "collect_digits"
    takes_input = True
    id: str
    prompt: Prompt
    variable: str
    max_digits: int
    next: str
    fallback: str
    min_digits: int = 1
    terminator: str | None = "#"
    timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    pattern: str | None = None
    luhn: bool = False
    secret: bool = False
    retries: int = 2
    no_input: Prompt | None = None
    invalid: Prompt | None = None

    @classmethod
    def parse(cls, f: Fields) -> CollectDigitsNode:
        node = cls(f.node_id, f.prompt("prompt", required=True) or Prompt(text="?"),
                   f.text("variable", required=True) or "", f.integer("max_digits", 0, minimum=1, maximum=32),
                   f.target("next") or "", f.target("fallback") or "",
                   f.integer("min_digits", 1, minimum=1, maximum=32), _terminator(f),
                   f.number("timeout", 5.0, minimum=0.5), f.number("inter_digit_timeout", 3.0, minimum=0.5),
                   _pattern(f), f.boolean("luhn", False), f.boolean("secret", False),
                   f.integer("retries", 2, minimum=0, maximum=10), f.prompt("no_input"), f.prompt("invalid"))
        if not f.has("max_digits"):
            f.error("missing max_digits")
        if node.min_digits > node.max_digits > 0:
            f.error(f"min_digits {node.min_digits} is above max_digits {node.max_digits}")
        return node

    def targets(self) -> list[str]:
        return [self.next, self.fallback]

    def prompts(self) -> list[Prompt]:
        return [p for p in (self.prompt, self.no_input, self.invalid) if p]

    def valid(self, digits: str) -> bool:
        """Pure check of a keyed-in number against length, pattern and Luhn."""
        if not digits.isdigit() or not self.min_digits <= len(digits) <= self.max_digits:
            return False
        if self.pattern and re.fullmatch(self.pattern, digits) is None:
            return False
        return not self.luhn or luhn_ok(digits)

    async def run(self, ctx: CallContext) -> Step:
        retry_prompt: Prompt | None = None
        for _attempt in range(self.retries + 1):
            answer = await self._ask(ctx, retry_prompt)
            if answer.kind == "dtmf" and self.valid(answer.value):
                ctx.variables[self.variable] = answer.value
                return self.next
            retry_prompt = self.invalid if answer.heard else self.no_input
        return self.fallback

    async def _ask(self, ctx: CallContext, retry_prompt: Prompt | None) -> Answer:
        answer = await ask(ctx, self.id, await ctx.sounds(retry_prompt, self.prompt),
                           max_digits=self.max_digits, timeout=self.timeout,
                           terminator=self.terminator, inter_digit_timeout=self.inter_digit_timeout)
        if self.secret and answer.value:
            ctx.inputs[-1]["value"] = mask(answer.value)
        return answer


def _terminator(f: Fields) -> str | None:
    value = f.get("terminator", "#")
    if value is not None and value not in ("#", "*"):
        f.error(f"terminator must be '#', '*' or null, got {value!r}")
        return "#"
    return value


def _pattern(f: Fields) -> str | None:
    value = f.text("pattern")
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        f.error(f"pattern is not a regular expression: {exc}")
        return None
    return value
