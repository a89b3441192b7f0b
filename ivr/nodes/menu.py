"""``menu``: a prompt, then a key or a spoken phrase picks the next node.

No key (timeout) or an unknown key/phrase re-prompts ``retries`` times (default 2) with the
``no_input`` / ``no_match`` prompt before the menu prompt; after that the call goes to
``fallback``.  A key pressed during the prompt (barge-in) is the choice.
"""
from __future__ import annotations

from dataclasses import dataclass

from ivr.nodes.choices import Choice, ChoiceNode, normalise_phrase, parse_choices
from ivr.nodes.fields import Fields

Option = Choice

__all__ = ["MenuNode", "Option", "normalise_phrase"]


@dataclass
class MenuNode(ChoiceNode):
    type = "menu"

    @property
    def options(self) -> list[Choice]:
        return self.choices

    @classmethod
    def parse(cls, f: Fields) -> MenuNode:
        return cls.parse_common(f, parse_choices(f, "options", need_target=True))
