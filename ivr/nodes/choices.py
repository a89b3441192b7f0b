"""Choosing among options by key or spoken phrase: shared by ``menu`` and ``ask``.

A choice has an optional DTMF ``key`` and ``phrases`` (a list for any language, or
``{"ko": [...], "en": [...]}``).  :class:`ChoiceNode` asks up to ``1 + retries`` times: no
answer plays ``no_input`` before the prompt again, a wrong answer ``no_match``; then the
call goes to ``fallback``.

Spoken answers below ``min_confidence`` count as no match (re-prompt).  With
``confirm_below`` set, answers between ``min_confidence`` and ``confirm_below`` are confirmed
first ("{heard}, 맞습니까?" / "Did you say {heard}?", yes by voice or key 1): yes takes the
choice, anything else re-prompts with ``no_match``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields, Prompt
from ivr.nodes.inputs import Answer, ask

DTMF_KEYS = frozenset("0123456789*#")
ANY_LANGUAGE = ""
YES_PHRASES = {"ko": ("네", "예"), "en": ("yes",)}
NO_PHRASES = {"ko": ("아니요", "아니오"), "en": ("no",)}
DEFAULT_CONFIRM = Prompt(texts={"ko": "{heard}, 맞습니까? 맞으면 네, 아니면 아니요라고 말씀해 주세요.",
                                "en": "Did you say {heard}? Say yes or press 1, or say no."})


def normalise_phrase(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def language_matches(entry: str, language: str | None) -> bool:
    """Does a phrase list for ``entry`` ("" = any, "ko", "en-us") apply to ``language``?"""
    if entry == ANY_LANGUAGE or language is None:
        return True
    lang = language.lower()
    return entry in (lang, lang.split("-")[0]) or entry.split("-")[0] == lang.split("-")[0]


@dataclass(frozen=True)
class Choice:
    key: str | None
    phrases: dict[str, tuple[str, ...]]     # language ("" = any) -> phrases
    target: str | None
    value: str | None = None
    implicit: bool = False          # added by the node (agent words), not the flow author

    def phrases_for(self, language: str | None) -> list[str]:
        return [p for lang, ps in self.phrases.items() if language_matches(lang, language)
                for p in ps]

    def all_phrases(self) -> list[str]:
        return [p for ps in self.phrases.values() for p in ps]


@dataclass
class ChoiceNode(Node):
    """Base of nodes that end with one of several choices (not a node type itself)."""

    takes_input = True
    id: str
    prompt: Prompt
    choices: list[Choice]
    fallback: str
    no_input: Prompt | None = None
    no_match: Prompt | None = None
    retries: int = 2
    timeout: float = 5.0
    min_confidence: float = 0.5
    speech: bool = True
    confirm_below: float = 0.0
    confirm: Prompt | None = None
    _by_key: dict[str, Choice] = field(default_factory=dict, repr=False)
    _by_phrase: dict[str, Choice] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_key = {c.key: c for c in self.choices if c.key}
        self._by_phrase = {p: c for c in self.choices for p in c.all_phrases()}

    @classmethod
    def parse_common(cls, f: Fields, choices: list[Choice], **extra: Any) -> Any:
        return cls(f.node_id, f.prompt("prompt", required=True) or Prompt(text="?"), choices,
                   f.target("fallback") or "", f.prompt("no_input"), f.prompt("no_match"),
                   f.integer("retries", 2, minimum=0, maximum=10),
                   f.number("timeout", 5.0, minimum=0.5),
                   f.number("min_confidence", 0.5), f.boolean("speech", True),
                   _confirm_below(f), f.prompt("confirm"), **extra)

    def targets(self) -> list[str]:
        return list(dict.fromkeys([c.target for c in self.choices if c.target] + [self.fallback]))

    def prompts(self) -> list[Prompt]:
        return [p for p in (self.prompt, self.no_input, self.no_match, self.confirm) if p]

    def phrases(self, language: str | None = None) -> list[str]:
        return list(dict.fromkeys(p for c in self.choices for p in c.phrases_for(language)))

    def phrase_sets(self) -> dict[str, list[str]]:
        sets: dict[str, list[str]] = {}
        for choice in (c for c in self.choices if not c.implicit):
            for lang, phrases in choice.phrases.items():
                sets.setdefault(lang, []).extend(phrases)
        return sets

    @property
    def max_key_length(self) -> int:
        return max((len(k) for k in self._by_key), default=1)

    def choose(self, answer: Answer) -> Choice | None:
        """The choice an answer selects, or None (no input, unknown key, unsure speech)."""
        if answer.kind == "dtmf":
            return self._by_key.get(answer.value)
        if answer.kind == "speech" and (answer.confidence or 0.0) >= self.min_confidence:
            return self._by_phrase.get(normalise_phrase(answer.value))
        return None

    async def run(self, ctx: CallContext) -> Step:
        retry_prompt: Prompt | None = None
        for _attempt in range(self.retries + 1):
            answer = await self._ask(ctx, retry_prompt)
            choice = self.choose(answer)
            if choice is not None and self._unsure(answer) and not await self._confirmed(ctx, answer):
                choice = None
            if choice is not None:
                return self.chosen(ctx, choice)
            retry_prompt = self.no_match if answer.heard else self.no_input
        return self.fallback

    def chosen(self, ctx: CallContext, choice: Choice) -> Step:
        return choice.target or self.fallback

    def _unsure(self, answer: Answer) -> bool:
        return answer.kind == "speech" and (answer.confidence or 0.0) < self.confirm_below

    async def _confirmed(self, ctx: CallContext, answer: Answer) -> bool:
        """Ask "did you say X?"; True only for a clear yes (key 1 or a yes phrase)."""
        ctx.variables["heard"] = answer.value
        sounds = await ctx.sounds(self.confirm or DEFAULT_CONFIRM)
        yes = _for_language(YES_PHRASES, ctx.language)
        grammar = yes + _for_language(NO_PHRASES, ctx.language) if ctx.can_listen_in_language() else []
        reply = await ask(ctx, f"{self.id}.confirm", sounds, max_digits=1, timeout=self.timeout,
                          grammar=grammar)
        if reply.kind == "dtmf":
            return reply.value == "1"
        return (reply.kind == "speech" and normalise_phrase(reply.value) in yes
                and (reply.confidence or 0.0) >= self.min_confidence)

    async def _ask(self, ctx: CallContext, retry_prompt: Prompt | None) -> Answer:
        sounds = await ctx.sounds(retry_prompt, self.prompt)
        grammar = self.phrases(ctx.language) if self.speech and ctx.can_listen_in_language() else []
        long_keys = self.max_key_length > 1
        return await ask(ctx, self.id, sounds, max_digits=self.max_key_length,
                         timeout=self.timeout, terminator="#" if long_keys else None,
                         grammar=grammar)


def _for_language(phrases: dict[str, tuple[str, ...]], language: str) -> list[str]:
    return [p for lang, ps in phrases.items() if language_matches(lang, language) for p in ps]


def _confirm_below(f: Fields) -> float:
    value = f.number("confirm_below", 0.0)
    if value > 1.0:
        f.error(f"confirm_below must be within 0..1, got {value}")
        return 0.0
    return value


def parse_choices(f: Fields, name: str, *, need_target: bool, what: str = "option") -> list[Choice]:
    choices: list[Choice] = []
    seen_keys: set[str] = set()
    seen_phrases: set[str] = set()
    raw_choices = f.listing(name)
    if not raw_choices:
        f.error(f"{f.raw.get('type', 'node')} has no {name}")
    for i, raw in enumerate(raw_choices):
        choice = parse_choice(f, i, raw, need_target=need_target, what=what)
        if choice is None:
            continue
        if choice.key is not None and choice.key in seen_keys:
            f.error(f"duplicate key {choice.key!r}")
        for phrase in choice.all_phrases():
            if phrase in seen_phrases:
                f.error(f"duplicate phrase {phrase!r}")
        if choice.key is not None:
            seen_keys.add(choice.key)
        seen_phrases.update(choice.all_phrases())
        choices.append(choice)
    return choices


def parse_choice(f: Fields, i: int, raw: object, *, need_target: bool,
                 what: str = "option") -> Choice | None:
    if not isinstance(raw, dict):
        f.error(f"{what} {i} must be an object")
        return None
    key = _key(f, i, raw.get("key"), what)
    phrases = parse_phrases(f, f"{what} {i}", raw.get("phrases"))
    target, value = raw.get("target"), raw.get("value")
    if raw.get("key") is None and not phrases:
        f.error(f"{what} {i} has neither key nor phrase")
    if target is not None and (not isinstance(target, str) or not target):
        f.error(f"{what} {i} target must be a node id")
        return None
    if need_target and target is None:
        f.error(f"{what} {i} has no target")
        return None
    if value is not None and not isinstance(value, str):
        f.error(f"{what} {i} value must be a string")
    return Choice(key, phrases, target, value if isinstance(value, str) else None)


def _key(f: Fields, i: int, key: Any, what: str) -> str | None:
    if key is None:
        return None
    key = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
    if not isinstance(key, str) or not key or set(key) - DTMF_KEYS:
        f.error(f"{what} {i} key {key!r} is not made of 0-9, * and #")
        return None
    return key


def parse_phrases(f: Fields, where: str, raw: Any) -> dict[str, tuple[str, ...]]:
    """``"word"``, ``["a", "b"]`` (any language) or ``{"ko": [...], "en": [...]}``."""
    if raw is None:
        return {}
    if isinstance(raw, (str, list)):
        raw = {ANY_LANGUAGE: raw}
    if not isinstance(raw, dict):
        f.error(f"{where} phrases must be a list or an object of language -> list")
        return {}
    phrases: dict[str, tuple[str, ...]] = {}
    for lang, items in raw.items():
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list) or not all(isinstance(p, str) and p.strip() for p in items):
            f.error(f"{where} phrases must be non-empty strings")
            continue
        phrases[str(lang).lower()] = tuple(normalise_phrase(p) for p in items)
    return phrases
