"""What every node type shares: the node interface and the per-call context it runs in."""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar

from callpilot.infra.messages import MessageCatalogue, builtin_messages
from ivr import template
from ivr.driver import CallDriver
from ivr.nodes.fields import Fields, Prompt
from ivr.outcome import Outcome
from ivr.tts import PromptCache

logger = logging.getLogger(__name__)

Step = str | Outcome   # the next node id, or the end of the flow


@dataclass
class CallContext:
    """Everything a node may use while a call runs through a flow."""

    driver: CallDriver
    prompts: PromptCache
    variables: dict[str, Any]
    language: str
    now: Callable[[], datetime]
    services: Any = None              # ivr.services.Services (lookups, webhooks, calendar)
    speech: bool = True               # use driver.listen when the node has phrases
    speech_languages: frozenset[str] | None = None   # ASR model languages (None: any)
    timezone: str = "UTC"             # for branch on time of day / weekday / holidays
    rate: int | None = None
    path: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    pending_digit: str | None = None  # a key pressed during a say node (type-ahead)
    on_progress: Callable[[], None] | None = None   # told of every node entered and input given
    messages: MessageCatalogue = field(default_factory=builtin_messages)   # {"message": key} prompts

    def record(self, node_id: str, kind: str, value: str = "",
               confidence: float | None = None, timing: dict[str, Any] | None = None) -> None:
        entry = {"node": node_id, "kind": kind, "value": value, "confidence": confidence}
        if timing:
            entry["timing"] = dict(timing)     # e.g. barge_in_ms, eos_ms (speech drivers)
        self.inputs.append(entry)
        if self.on_progress is not None:
            self.on_progress()
        logger.debug("call %s node %s input %s %r (%s)", self.driver.call_id, node_id,
                     kind, value, confidence)

    def can_listen_in_language(self) -> bool:
        """Is there a speech model for the call's current language?"""
        if not self.speech:
            return False
        if self.speech_languages is None:
            return True
        lang = self.language.lower()
        return lang in self.speech_languages or lang.split("-")[0] in self.speech_languages

    def set_language(self, language: str) -> None:
        self.language = language
        self.variables["language"] = language

    def take_pending_digit(self) -> str | None:
        digit, self.pending_digit = self.pending_digit, None
        return digit

    def format(self, text: str) -> str:
        return template.render(text, self.variables)

    async def sounds(self, *prompts: Prompt | None) -> list[str]:
        """Sound URIs for the prompts (None entries skipped), rendering TTS when needed."""
        return [await self.sound(p) for p in prompts if p is not None]

    async def sound(self, prompt: Prompt) -> str:
        if prompt.audio:
            return prompt.audio
        if prompt.message:
            said = self.messages.template(prompt.message, self.language)
            return await self.prompts.sound_uri_async(self.format(said.text), said.language, self.rate)
        text = self.format(prompt.text_for(self.language) or "")
        return await self.prompts.sound_uri_async(text, self.language, self.rate)


class Node(ABC):
    """One step of a flow.  Subclasses are dataclasses built by :meth:`parse`."""

    type: ClassVar[str]
    takes_input: ClassVar[bool] = False   # waits for the caller (breaks a loop's spin)
    id: str

    @classmethod
    @abstractmethod
    def parse(cls, f: Fields) -> Node:
        """Build the node from its JSON fields; report problems through ``f.error``."""

    def targets(self) -> list[str]:
        """Node ids this node can go to."""
        return []

    def prompts(self) -> list[Prompt]:
        """Every prompt this node may play (for pre-rendering and validation)."""
        return []

    def phrases(self, language: str | None = None) -> list[str]:
        """Spoken phrases this node listens for in ``language`` (None: all languages)."""
        return []

    def phrase_sets(self) -> dict[str, list[str]]:
        """Phrases by language ("" = any language), for the ASR vocabulary check."""
        return {"": self.phrases()} if self.phrases() else {}

    def languages(self) -> list[str]:
        """Languages this node switches the call to (set_language)."""
        return []

    @abstractmethod
    async def run(self, ctx: CallContext) -> Step:
        """Do this step of the call; return the next node id or an :class:`Outcome`."""
