"""``ask``: a yes/no question or a small spoken grammar; the answer goes into a variable.

``{"type": "ask", "prompt": ..., "yes_no": true, "variable": "confirmed", "next": ...}``
offers yes (key 1, 네/예/yes) and no (key 2, 아니요/아니오/no).  Otherwise ``choices`` is a
list of ``{"value", "key", "phrases", "target"}``; a choice without target goes to ``next``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ivr.nodes.base import CallContext, Step
from ivr.nodes.choices import Choice, ChoiceNode, parse_choices
from ivr.nodes.fields import Fields

YES_NO = [
    Choice("1", {"ko": ("네", "예"), "en": ("yes",)}, None, "yes"),
    Choice("2", {"ko": ("아니요", "아니오"), "en": ("no",)}, None, "no"),
]


@dataclass
class AskNode(ChoiceNode):
    type = "ask"
    variable: str = "answer"
    next: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> AskNode:
        if f.boolean("yes_no", False):
            choices = _yes_no(f)
        else:
            choices = parse_choices(f, "choices", need_target=False, what="choice")
        node = cls.parse_common(f, choices, variable=f.text("variable", required=True) or "",
                                next=f.target("next", required=False))
        for i, choice in enumerate(choices):
            if choice.target is None and node.next is None:
                f.error(f"choice {i} has no target and the node has no next")
        return node

    def targets(self) -> list[str]:
        return super().targets() + ([self.next] if self.next else [])

    def chosen(self, ctx: CallContext, choice: Choice) -> Step:
        ctx.variables[self.variable] = choice_value(choice)
        return choice.target or self.next or self.fallback


def choice_value(choice: Choice) -> str:
    """What the variable receives: the value, else the key, else the first phrase."""
    if choice.value is not None:
        return choice.value
    return choice.key or next(iter(choice.all_phrases()), "")


def _yes_no(f: Fields) -> list[Choice]:
    targets = f.mapping("targets")   # optional {"yes": node, "no": node}
    for answer, target in targets.items():
        if answer not in ("yes", "no") or not isinstance(target, str) or not target:
            f.error(f"targets must map yes/no to node ids, got {answer!r}: {target!r}")
            targets = {}
            break
    return [Choice(c.key, c.phrases, targets.get(c.value), c.value) for c in YES_NO]
