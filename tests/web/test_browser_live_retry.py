"""In a real browser (headless Debian chromium): a wallboard opened beyond the cap on live
streams is refused (503 + Retry-After), keeps the page, and connects by itself once another
wallboard closes."""
from __future__ import annotations

import itertools

from admin_web import streams
from tests.web.browser import LiveServer, chromium, log_in, wait
from tests.web.conftest import PASSWORDS


def stream_state(driver) -> str | None:
    return driver.execute_script("return document.getElementById('wallboard').dataset.streamState || null;")


def test_a_refused_wallboard_connects_when_a_slot_frees(app, services):
    tick = itertools.count()          # serve's board changes at every poll: each open stream writes
    services.live_status = lambda: {"queues": {"billing": {"waiting": 1, "agents_available": 0}},
                                    "waiting": [{"queue": "billing", "waited": next(tick)}], "agents": {}}
    services.queue_stats = lambda since: {}
    app.extensions[streams.GATE] = gate = streams.StreamGate(1)
    first, second = chromium(), chromium()
    try:
        with LiveServer(app) as server:
            for driver in (first, second):
                log_in(driver, server.url, "super", PASSWORDS["super"])
            first.get(f"{server.url}/wallboard/")
            wait(first, lambda d: stream_state(d) == "open")
            second.get(f"{server.url}/wallboard/")
            wait(second, lambda d: stream_state(d) == "retrying")     # 503: the cap holds
            assert gate.open == 1
            first.get(f"{server.url}/agents/")                          # the first board closes
            wait(second, lambda d: stream_state(d) == "open", timeout=60)
            wait(second, lambda d: d.execute_script(
                "return document.querySelectorAll('#queue-board tbody tr[data-queue=\"billing\"]').length;") == 1)
    finally:
        first.quit()
        second.quit()
