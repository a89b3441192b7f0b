"""A form per IVR node type: which fields, of which kind, and how form text becomes JSON.

The editor knows node types by their document fields only (it never imports ``ivr``); a unit
test checks that every type in ``ivr.nodes.NODE_TYPES`` has a form here and that every field
of the built-in flows is editable.  Kinds:

* ``text``, ``int``, ``float``: one line; empty = field absent (the IVR's default).
* ``bool``: default / true / false.
* ``target``: a node id of the flow (a drop-down).
* ``prompt``: a text, or JSON for ``{"text": {"en": ..., "ko": ...}}`` / ``{"audio": ...}``.
* ``json``: lists and objects (menu options, branch rules, routing steps) as JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Field:
    name: str
    kind: str = "text"
    help: str = ""


def _f(name: str, kind: str = "text", help: str = "") -> Field:
    return Field(name, kind, help)


COMMON = (_f("label", help="shown in the graph"), _f("description"))

_CHOICE = (
    _f("fallback", "target", "after the last retry"), _f("no_input", "prompt"),
    _f("no_match", "prompt"), _f("retries", "int"), _f("timeout", "float", "seconds"),
    _f("min_confidence", "float", "speech below this counts as no match"),
    _f("speech", "bool", "listen for phrases"),
    _f("confirm_below", "float", "confirm spoken answers below this confidence"),
    _f("confirm", "prompt"),
)

NODE_FORMS: dict[str, tuple[Field, ...]] = {
    "say": (_f("text", "prompt", "what to say"), _f("audio", help="an Asterisk sound instead"),
            _f("prompt", "prompt", "or a prompt object"), _f("next", "target"),
            _f("barge_in", "bool", "a key stops the prompt")),
    "menu": (_f("prompt", "prompt"),
             _f("options", "json", '[{"key": "1", "phrases": ["billing"], "target": "node"}]'),
             *_CHOICE),
    "ask": (_f("prompt", "prompt"), _f("variable"), _f("yes_no", "bool"),
            _f("targets", "json", '{"yes": "node", "no": "node"} for yes/no questions'),
            _f("choices", "json", '[{"value": "x", "key": "1", "phrases": [...], "target": "node"}]'),
            _f("next", "target"), *_CHOICE),
    "collect_digits": (_f("prompt", "prompt"), _f("variable"), _f("min_digits", "int"),
                       _f("max_digits", "int"), _f("terminator", help="# or *"),
                       _f("timeout", "float"), _f("inter_digit_timeout", "float"),
                       _f("pattern", help="regular expression"), _f("luhn", "bool"),
                       _f("secret", "bool", "keep only the last 4 digits"), _f("retries", "int"),
                       _f("no_input", "prompt"), _f("invalid", "prompt"), _f("next", "target"),
                       _f("fallback", "target")),
    "lookup": (_f("source", help="customer or webhook"), _f("key", help="default caller_id"),
               _f("url"), _f("method"), _f("timeout", "float"), _f("params", "json"),
               _f("into"), _f("next", "target"), _f("not_found", "target"), _f("error", "target")),
    "branch": (_f("rules", "json", '[{"when": {...}, "target": "node"}]'), _f("else", "target"),
               _f("timezone"), _f("holidays", "json", '["2026-12-25"]'), _f("calendar")),
    "set_language": (_f("language"), _f("variable", help="or take it from this variable"),
                     _f("next", "target")),
    "enqueue": (_f("queue"), _f("priority", "int"), _f("skills", "json", '{"billing": 2}'),
                _f("steps", "json", '[{"conditions": [...], "expiry": 20}]'), _f("prompt", "prompt")),
    "transfer": (_f("queue", help="one destination: a queue,"), _f("agent", help="or an agent's extension,"),
                 _f("route", help="or a configured outside route"), _f("fallback", "target"),
                 _f("timeout", "int", "seconds to ring (agent, route)"), _f("prompt", "prompt")),
    "survey": (_f("prompt", "prompt"), _f("variable"), _f("question"), _f("retries", "int"),
               _f("timeout", "float"), _f("invalid", "prompt"), _f("thanks", "prompt"),
               _f("speech", "bool", "also listen for number words"),
               _f("phrases", "json", '{"en": ["zero", ..., "ten"]}'), _f("min_confidence", "float"),
               _f("next", "target")),
    "hangup": (_f("prompt", "prompt"),),
}

TARGET_LIST_KEYS = ("options", "choices", "rules")   # lists whose items carry "target"


def fields_for(node_type: str) -> tuple[Field, ...]:
    return NODE_FORMS.get(node_type, ()) + COMMON


def to_form(node: Mapping[str, Any]) -> dict[str, str]:
    """The form's text for each field of ``node`` (absent fields: empty)."""
    values = {}
    for field in fields_for(node.get("type", "")):
        values[field.name] = _show(field, node.get(field.name))
    return values


def _show(field: Field, value: Any) -> str:
    if value is None:
        return ""
    if field.kind == "bool":
        return "true" if value is True else "false" if value is False else json.dumps(value)
    if field.kind in ("text", "target") and isinstance(value, str):
        return value
    if field.kind == "prompt" and isinstance(value, str):
        return value
    if field.kind in ("int", "float") and not isinstance(value, bool) and isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, indent=1)


class FormError(ValueError):
    """A field's text cannot become JSON; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def from_form(node_type: str, form: Mapping[str, str], keep: Mapping[str, Any] = {}) -> dict[str, Any]:
    """The node document from the form's text.  Keys the form does not show (``ui``,
    ``_notes``, fields of another type) are kept from ``keep``; the IVR's validation says
    whether what remains is right."""
    known = {f.name for f in fields_for(node_type)}
    node: dict[str, Any] = {k: v for k, v in keep.items() if k not in known and k != "type"}
    node["type"] = node_type
    for field in fields_for(node_type):
        text = (form.get(field.name) or "").strip()
        if text:
            node[field.name] = _parse(field, text)
    return node


def _parse(field: Field, text: str) -> Any:
    if field.kind == "bool":
        if text in ("true", "false"):
            return text == "true"
        return _json(field, text)
    if field.kind == "int":
        try:
            return int(text)
        except ValueError:
            return _json(field, text)
    if field.kind == "float":
        try:
            number = float(text)
        except ValueError:
            return _json(field, text)
        return int(number) if number.is_integer() and "." not in text else number
    if field.kind == "json":
        return _json(field, text)
    if field.kind == "prompt" and text.startswith("{"):
        return _prompt_object(field, text)
    return text


def _prompt_object(field: Field, text: str) -> Any:
    """``{"text": ...}`` / ``{"audio": ...}`` as JSON; a text that merely starts with a
    template variable (``{customer_name}, hello``) stays a text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if text.lstrip("{ \n").startswith('"'):
            raise FormError(field.name, "looks like JSON but is not valid JSON") from None
        return text
    return value


def _json(field: Field, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormError(field.name, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def prompt_fields(node: Mapping[str, Any]) -> list[str]:
    """The node's prompt fields that have text to listen to."""
    return [f.name for f in fields_for(node.get("type", ""))
            if f.kind == "prompt" and prompt_text(node.get(f.name), None)]


def prompt_text(value: Any, language: str | None) -> str | None:
    """The text a prompt speaks in ``language`` (exact, primary subtag, else the first)."""
    if isinstance(value, str):
        return value.strip() or None
    if not isinstance(value, dict):
        return None
    text = value.get("text")
    if isinstance(text, str):
        return text.strip() or None
    if not isinstance(text, dict) or not text:
        return None
    lang = (language or "").lower()
    for key in (lang, lang.split("-")[0]):
        if isinstance(text.get(key), str):
            return text[key]
    first = next(iter(text.values()))
    return first if isinstance(first, str) else None


def prompt_languages(value: Any) -> list[str | None]:
    """Languages a prompt has texts for (``[None]``: one text for every language)."""
    if isinstance(value, dict) and isinstance(value.get("text"), dict):
        return list(value["text"])
    return [None]
