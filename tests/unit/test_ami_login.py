"""AMI login verdicts: only Asterisk's "Authentication failed" answer is ``auth_failed``.

A small AMI server on loopback plays Asterisk's side of the login (accept, refuse, another
error, silence, a dropped link); the monitor under test is the real ``AmiMonitor`` on
panoramisk.
"""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from panoramisk.message import Message

from callpilot.infra.asterisk.ami import AmiMonitor, AmiState, login_verdict

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
REPLIES = {
    "accept": "Response: Success\r\nMessage: Authentication accepted\r\n",
    "refuse": "Response: Error\r\nMessage: Authentication failed\r\n",
    "other_error": "Response: Error\r\nMessage: Too many sessions\r\n",
}


class FakeAmi:
    """Answers every Login with ``behaviour``: a key of REPLIES, ``silent`` or ``drop``."""

    def __init__(self, behaviour: str, events: tuple[str, ...] = ()):
        self.behaviour = behaviour
        self.events = events          # sent once the filters are in (after the last Filter)
        self.logins = 0
        self.actions: list[dict[str, str]] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> "FakeAmi":
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                action = _parse(await reader.readuntil(b"\r\n\r\n"))
                self.actions.append(action)
                if action.get("action", "").lower() == "filter":
                    writer.write(f"Response: Success\r\nActionID: {action['actionid']}\r\n\r\n".encode())
                if action.get("action", "").lower() == "devicestatelist":
                    writer.write("".join(self.events).encode())
                if action.get("action", "").lower() != "login":
                    continue
                self.logins += 1
                if self.behaviour == "drop":
                    break
                if self.behaviour in REPLIES:
                    reply = REPLIES[self.behaviour] + f"ActionID: {action['actionid']}\r\n\r\n"
                    writer.write(reply.encode())
                    await writer.drain()
        writer.close()


def _parse(block: bytes) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in block.decode().split("\r\n") if ":" in line)
    return {k.strip().lower(): v.strip() for k, v in pairs}


async def _states_seen(port: int, seconds: float, stop_at: AmiState | None = None) -> list[AmiState]:
    """Every state the monitor passes through within ``seconds`` (or until ``stop_at``)."""
    monitor = AmiMonitor("127.0.0.1", port, "callpilot", "secret", lambda d, s: None,
                         login_timeout=0.3)
    seen: list[AmiState] = []
    original = monitor._set

    def spy(state: AmiState) -> None:
        original(state)
        seen.append(state)
    monitor._set = spy
    await monitor.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and stop_at not in seen:
            await asyncio.sleep(0.02)
    finally:
        monitor.close()
    return seen


async def test_accepted_login_is_logged_in():
    async with FakeAmi("accept") as ami:
        seen = await _states_seen(ami.port, 5, stop_at=AmiState.LOGGED_IN)
    assert AmiState.LOGGED_IN in seen and AmiState.AUTH_FAILED not in seen


async def test_login_asks_for_device_state_events_only_before_the_resync():
    """Every channel and dialplan event would otherwise reach serve (docs/decisions.md D21)."""
    async with FakeAmi("accept") as ami:
        monitor = AmiMonitor("127.0.0.1", ami.port, "callpilot", "secret", lambda d, s: None)
        await monitor.start()
        try:
            for _ in range(500):
                if len(ami.actions) >= 3:
                    break
                await asyncio.sleep(0.01)
        finally:
            monitor.close()
    assert [a["action"] for a in ami.actions[:3]] == ["Login", "Filter", "DeviceStateList"]
    assert (ami.actions[1]["operation"], ami.actions[1]["filter"]) == ("Add", "Event: DeviceStateChange")


async def _run_until(monitor: AmiMonitor, done) -> None:
    """Run the monitor until ``done()`` (at most 5 s), then a moment more for stragglers."""
    await monitor.start()
    try:
        for _ in range(500):
            if done():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        monitor.close()


def _new_channel(context: str, exten: str, number: str) -> str:
    return (f"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-0000000{len(number)}\r\n"
            f"CallerIDNum: {number}\r\nContext: {context}\r\nExten: {exten}\r\nPriority: 1\r\n\r\n")


async def test_a_watched_context_adds_its_newchannel_filter_and_reports_its_extensions_only():
    """The trunk's new channels for the watched DIDs reach the callback; another DID, another
    context (an agent leg) do not; Asterisk is asked for exactly that event (D36)."""
    events = (_new_channel("from-trunk", "8501", "4101"), _new_channel("from-trunk", "800", "4102"),
              _new_channel("from-agents", "8501", "4103"), _new_channel("from-trunk", "8502", "4104"))
    seen: list[str] = []
    async with FakeAmi("accept", events) as ami:
        monitor = AmiMonitor("127.0.0.1", ami.port, "callpilot", "secret", lambda d, s: None)
        monitor.on_new_channel("from-trunk", frozenset({"8501", "8502"}), seen.append)
        await _run_until(monitor, lambda: len(seen) >= 2)
    assert seen == ["4101", "4104"]
    filters = [a for a in ami.actions if a["action"] == "Filter"]
    assert [(f.get("matchcriteria"), f["filter"]) for f in filters] == [
        (None, "Event: DeviceStateChange"),
        ("name(Newchannel),header(Context),method(exact)", "from-trunk")]


async def test_a_failing_channel_callback_is_logged_and_later_events_still_arrive(caplog):
    events = (_new_channel("from-trunk", "8501", "4101"), _new_channel("from-trunk", "8501", "4102"))
    seen: list[str] = []

    def callback(number: str) -> None:
        seen.append(number)
        if number == "4101":
            raise RuntimeError("broken subscriber")
    async with FakeAmi("accept", events) as ami:
        monitor = AmiMonitor("127.0.0.1", ami.port, "callpilot", "secret", lambda d, s: None)
        monitor.on_new_channel("from-trunk", frozenset({"8501"}), callback)
        await _run_until(monitor, lambda: len(seen) >= 2)
    assert seen == ["4101", "4102"]
    assert "Newchannel handler failed" in caplog.text


async def test_refused_credentials_are_auth_failed():
    async with FakeAmi("refuse") as ami:
        seen = await _states_seen(ami.port, 5, stop_at=AmiState.AUTH_FAILED)
    assert AmiState.AUTH_FAILED in seen and AmiState.LOGGED_IN not in seen


async def test_other_login_error_is_not_auth_failed():
    async with FakeAmi("other_error") as ami:
        seen = await _states_seen(ami.port, 5, stop_at=AmiState.LOGIN_FAILED)
    assert AmiState.LOGIN_FAILED in seen
    assert AmiState.AUTH_FAILED not in seen


async def test_silent_login_times_out_and_reconnects_without_auth_failed():
    async with FakeAmi("silent") as ami:
        seen = await _states_seen(ami.port, 2.5)
        logins = ami.logins
    assert AmiState.LOGIN_FAILED in seen
    assert AmiState.AUTH_FAILED not in seen
    assert logins >= 2, "the monitor must drop a silent link and log in again"


async def test_link_dropped_during_login_is_not_auth_failed():
    async with FakeAmi("drop") as ami:
        seen = await _states_seen(ami.port, 1.5)
        logins = ami.logins
    assert logins >= 1
    assert AmiState.DISCONNECTED in seen
    assert AmiState.AUTH_FAILED not in seen


async def test_nothing_listening_stays_disconnected():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    seen = await _states_seen(port, 1.0)
    assert AmiState.AUTH_FAILED not in seen and AmiState.LOGGED_IN not in seen


# -- the verdict itself ----------------------------------------------------------------------

def _done(loop, result=None, exc=None, cancel=False) -> asyncio.Future:
    future = loop.create_future()
    if cancel:
        future.cancel()
    elif exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
    return future


@pytest.mark.parametrize("reply, state", [
    ({"Response": "Success", "Message": "Authentication accepted"}, AmiState.LOGGED_IN),
    ({"Response": "Error", "Message": "Authentication failed"}, AmiState.AUTH_FAILED),
    ({"Response": "Error", "Message": "Too many sessions"}, AmiState.LOGIN_FAILED),
    ({"Response": "Fail"}, AmiState.LOGIN_FAILED),
])
async def test_verdict_of_a_reply(reply, state):
    loop = asyncio.get_running_loop()
    assert login_verdict(_done(loop, Message(reply)))[0] is state


async def test_verdict_of_an_exception_or_cancel_is_never_auth_failed():
    loop = asyncio.get_running_loop()
    for future in (_done(loop, exc=ConnectionResetError("reset")),
                   _done(loop, exc=asyncio.TimeoutError()), _done(loop, cancel=True)):
        state, why = login_verdict(future)
        assert state is AmiState.LOGIN_FAILED and why
