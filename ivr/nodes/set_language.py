"""``set_language``: switch the call's language (prompts' voice, speech grammar, routing).

``{"type": "set_language", "language": "ko", "next": id}`` or ``"variable":
"customer_language"`` to take it from a lookup (unset or empty: the language is kept).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from ivr import template
from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields

logger = logging.getLogger(__name__)

LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*", re.IGNORECASE)


@dataclass
class SetLanguageNode(Node):
    type = "set_language"
    id: str
    next: str
    language: str | None = None
    variable: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> SetLanguageNode:
        language, variable = f.text("language"), f.text("variable")
        if (language is None) == (variable is None):
            f.error("set_language needs exactly one of language or variable")
        if language is not None and not LANGUAGE_TAG.fullmatch(language):
            f.error(f"language {language!r} is not a language tag such as 'ko' or 'en-us'")
        return cls(f.node_id, f.target("next") or "", language, variable)

    def targets(self) -> list[str]:
        return [self.next]

    def languages(self) -> list[str]:
        return [self.language] if self.language else []

    async def run(self, ctx: CallContext) -> Step:
        language = self.language or template.lookup(ctx.variables, self.variable or "")
        if isinstance(language, str) and LANGUAGE_TAG.fullmatch(language):
            ctx.set_language(language.lower())
        else:
            logger.info("call %s: %s has no usable language (%r); keeping %s",
                        ctx.driver.call_id, self.id, language, ctx.language)
        return self.next
