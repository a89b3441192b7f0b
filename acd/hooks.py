"""What the ACD asks of the rest of the server about a call's edges, as plain callables.

The composition root (``callpilot.app.server``) wires them; acd never imports ivr.  Each
hook that needs the caller for a while (a message, a survey) only *starts* that work and
returns at once: the dispatcher may be inside the serial ARI event dispatch.

* ``queue_open(calendar)`` - is the named calendar open now?  (opening hours of a queue)
* ``closed(call_id, said)`` - tell a caller the queue is closed (in the call's language), then hang up.
* ``survey(call, flow)`` - the agent hung up first: the caller (still in Stasis) runs ``flow``.
* ``offered(call, agent, now)`` / ``originated(call, now)`` - an offer was decided / its
  originate was accepted by Asterisk (``now``: the dispatcher's monotonic clock); for
  metrics, must return at once and never raise.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from acd.agents import LiveAgent
from acd.state import LiveCall
from callpilot.infra.messages import Said

logger = logging.getLogger(__name__)


def always_open(_calendar: str) -> bool:
    return True


@dataclass
class CallHooks:
    queue_open: Callable[[str], bool] = always_open
    closed: Callable[[str, Said], None] | None = None
    survey: Callable[[LiveCall, str], None] | None = None
    offered: Callable[[LiveCall, LiveAgent, float], None] | None = None
    originated: Callable[[LiveCall, float], None] | None = None
