"""The agent leg's originate names the caller's channel as its originator: without it the agent
channel took ~0.3 ms longer to make in Asterisk (docs/decisions.md D34)."""
import asyncio

from acd.actions import CallControl


class RecordingAri:
    def __init__(self):
        self.posts: list[tuple[str, dict]] = []

    async def post(self, path: str, body=None, **params):
        self.posts.append((path, params))
        return {}


def test_the_agent_originate_names_the_caller_as_originator():
    ari = RecordingAri()
    ok = asyncio.run(CallControl(ari, app="callpilot").ring(
        "call-7", "PJSIP/2001", "cp-agent-call-7-1", timeout=15, caller_id="4211"))
    assert ok
    path, params = ari.posts[0]
    assert path == "/channels/cp-agent-call-7-1"
    assert params["originator"] == "call-7"
    assert (params["endpoint"], params["appArgs"], params["callerId"]) == ("PJSIP/2001", "agent,call-7", "4211")
