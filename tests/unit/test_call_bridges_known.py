"""The release destroys a call's mixing bridge only when one may exist (D39's 404, mended):
this serve made it, or Asterisk listed it at the (re)connect, or the bridges could not be read."""
import asyncio

import pytest

from acd.actions import CallControl
from callpilot.infra.asterisk.ari import AriNotFound


class Ari:
    """Records requests; ``bridges``: what ``GET /bridges`` lists (an exception: it fails)."""

    def __init__(self, bridges=()):
        self.bridges = bridges
        self.sent: list[tuple[str, str]] = []

    async def get(self, path: str, **params):
        self.sent.append(("GET", path))
        if isinstance(self.bridges, Exception):
            raise self.bridges
        return [{"id": b} for b in self.bridges]

    async def post(self, path: str, body=None, **params):
        self.sent.append(("POST", path))
        return {}

    async def delete(self, path: str, **params):
        self.sent.append(("DELETE", path))
        if path.startswith("/bridges/cp-call-gone"):
            raise AriNotFound(404, "DELETE", path, "")


def destroyed(ari: Ari) -> list[str]:
    return [p for m, p in ari.sent if m == "DELETE" and p.startswith("/bridges/")]


def run(coro):
    return asyncio.run(coro)


def test_a_call_that_never_rang_destroys_no_bridge_once_the_bridges_are_known():
    ari = Ari(bridges=["cp-hold-billing"])
    control = CallControl(ari, app="callpilot")
    run(control.learn_bridges())
    run(control.release("c1", "c1"))
    assert destroyed(ari) == []
    assert ("DELETE", "/channels/c1") in ari.sent


def test_a_bridge_made_here_or_by_an_earlier_serve_is_destroyed():
    ari = Ari(bridges=["cp-call-old", "cp-hold-billing"])
    control = CallControl(ari, app="callpilot")
    run(control.learn_bridges())
    run(control.prepare_bridge("new"))
    run(control.release("new"))
    run(control.release("old"))
    assert destroyed(ari) == ["/bridges/cp-call-new", "/bridges/cp-call-old"]
    run(control.release("old"))           # once: forgotten after its destroy
    assert destroyed(ari) == ["/bridges/cp-call-new", "/bridges/cp-call-old"]


@pytest.mark.parametrize("learnt", [False, True])
def test_unknown_bridges_are_destroyed_as_before(learnt):
    """Never read, or the read failed: a restarted serve cannot know, so it destroys."""
    ari = Ari(bridges=RuntimeError("ARI down"))
    control = CallControl(ari, app="callpilot")
    if learnt:
        run(control.learn_bridges())
    run(control.release("c2"))
    assert destroyed(ari) == ["/bridges/cp-call-c2"]


def test_a_failed_read_after_a_good_one_forgets_that_the_bridges_were_known():
    ari = Ari(bridges=[])
    control = CallControl(ari, app="callpilot")
    run(control.learn_bridges())
    ari.bridges = RuntimeError("ARI down")
    run(control.learn_bridges())
    run(control.release("c3"))
    assert destroyed(ari) == ["/bridges/cp-call-c3"]
