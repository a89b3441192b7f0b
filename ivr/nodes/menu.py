"""``menu``: a prompt, then a key or a spoken phrase picks the next node.

No key (timeout) or an unknown key/phrase re-prompts ``retries`` times (default 2) with the
``no_input`` / ``no_match`` prompt before the menu prompt; after that the call goes to
``fallback`` (which validation requires to reach a queue).  A key pressed during the prompt
(barge-in) is the choice.

Never trap a caller: every menu also takes key 0 and "agent" / "operator" (and their
equivalents per language, :data:`AGENT_PHRASES`) to ``agent`` (default: the fallback),
unless the flow already gives key 0 or those words another meaning.
"""
from __future__ import annotations

from dataclasses import dataclass

from ivr.nodes.choices import Choice, ChoiceNode, normalise_phrase, parse_choices
from ivr.nodes.fields import Fields

Option = Choice

__all__ = ["AGENT_KEY", "AGENT_PHRASES", "MenuNode", "Option", "normalise_phrase"]

AGENT_KEY = "0"
AGENT_PHRASES: dict[str, tuple[str, ...]] = {
    "en": ("agent", "operator", "representative"),
    "ko": ("상담원", "상담사", "영"),
}


@dataclass
class MenuNode(ChoiceNode):
    type = "menu"

    @property
    def options(self) -> list[Choice]:
        return self.choices

    @classmethod
    def parse(cls, f: Fields) -> MenuNode:
        choices = parse_choices(f, "options", need_target=True)
        node = cls.parse_common(f, choices)
        explicit = next((c.target for c in choices if c.key == AGENT_KEY and c.target), None)
        agent = f.target("agent", required=False) or explicit or node.fallback
        extra = agent_choice(choices, agent)
        if extra is not None:
            node.choices.append(extra)
            node.__post_init__()
        return node


def agent_choice(choices: list[Choice], target: str) -> Choice | None:
    """Key 0 and the agent words the flow does not use otherwise, to ``target``."""
    taken = {p for c in choices for p in c.all_phrases()}
    phrases = {lang: tuple(p for p in words if p not in taken)
               for lang, words in AGENT_PHRASES.items()}
    phrases = {lang: words for lang, words in phrases.items() if words}
    key = None if any(c.key == AGENT_KEY for c in choices) else AGENT_KEY
    if key is None and not phrases:
        return None
    return Choice(key, phrases, target, implicit=True)
