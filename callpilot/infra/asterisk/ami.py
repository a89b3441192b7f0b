"""AMI monitor on panoramisk: agent phones' device states, and trunk calls as they arrive.

panoramisk reconnects by itself; after every login we re-read all device states
(``DeviceStateList``) so nothing missed while disconnected stays stale.  panoramisk's
``dispatch`` drops callback exceptions, so every callback here catches and logs its own.

Each login also adds a session filter (``Filter`` action) for ``DeviceStateChange``: the only
event read here.  Without it Asterisk sends every channel, dialplan and variable event of
every call, and parsing them cost serve more CPU than its own call handling
(docs/decisions.md D21).  Action replies (the resync's list) are not filtered.

A subscriber may also ask for ``Newchannel`` of one context (:meth:`AmiMonitor.on_new_channel`):
a caller's channel exists a few milliseconds before its StasisStart (the dialplan answers it
first), time enough to look its caller up ahead (docs/decisions.md D36).  That filter is
Asterisk's advanced one (event name and the ``Context`` header, no regex over the payload),
so only those channels' creations reach serve, one event per caller.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from panoramisk import Manager

logger = logging.getLogger(__name__)

DeviceCallback = Callable[[str, str], None]
ChannelCallback = Callable[[str], None]    # the caller number of the new channel


class AmiState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"        # TCP up, not yet logged in
    LOGGED_IN = "logged_in"
    AUTH_FAILED = "auth_failed"    # Asterisk refused the user/secret: retried, never silent
    LOGIN_FAILED = "login_failed"  # the login got no usable answer (link dropped, timed out,
                                   # an error other than refused credentials): retried


LOGIN_TIMEOUT = 10.0               # seconds a login may wait for Asterisk's answer
ACTION_TIMEOUT = 5.0               # seconds any other action may wait for its answer
EVENT_FILTER = "Event: DeviceStateChange"   # the one event type this monitor reads


def login_verdict(future: asyncio.Future) -> tuple[AmiState, str]:
    """What a finished Login action means: only Asterisk's own "Authentication failed"
    answer is a refused secret; a dropped link, a timeout or any other error is not."""
    if future.cancelled():
        return AmiState.LOGIN_FAILED, "login cancelled (connection closed)"
    exc = future.exception()
    if exc is not None:
        return AmiState.LOGIN_FAILED, f"login failed: {exc!r}"
    reply = future.result()
    if reply.success:
        return AmiState.LOGGED_IN, ""
    message = str(reply.get("Message", "")).strip()
    if reply.get("Response") == "Error" and "authentication" in message.lower():
        return AmiState.AUTH_FAILED, message
    return AmiState.LOGIN_FAILED, f"login answered {reply.get('Response')!r}: {message}"


class AmiMonitor:
    def __init__(self, host: str, port: int, user: str, secret: str, on_device_state: DeviceCallback,
                 *, login_timeout: float = LOGIN_TIMEOUT):
        self.state = AmiState.DISCONNECTED
        self.user = user
        self.login_timeout = login_timeout
        self._login_deadline: asyncio.TimerHandle | None = None
        self._on_device_state = on_device_state
        self.manager = Manager(host=host, port=port, username=user, secret=secret,
                               ping_delay=5, ping_interval=5, reconnect_timeout=1,
                               on_login=self._logged_in, on_connect=self._connected,
                               on_disconnect=self._disconnected, log=logger)
        self.manager.register_event("DeviceStateChange", self._device_event)
        self._resync_task: asyncio.Task | None = None
        self._channel_watches: dict[str, tuple[frozenset[str], ChannelCallback]] = {}

    def on_new_channel(self, context: str, extensions: frozenset[str], callback: ChannelCallback) -> None:
        """Call ``callback(caller number)`` when Asterisk creates a channel in
        ``context`` for one of ``extensions`` (from the next login on).  One watch per
        context; the callback runs on the loop and must be quick; its errors are logged."""
        if not self._channel_watches:
            self.manager.register_event("Newchannel", self._channel_event)
        self._channel_watches[context] = (frozenset(extensions), callback)

    def _set(self, state: AmiState) -> None:
        if state is not self.state:
            logger.info("AMI %s -> %s", self.state.value, state.value)
        self.state = state

    async def start(self) -> None:
        self.manager.loop = asyncio.get_running_loop()
        self.manager.connect()

    def close(self) -> None:
        self._cancel_deadline()
        self.manager.close()
        self._set(AmiState.DISCONNECTED)

    async def reload_module(self, module: str, timeout: float = ACTION_TIMEOUT) -> bool:
        """``Reload`` one module (e.g. ``res_pjsip.so`` after its config was rendered);
        False when AMI is not logged in, Asterisk refused, or no answer came in time."""
        if self.state is not AmiState.LOGGED_IN:
            logger.warning("AMI not logged in: %s not reloaded", module)
            return False
        try:
            reply = await asyncio.wait_for(
                self.manager.send_action({"Action": "Reload", "Module": module}), timeout)
        except (asyncio.TimeoutError, OSError) as exc:
            logger.warning("AMI reload of %s failed: %r", module, exc)
            return False
        if not reply.success:
            logger.warning("AMI reload of %s refused: %s", module, reply.get("Message", ""))
        return bool(reply.success)

    def _connected(self, manager) -> None:
        if self.state is not AmiState.AUTH_FAILED:   # a refused secret stays reported
            self._set(AmiState.CONNECTED)
        future = manager.authenticated_future
        if future is not None:
            future.add_done_callback(self._login_result)
            self._login_deadline = manager.loop.call_later(self.login_timeout, self._login_timed_out,
                                                           future)

    def _login_result(self, future) -> None:
        self._cancel_deadline()
        state, why = login_verdict(future)
        if state is AmiState.AUTH_FAILED:
            first = self.state is not AmiState.AUTH_FAILED
            self._set(AmiState.AUTH_FAILED)
            (logger.error if first else logger.debug)(
                "AMI refused user %r (%s): the secret in secrets.toml does not match the rendered "
                "manager.conf (run `callpilot asterisk render` and reload)", self.user, why)
        elif state is AmiState.LOGIN_FAILED:
            logger.warning("AMI %s; retrying", why)
            self._set(AmiState.LOGIN_FAILED)

    def _login_timed_out(self, future) -> None:
        """No answer to the login: report it and drop the link so panoramisk reconnects."""
        self._login_deadline = None
        if future.done() or self.state is AmiState.LOGGED_IN:
            return
        logger.warning("AMI login got no answer in %.1fs; reconnecting", self.login_timeout)
        self._set(AmiState.LOGIN_FAILED)
        protocol = self.manager.protocol
        if protocol is not None and getattr(protocol, "transport", None) is not None:
            protocol.transport.abort()   # connection_lost -> panoramisk's reconnect timer

    def _cancel_deadline(self) -> None:
        if self._login_deadline is not None:
            self._login_deadline.cancel()
            self._login_deadline = None

    def _disconnected(self, _manager, _exc) -> None:
        self._cancel_deadline()
        if self.state not in (AmiState.AUTH_FAILED, AmiState.LOGIN_FAILED):
            self._set(AmiState.DISCONNECTED)

    def _logged_in(self, _manager) -> None:
        self._set(AmiState.LOGGED_IN)
        self._resync_task = asyncio.ensure_future(self._resync())

    async def _resync(self) -> None:
        await self._filter_events()
        try:
            replies = await self.manager.send_action({"Action": "DeviceStateList"}, as_list=True)
            for msg in replies:
                if msg.get("Event") == "DeviceStateChange":
                    self._report(msg.get("Device", ""), msg.get("State", ""))
        except Exception:
            logger.exception("AMI device state resync failed")

    async def _filter_events(self) -> None:
        """Only DeviceStateChange events (and the watched contexts' Newchannel) for this
        session; if the first filter is refused, all events keep coming."""
        await self._add_filter({"Filter": EVENT_FILTER})
        for context in self._channel_watches:
            await self._add_filter({"MatchCriteria": "name(Newchannel),header(Context),method(exact)",
                                    "Filter": context})

    async def _add_filter(self, fields: dict[str, str]) -> None:
        try:
            reply = await asyncio.wait_for(self.manager.send_action(
                {"Action": "Filter", "Operation": "Add", **fields}), ACTION_TIMEOUT)
            if not reply.success:
                logger.warning("AMI event filter %s refused: %s", fields, reply.get("Message", reply))
        except Exception:
            logger.exception("AMI event filter %s failed", fields)

    def _device_event(self, _manager, message) -> None:
        try:
            self._report(message.get("Device", ""), message.get("State", ""))
        except Exception:
            logger.exception("AMI DeviceStateChange handler failed")

    def _channel_event(self, _manager, message) -> None:
        try:
            watch = self._channel_watches.get(message.get("Context", ""))
            extension = message.get("Exten", "")
            if watch is not None and extension in watch[0]:
                watch[1](message.get("CallerIDNum", ""))
        except Exception:
            logger.exception("AMI Newchannel handler failed")

    def _report(self, device: str, state: str) -> None:
        if device.upper().startswith("PJSIP/"):
            self._on_device_state(device, state)
