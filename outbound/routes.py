"""Which carrier a campaign call leaves through: longest matching number prefix."""
from __future__ import annotations

from typing import Mapping

ENDPOINT = "outbound"        # the PJSIP endpoint of dialplans/pjsip.conf.j2


def dial_endpoint(number: str, routes: Mapping[str, str], default: str) -> str | None:
    """``PJSIP/outbound/sip:<number>@<host:port>`` or None when no route serves ``number``."""
    prefixes = [p for p in routes if number.startswith(p)]
    host = routes[max(prefixes, key=len)] if prefixes else default
    return f"PJSIP/{ENDPOINT}/sip:{number}@{host}" if host else None
