"""Live pages and WSGI threads: open event streams are capped below waitress's thread pool,
the page beyond the cap gets 503 + Retry-After, and ordinary pages keep answering (in the
flaskr client and against a real waitress server)."""
from __future__ import annotations

import http.client
import itertools
import time

import pytest

from admin_web import streams
from callpilot.infra.config import Config, ConfigError, _build, _validate
from tests.web.browser import LiveServer


def _changing_board(services):
    """serve's snapshot changing at every poll: each stream writes twice a second, so a
    stream whose client went away is noticed at its next write (as with a busy floor)."""
    tick = itertools.count()
    services.live_status = lambda: {"queues": {"billing": {"waiting": 1, "agents_available": 0}},
                                    "waiting": [{"queue": "billing", "waited": next(tick)}], "agents": {}}
    services.queue_stats = lambda since: {}


def test_gate_counts_and_refuses_beyond_its_limit():
    gate = streams.StreamGate(2)
    assert gate.try_enter() and gate.try_enter()
    assert not gate.try_enter()
    gate.leave()
    assert gate.try_enter()
    assert gate.open == 2


def test_stream_beyond_the_cap_is_503_with_retry_after(app, client, auth, services):
    _changing_board(services)
    app.extensions[streams.GATE] = gate = streams.StreamGate(1)
    auth.login("super")
    first = client.get("/wallboard/stream", buffered=False)
    assert first.status_code == 200 and gate.open == 1
    refused = client.get("/wallboard/stream", buffered=False)
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    assert client.get("/wallboard/data").status_code == 200      # pages still answer
    first.close()                                                 # the page went away
    assert gate.open == 0
    again = client.get("/wallboard/stream", buffered=False)
    assert again.status_code == 200
    again.close()


def test_a_stream_never_started_still_gives_its_slot_back(app, client, auth, services):
    _changing_board(services)
    app.extensions[streams.GATE] = gate = streams.StreamGate(3)
    auth.login("super")
    client.get("/wallboard/stream", buffered=False).close()
    assert gate.open == 0


def test_live_streams_must_leave_threads_for_other_requests():
    with pytest.raises(ConfigError, match="web_live_streams"):
        _validate(_build({"web_threads": 8, "web_live_streams": 7}))
    defaults = Config()
    assert defaults.web_live_streams <= defaults.web_threads - 2


# -- a real waitress server: more live pages than stream slots, the admin UI still answers ----

THREADS, CAP = 4, 2


@pytest.fixture
def server(app, services):
    """waitress with 4 threads (``LiveServer``: stops without closing a descriptor a stream's
    thread still writes to)."""
    _changing_board(services)
    app.extensions[streams.GATE] = streams.StreamGate(CAP)
    with LiveServer(app) as live:
        assert live._server.adj.threads == THREADS
        yield live


def _session_cookie(client, auth) -> str:
    auth.login("super")
    return f"callpilot_session={client.get_cookie('callpilot_session').value}"


def _get(srv, path: str, cookie: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(srv.url.removeprefix("http://"), timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    close_body = response.close

    def close() -> None:                 # closing the page closes its connection
        close_body()
        conn.close()
    response.close = close
    return response


def _open_stream(srv, cookie: str) -> http.client.HTTPResponse:
    response = _get(srv, "/wallboard/stream", cookie)
    if response.status == 200:
        assert response.read1(64).startswith(b"data: ")     # streaming: it holds a thread
    return response


def test_more_live_pages_than_slots_leave_the_ui_answering(server, client, auth, app):
    cookie = _session_cookie(client, auth)
    held = [_open_stream(server, cookie) for _ in range(CAP)]
    assert [r.status for r in held] == [200] * CAP
    extra = [_open_stream(server, cookie) for _ in range(THREADS)]   # more pages than threads
    assert {r.status for r in extra} == {503}
    assert all(r.getheader("Retry-After") for r in extra)
    for path in ("/health", "/wallboard/data", "/agents/"):
        page = _get(server, path, cookie)
        assert page.status == 200, path
        page.read()
    held[0].close()                                              # one wallboard closed
    gate = app.extensions[streams.GATE]
    deadline = time.monotonic() + 10
    while gate.open >= CAP and time.monotonic() < deadline:     # noticed at its next write
        time.sleep(0.1)
    reopened = _open_stream(server, cookie)
    assert reopened.status == 200
    for response in (reopened, *held[1:]):
        response.close()
