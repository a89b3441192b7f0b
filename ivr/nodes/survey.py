"""``survey``: a 0-10 score (NPS) by keypad or voice, stored in a variable.

Keys: one or two digits then "#" (or wait); ``0``..``10``.  Speech: the numbers as words
(Korean 영..십, English zero..ten, or ``phrases`` given as a list of 11 words per
language).  Out of range or nothing: ``retries`` re-prompts, then ``next`` without a score.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.choices import language_matches
from ivr.nodes.fields import Fields, Prompt
from ivr.nodes.inputs import Answer, ask

NUMBER_WORDS = {
    "ko": ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구", "십"),
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
}


@dataclass
class SurveyNode(Node):
    type = "survey"
    takes_input = True
    id: str
    prompt: Prompt
    next: str
    variable: str = "nps"
    question: str = "nps"
    retries: int = 1
    timeout: float = 6.0
    invalid: Prompt | None = None
    thanks: Prompt | None = None
    words: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(NUMBER_WORDS))
    min_confidence: float = 0.5
    speech: bool = True        # False: keys only (a menu's "speech" flag, the same meaning)

    @classmethod
    def parse(cls, f: Fields) -> SurveyNode:
        return cls(f.node_id, f.prompt("prompt", required=True) or Prompt(text="?"),
                   f.target("next") or "", f.text("variable", default="nps") or "nps",
                   f.text("question", default="nps") or "nps",
                   f.integer("retries", 1, minimum=0, maximum=5), f.number("timeout", 6.0, minimum=0.5),
                   f.prompt("invalid"), f.prompt("thanks"), _words(f),
                   f.number("min_confidence", 0.5), f.boolean("speech", True))

    def targets(self) -> list[str]:
        return [self.next]

    def prompts(self) -> list[Prompt]:
        return [p for p in (self.prompt, self.invalid, self.thanks) if p]

    def phrases(self, language: str | None = None) -> list[str]:
        return [w for lang, ws in self.words.items() if language_matches(lang, language) for w in ws]

    def phrase_sets(self) -> dict[str, list[str]]:
        return {lang: list(ws) for lang, ws in self.words.items()}

    def score(self, answer: Answer, language: str) -> int | None:
        """0..10 from keys or a number word; None if not a valid score."""
        if answer.kind == "dtmf" and answer.value.isdigit() and int(answer.value) <= 10:
            return int(answer.value)
        if answer.kind == "speech" and (answer.confidence or 0.0) >= self.min_confidence:
            for lang, words in self.words.items():
                if language_matches(lang, language) and answer.value in words:
                    return words.index(answer.value)
        return None

    async def run(self, ctx: CallContext) -> Step:
        retry_prompt: Prompt | None = None
        for _attempt in range(self.retries + 1):
            listening = self.speech and ctx.can_listen_in_language()
            grammar = self.phrases(ctx.language) if listening else []
            answer = await ask(ctx, self.id, await ctx.sounds(retry_prompt, self.prompt),
                               max_digits=2, timeout=self.timeout, terminator="#",
                               grammar=grammar, inter_digit_timeout=2.0)
            score = self.score(answer, ctx.language)
            if score is not None:
                ctx.variables[self.variable] = score
                ctx.variables.setdefault("survey", {})[self.question] = score
                if self.thanks:
                    await ctx.driver.play(await ctx.sounds(self.thanks), barge_in=False)
                return self.next
            retry_prompt = self.invalid
        return self.next


def _words(f: Fields) -> dict[str, tuple[str, ...]]:
    raw = f.mapping("phrases")
    if not raw:
        return dict(NUMBER_WORDS)
    words = {}
    for lang, items in raw.items():
        if not isinstance(items, list) or len(items) != 11 or not all(isinstance(w, str) and w for w in items):
            f.error(f"phrases[{lang!r}] must list 11 words for 0..10")
            continue
        words[str(lang).lower()] = tuple(w.strip().lower() for w in items)
    return words
