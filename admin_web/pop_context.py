"""The context of a call that is not a plain inbound call, for the agent's screen pop: a
callback (asked in the IVR, or 'call me' from the web site or app) or a campaign contact
who asked for an agent.

Read from the database like the rest of the pop (``admin_web.live.screen_pop``): a callback
attempt row exists, with its agent, from the moment serve claims it (before the agent's
phone rings, see ``callpilot.infra.db.callback_store``), and a campaign call's record
carries the campaign context in its journey (``callpilot.app.outbound_wiring``).  serve
publishes nothing more for it.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from admin_web.live import _profile
from callpilot.infra.db.callback_store import CallbackStore
from callpilot.infra.db.callbacks import Callback, CallbackAttempt
from callpilot.infra.db.campaigns import Campaign
from callpilot.infra.db.models import CallRecord, Customer

logger = logging.getLogger(__name__)

AgeBand = Callable[[int], str] | None


def with_context(sessions: sessionmaker, extension: str, pop: dict[str, Any] | None,
                 age_band: AgeBand) -> dict[str, Any] | None:
    """``pop`` (the open call record's) with its campaign context, or the agent's callback
    attempt in progress when that is newer; None when neither."""
    found = CallbackStore(sessions, instance="web").ringing_agent(extension)
    if found is not None and _newer(found[1], pop):
        with sessions() as session:
            return callback_pop(session, *found, age_band)
    if pop is None:
        return None
    pop.pop("since", None)
    outbound = pop.pop("outbound", None)
    if outbound:
        with sessions() as session:
            pop["context"] = campaign_context(session, outbound)
    return pop


def _newer(attempt: CallbackAttempt, pop: dict[str, Any] | None) -> bool:
    """A live call's pop wins over an older attempt left without an outcome (serve died)."""
    return pop is None or pop.get("since") is None or attempt.started_at >= pop["since"]


def callback_pop(session: Session, callback: Callback, attempt: CallbackAttempt,
                 age_band: AgeBand) -> dict[str, Any]:
    asked = session.get(CallRecord, callback.call_id) if callback.call_id else None
    customer = session.get(Customer, callback.number) or (
        session.get(Customer, asked.caller_id) if asked is not None and asked.caller_id else None)
    journey = (asked.journey or {}) if asked is not None else {}
    return {"call_id": f"callback-{callback.id}", "kind": "callback",
            # agent first: the customer is dialled once the agent has answered and heard the whisper
            "state": "connected" if attempt.customer_dialled_at else "ringing",
            "caller_id": callback.number, "queue": callback.queue, "did": None,
            "queued_at": _local(callback.entered_at), "waited": None,
            "customer": _profile(customer, age_band) or ({"name": callback.name} if callback.name else None),
            "ivr_path": list(asked.menu_path or []) if asked is not None else [],
            "said": [{"node": i.get("node"), "kind": i.get("kind"), "value": i.get("value")}
                     for i in journey.get("inputs", []) if i.get("kind") in ("speech", "dtmf")],
            "context": callback_context(session, callback, attempt)}


def callback_context(session: Session, callback: Callback, attempt: CallbackAttempt) -> dict[str, Any]:
    earlier = session.scalar(select(CallbackAttempt.id).where(
        CallbackAttempt.callback_id == callback.id, CallbackAttempt.id < attempt.id).limit(1))
    return {"kind": "callback", "source": callback.source, "reason": callback.reason,
            "requested_at": _local(callback.created_at), "in_line_since": _local(callback.entered_at),
            "window": _window(callback.not_before, callback.window_end),
            "attempt": callback.attempts + 1, "tried_before": earlier is not None,
            "details": {str(k): str(v) for k, v in (callback.context or {}).items()}}


def campaign_context(session: Session, outbound: dict[str, Any]) -> dict[str, Any]:
    campaign = session.scalar(select(Campaign).where(Campaign.name == outbound.get("campaign")))
    reply = str(outbound.get("reply") or "")
    meaning = (campaign.replies or {}).get(reply) if campaign is not None else None
    return {"kind": "campaign", "campaign": outbound.get("campaign"),
            "purpose": campaign.purpose if campaign is not None else "",
            "reply": f"{reply} ({meaning})" if meaning else reply, "contact": outbound.get("name") or "",
            "details": {str(k): str(v) for k, v in (outbound.get("variables") or {}).items()}}


def _window(start: datetime | None, end: datetime | None) -> str | None:
    if start is None and end is None:
        return None
    return f"{_local(start) or 'now'} – {_local(end) or 'open'}"


def _local(at: datetime | None) -> str | None:
    return at.astimezone().strftime("%Y-%m-%d %H:%M") if at is not None else None
