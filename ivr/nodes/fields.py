"""Reading one node's JSON fields into typed values, collecting errors instead of raising."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr.errors import FlowError

# Keys any node may carry for editors and humans; never interpreted.
FREE_KEYS = frozenset({"type", "label", "description", "comment", "ui"})


@dataclass(frozen=True)
class Prompt:
    """What to play: TTS text (one string, or language -> text), an Asterisk sound, or a
    message of the system's catalogue by key (spoken in the call's language)."""

    text: str | None = None
    texts: dict[str, str] = field(default_factory=dict)   # language -> text
    audio: str | None = None
    message: str | None = None                            # catalogue key, e.g. "survey.thanks"

    def text_for(self, language: str) -> str | None:
        """The text to speak in ``language``: exact, then primary subtag, then any."""
        if self.text is not None:
            return self.text
        lang = language.lower()
        for key in (lang, lang.split("-")[0]):
            if key in self.texts:
                return self.texts[key]
        primary = {k.split("-")[0]: v for k, v in self.texts.items()}
        return primary.get(lang.split("-")[0]) or next(iter(self.texts.values()), None)


def sound_name(audio: str) -> str:
    """``hello-world`` -> ``sound:hello-world``; URIs with a scheme are kept."""
    return audio if ":" in audio else f"sound:{audio}"


class Fields:
    """Typed access to ``raw`` for node ``node_id``; problems go to ``errors``."""

    def __init__(self, node_id: str, raw: dict[str, Any], errors: list[FlowError]) -> None:
        self.node_id = node_id
        self.raw = raw
        self.errors = errors
        self._read: set[str] = set(FREE_KEYS)

    def error(self, reason: str) -> None:
        self.errors.append(FlowError(self.node_id, reason))

    def get(self, name: str, default: Any = None) -> Any:
        self._read.add(name)
        return self.raw.get(name, default)

    def has(self, name: str) -> bool:
        self._read.add(name)
        return self.raw.get(name) is not None

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                self.error(f"missing {name}")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(f"{name} must be a non-empty string")
            return default
        return value

    def integer(self, name: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{name} must be an integer, got {value!r}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(f"{name} must be within {minimum}..{maximum}, got {value}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            self.error(f"{name} must be a number >= {minimum}, got {value!r}")
            return default
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            self.error(f"{name} must be true or false, got {value!r}")
            return default
        return value

    def target(self, name: str, *, required: bool = True) -> str | None:
        """A node id this node can go to (existence is checked by the schema)."""
        value = self.get(name)
        if value is None:
            if required:
                self.error(f"missing target {name}")
            return None
        if not isinstance(value, str) or not value:
            self.error(f"target {name} must be a node id, got {value!r}")
            return None
        return value

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.get(name, {})
        if not isinstance(value, dict):
            self.error(f"{name} must be an object")
            return {}
        return value

    def listing(self, name: str) -> list[Any]:
        value = self.get(name, [])
        if not isinstance(value, list):
            self.error(f"{name} must be a list")
            return []
        return value

    def prompt(self, name: str, *, required: bool = False) -> Prompt | None:
        value = self.get(name)
        if value is None:
            if required:
                self.error(f"missing {name}")
            return None
        return parse_prompt(value, name, self)

    def finish(self) -> None:
        """Report keys nobody read: usually a typo in the document."""
        for key in sorted(set(self.raw) - self._read):
            if not key.startswith("_"):
                self.error(f"unknown field {key!r}")


def parse_prompt(value: Any, name: str, fields: Fields) -> Prompt | None:
    """A prompt is "text", {"text": "..."}, {"text": {"en": "...", "ko": "..."}}, {"audio": "..."}
    or {"message": "<catalogue key>"} (the system's message in the call's language)."""
    if isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, dict):
        fields.error(f"{name} must be a text or an object with text, audio or message")
        return None
    text, audio, message = value.get("text"), value.get("audio"), value.get("message")
    if message is not None:
        if not isinstance(message, str) or not message.strip():
            fields.error(f"{name} has an empty message key")
            return None
        return Prompt(message=message.strip())
    if audio is not None:
        if not isinstance(audio, str) or not audio.strip():
            fields.error(f"{name} has an empty audio")
            return None
        return Prompt(audio=sound_name(audio.strip()))
    if isinstance(text, dict):
        return _localised(text, name, fields)
    if not isinstance(text, str) or not text.strip():
        fields.error(f"{name} is an empty prompt")
        return None
    return Prompt(text=text)


def _localised(texts: dict[str, Any], name: str, fields: Fields) -> Prompt | None:
    clean = {str(k).lower(): v for k, v in texts.items() if isinstance(v, str) and v.strip()}
    if not clean or len(clean) != len(texts):
        fields.error(f"{name} is an empty prompt in some language")
        return None
    return Prompt(texts=clean)
