"""Asking the caller something: prompt with barge-in, then keys or (when possible) speech."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from ivr.driver import DTMF, Recognition, can_listen
from ivr.nodes.base import CallContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    kind: str                      # "dtmf" | "speech" | "timeout"
    value: str = ""
    confidence: float | None = None
    timing: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def heard(self) -> bool:
        return self.kind != "timeout"


NO_ANSWER = Answer("timeout")


async def ask(ctx: CallContext, node_id: str, sounds: list[str], *, max_digits: int,
              timeout: float, terminator: str | None = None, grammar: Sequence[str] = (),
              inter_digit_timeout: float = 3.0) -> Answer:
    """Play ``sounds`` and return what the caller answered; the answer is recorded."""
    answer = await _ask(ctx, sounds, max_digits, timeout, terminator, grammar,
                        inter_digit_timeout)
    ctx.record(node_id, answer.kind, answer.value, answer.confidence, answer.timing)
    return answer


async def _ask(ctx: CallContext, sounds: list[str], max_digits: int, timeout: float,
               terminator: str | None, grammar: Sequence[str],
               inter_digit_timeout: float) -> Answer:
    first = ctx.take_pending_digit()
    if first is None and grammar and ctx.speech and can_listen(ctx.driver):
        heard = await ctx.driver.listen(list(grammar), timeout=timeout, barge_in_sounds=sounds,
                                        language=ctx.language)
        if isinstance(heard, Recognition):
            return Answer("speech", heard.text, heard.confidence, heard.timing)
        if not isinstance(heard, DTMF) or not heard.digits:
            return NO_ANSWER
        first = heard.digits[:1]
    elif first is None and sounds:
        first = await ctx.driver.play(sounds, barge_in=True)
    digits = await ctx.driver.read_digits(max_digits=max_digits, timeout=timeout,
                                          terminator=terminator, first=first,
                                          inter_digit_timeout=inter_digit_timeout)
    return Answer("dtmf", digits, 1.0) if digits else NO_ANSWER
