"""The new-campaign form: its fields as people type them; every check is outbound's own
(``outbound.settings``, the same as ``callpilot campaigns create``), reached through
``WebServices.campaigns``.  Numbers are text fields on purpose: the shared checks word the
errors, not WTForms."""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField

REPLIES = (("confirm", "Confirm key"), ("agent", "Talk-to-an-agent key"), ("repeat", "Repeat key"),
           ("opt_out", "Opt-out key (do not call again)"))
RETRIES = (("no_answer", "Retry after no answer (s)"), ("busy", "Retry after busy (s)"),
           ("failed", "Retry after a failed call (s)"), ("unknown", "Retry after an unknown end (s)"))
MODES = [("notification", "notification: message first, an agent if asked"),
         ("progressive", "progressive: dial only for a free agent")]


class CampaignForm(FlaskForm):
    name = StringField("Name", description="letters, digits, _ or -")
    purpose = StringField("Purpose", description="e.g. order status, fraud alert; also the caller's name "
                                                 "in the message left when no agent is free")
    mode = SelectField("Mode", choices=MODES)
    template = TextAreaField("Message", description="variables in braces: {name} and the contacts' CSV columns, "
                                                    "e.g. Hello {name}, your order {order_id} has shipped.")
    sample = TextAreaField("Preview with", description="one variable=value a line, e.g. order_id=A-1042")
    language = StringField("Language", default="en")
    caller_id = StringField("Caller ID shown")
    callback_number = StringField("Number to call back", description="said when no agent is free")
    queue = SelectField("Queue for 'talk to an agent'", choices=[])
    window_start = StringField("Calling window from", default="08:00")
    window_end = StringField("Calling window to", default="21:00",
                             description="in each CONTACT's local time: the CSV's timezone column, "
                                         "else the zone of their number")
    excluded = StringField("Never on", description="dates YYYY-MM-DD, comma separated")
    calendar = SelectField("And not on the closed days of", choices=[])
    max_attempts = StringField("Attempts per contact", default="3")
    max_concurrent = StringField("Max concurrent calls", default="5")
    ring_seconds = StringField("Ring for (s)", default="25")
    amd = BooleanField("Detect answering machines", default=True)
    voicemail = TextAreaField("Message for answering machines", description="empty: hang up on machines")
    say = TextAreaField("Spoken replies", description="one PHRASE=confirm|agent|repeat|opt_out a line")
    abandon_cap = StringField("Abandon cap (% of live answers, 30 days)", default="3")
    max_dial_level = StringField("Lines per free agent (progressive)", default="1")


for _reply, _label in REPLIES:
    setattr(CampaignForm, f"key_{_reply}", StringField(_label))
for _outcome, _label in RETRIES:
    setattr(CampaignForm, f"retry_{_outcome}", StringField(_label))


def set_defaults(form: CampaignForm, defaults: dict[str, Any]) -> None:
    """Initial keys and retry delays: outbound's defaults (shown, not re-stated here)."""
    for reply, key in defaults.get("keys", {}).items():
        if hasattr(form, f"key_{reply}"):
            getattr(form, f"key_{reply}").data = key
    for outcome, seconds in defaults.get("retry", {}).items():
        if hasattr(form, f"retry_{outcome}"):
            getattr(form, f"retry_{outcome}").data = str(seconds)


def fields(form: CampaignForm) -> dict[str, Any]:
    """The keyword arguments of ``outbound.settings.campaign_settings`` (besides the template)."""
    data = {key: "" if value is None else value for key, value in form.data.items()}
    return {"purpose": data["purpose"], "mode": data["mode"], "caller_id": data["caller_id"].strip(),
            "callback_number": data["callback_number"].strip(), "queue": data["queue"],
            "language": data["language"].strip(), "window_start": data["window_start"].strip(),
            "window_end": data["window_end"].strip(), "excluded": data["excluded"].split(","),
            "calendar": data["calendar"] or None, "max_attempts": data["max_attempts"],
            "retry": [f"{o}={data[f'retry_{o}']}" for o, _ in RETRIES if (data[f"retry_{o}"] or "").strip()],
            "max_concurrent": data["max_concurrent"], "amd": data["amd"], "voicemail": data["voicemail"],
            "abandon_cap": data["abandon_cap"], "max_dial_level": data["max_dial_level"],
            "ring_seconds": data["ring_seconds"], "keys": keys(form), "say": lines(data["say"])}


def keys(form: CampaignForm) -> dict[str, str]:
    return {reply: (getattr(form, f"key_{reply}").data or "").strip() for reply, _ in REPLIES}


def lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def sample(form: CampaignForm) -> dict[str, str]:
    pairs = (line.partition("=") for line in lines(form.sample.data))
    return {k.strip(): v.strip() for k, _, v in pairs if k.strip()}
