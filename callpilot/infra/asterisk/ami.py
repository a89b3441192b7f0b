"""AMI monitor on panoramisk: agent phones' device states.

panoramisk reconnects by itself; after every login we re-read all device states
(``DeviceStateList``) so nothing missed while disconnected stays stale.  panoramisk's
``dispatch`` drops callback exceptions, so every callback here catches and logs its own.
"""
from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from panoramisk import Manager

logger = logging.getLogger(__name__)

DeviceCallback = Callable[[str, str], None]


class AmiState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"        # TCP up, not yet logged in
    LOGGED_IN = "logged_in"
    AUTH_FAILED = "auth_failed"    # Asterisk refused the user/secret: retried, never silent


class AmiMonitor:
    def __init__(self, host: str, port: int, user: str, secret: str, on_device_state: DeviceCallback):
        self.state = AmiState.DISCONNECTED
        self.user = user
        self._on_device_state = on_device_state
        self.manager = Manager(host=host, port=port, username=user, secret=secret,
                               ping_delay=5, ping_interval=5, reconnect_timeout=1,
                               on_login=self._logged_in, on_connect=self._connected,
                               on_disconnect=self._disconnected, log=logger)
        self.manager.register_event("DeviceStateChange", self._device_event)
        self._resync_task: asyncio.Task | None = None

    def _set(self, state: AmiState) -> None:
        if state is not self.state:
            logger.info("AMI %s -> %s", self.state.value, state.value)
        self.state = state

    async def start(self) -> None:
        self.manager.loop = asyncio.get_running_loop()
        self.manager.connect()

    def close(self) -> None:
        self.manager.close()
        self._set(AmiState.DISCONNECTED)

    def _connected(self, manager) -> None:
        if self.state is not AmiState.AUTH_FAILED:   # a refused secret stays reported
            self._set(AmiState.CONNECTED)
        if manager.authenticated_future is not None:
            manager.authenticated_future.add_done_callback(self._login_result)

    def _login_result(self, future) -> None:
        try:
            accepted = bool(future.result().success)
        except Exception:
            accepted = False
        if not accepted:
            first = self.state is not AmiState.AUTH_FAILED
            self._set(AmiState.AUTH_FAILED)
            (logger.error if first else logger.debug)("AMI refused user %r: the secret in secrets.toml does not match the "
                         "rendered manager.conf (run `callpilot asterisk render` and reload)",
                         self.user)

    def _disconnected(self, _manager, _exc) -> None:
        if self.state is not AmiState.AUTH_FAILED:
            self._set(AmiState.DISCONNECTED)

    def _logged_in(self, _manager) -> None:
        self._set(AmiState.LOGGED_IN)
        self._resync_task = asyncio.ensure_future(self._resync())

    async def _resync(self) -> None:
        try:
            replies = await self.manager.send_action({"Action": "DeviceStateList"}, as_list=True)
            for msg in replies:
                if msg.get("Event") == "DeviceStateChange":
                    self._report(msg.get("Device", ""), msg.get("State", ""))
        except Exception:
            logger.exception("AMI device state resync failed")

    def _device_event(self, _manager, message) -> None:
        try:
            self._report(message.get("Device", ""), message.get("State", ""))
        except Exception:
            logger.exception("AMI DeviceStateChange handler failed")

    def _report(self, device: str, state: str) -> None:
        if device.upper().startswith("PJSIP/"):
            self._on_device_state(device, state)
