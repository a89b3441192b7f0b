"""A campaign's settings as people give them (``callpilot campaigns create`` flags, the admin
web's form), checked once here: both front ends call :func:`campaign_settings` and show the
:class:`~outbound.store.CampaignError` message as it is.

The message template is ``str.format`` text whose fields are the contacts' CSV columns plus
``name``; :func:`preview` renders it as a contact would hear it.
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from datetime import date, time
from typing import Any

from outbound.message import menu_hint, render
from outbound.model import DEFAULT_REPLIES, DEFAULT_RETRY_DELAYS, CampaignMode, ContactOutcome, Reply
from outbound.store import CampaignError

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEY = re.compile(r"[0-9*#]")
PHONE = re.compile(r"\+?[0-9]{0,20}")
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2})?")
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RETRYABLE = tuple(DEFAULT_RETRY_DELAYS)           # outcomes that may be tried again
# (low, high) of the numbers, inclusive
BOUNDS = {"max_attempts": (1, 20), "max_concurrent": (1, 500), "ring_seconds": (5, 120),
          "abandon_cap_percent": (0.0, 100.0), "max_dial_level": (1.0, 5.0), "retry_seconds": (1, 30 * 86400)}


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise CampaignError("a campaign name is 1-64 letters, digits, _ or -")
    return name


def template_fields(template: str, what: str = "template") -> set[str]:
    """The variables of a message template; CampaignError if it cannot be rendered."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise CampaignError(f"{what}: {exc} (write {{{{ and }}}} for a literal brace)") from None
    bad = sorted(f for f in fields if not FIELD.fullmatch(f))
    if "" in fields or bad:
        raise CampaignError(f"{what}: variables are names such as {{order_id}}, not {bad or ['{}']}")
    return fields


def preview(template: str, sample: Mapping[str, str], replies: Mapping[str, str] | None = None) -> str:
    """The message as a contact hears it, ``sample`` giving the variables (and ``name``);
    a variable without a sample value is shown as ``<variable>``."""
    fields = template_fields(template)
    values = {f: sample.get(f) or f"<{f}>" for f in fields}
    text = render(template, values.pop("name", "<name>"), values)
    hint = menu_hint(replies if replies is not None else DEFAULT_REPLIES)
    return f"{text} {hint}".strip()


def _number(key: str, value: Any, kind: type) -> Any:
    low, high = BOUNDS[key]
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise CampaignError(f"{key.replace('_', ' ')}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise CampaignError(f"{key.replace('_', ' ')} must be within {low}..{high}, got {value}")
    return number


def _window(start: str, end: str, excluded: Iterable[str]) -> dict:
    try:
        opens, closes = time.fromisoformat(start), time.fromisoformat(end)
        dates = [date.fromisoformat(d.strip()).isoformat() for d in excluded if d.strip()]
    except ValueError as exc:
        raise CampaignError(f"calling window: {exc} (times HH:MM, dates YYYY-MM-DD)") from None
    if opens >= closes:
        raise CampaignError(f"calling window: {start} must be before {end}")
    return {"window_start": opens.strftime("%H:%M"), "window_end": closes.strftime("%H:%M"),
            "excluded_dates": dates}


def _retry(items: Iterable[str]) -> dict:
    """``OUTCOME=SECONDS`` items over the default delays."""
    delays = dict(DEFAULT_RETRY_DELAYS)
    for item in items:
        outcome, _, seconds = item.partition("=")
        outcome = outcome.strip()
        if outcome not in RETRYABLE:
            raise CampaignError(f"retry: {outcome!r} is not one of {', '.join(RETRYABLE)}")
        delays[outcome] = _number("retry_seconds", seconds.strip(), int)
    return delays


def replies_from(keys: Mapping[str, str] | None, say: Iterable[str]) -> dict:
    """Keys per reply (``{"confirm": "1", ...}``; None = the defaults) and ``PHRASE=reply`` items."""
    if keys is None:
        replies = dict(DEFAULT_REPLIES)
    else:
        replies = {}
        for reply, key in keys.items():
            value = _reply(reply)
            if not key:
                continue
            if not KEY.fullmatch(key):
                raise CampaignError(f"reply keys: {key!r} for {value} is not a phone key (0-9, * or #)")
            if key in replies:
                raise CampaignError(f"reply keys: {key} is given to both {replies[key]} and {value}")
            replies[key] = value
        if Reply.OPT_OUT.value not in replies.values():
            raise CampaignError("reply keys: an opt-out key is required (do-not-call by key)")
    for item in say:
        phrase, _, reply = item.partition("=")
        if not phrase.strip() or phrase.strip().isdigit():
            raise CampaignError(f"spoken reply {item!r}: write PHRASE=reply")
        replies[phrase.strip()] = _reply(reply.strip())
    return replies


def _reply(value: str) -> str:
    try:
        return Reply(value).value
    except ValueError:
        raise CampaignError(f"reply {value!r} is not one of {', '.join(r.value for r in Reply)}") from None


def campaign_settings(*, template: str, purpose: str = "", mode: str = CampaignMode.NOTIFICATION.value,
                      caller_id: str = "", callback_number: str = "", queue: str = "general",
                      language: str = "en", window_start: str = "08:00", window_end: str = "21:00",
                      excluded: Iterable[str] = (), calendar: str | None = None, max_attempts: Any = 3,
                      retry: Iterable[str] = (), max_concurrent: Any = 5, amd: bool = True,
                      voicemail: str = "", abandon_cap: Any = 3.0, max_dial_level: Any = 1.0,
                      ring_seconds: Any = 25, keys: Mapping[str, str] | None = None,
                      say: Iterable[str] = ()) -> dict:
    """The keyword arguments of :meth:`outbound.store.CampaignStore.create` (besides name,
    template and time), or CampaignError naming the first problem."""
    if not template.strip():
        raise CampaignError("the message template is empty")
    template_fields(template)
    template_fields(voicemail, "voicemail message")
    try:
        mode = CampaignMode(mode).value
    except ValueError:
        raise CampaignError(f"mode {mode!r} is not one of {', '.join(m.value for m in CampaignMode)}") from None
    for what, number in (("caller ID", caller_id), ("callback number", callback_number)):
        if not PHONE.fullmatch(number):
            raise CampaignError(f"{what} {number!r}: digits only (a leading + allowed)")
    if not LANGUAGE.fullmatch(language):
        raise CampaignError(f"language {language!r}: a code such as en or ko")
    if not NAME.fullmatch(queue):
        raise CampaignError(f"queue {queue!r} is not a queue name")
    return {"purpose": purpose.strip(), "mode": mode, "caller_id": caller_id, "callback_number": callback_number,
            "agent_queue": queue, "language": language, **_window(window_start, window_end, excluded),
            "calendar": calendar or None, "max_attempts": _number("max_attempts", max_attempts, int),
            "retry_delays": _retry(retry), "max_concurrent": _number("max_concurrent", max_concurrent, int),
            "amd": bool(amd), "voicemail_template": voicemail,
            "abandon_cap_percent": _number("abandon_cap_percent", abandon_cap, float),
            "max_dial_level": _number("max_dial_level", max_dial_level, float),
            "ring_seconds": _number("ring_seconds", ring_seconds, int), "replies": replies_from(keys, say)}
