"""The IVR's CallDriver over FastAGI (panoramisk): same flows for sites that keep control
in the dialplan.  DTMF + prompts here; speech over AGI goes through recording + Vosk.
"""
from __future__ import annotations

import logging
import time

from ivr.driver import CallerHangup

logger = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"


def sound_path(uri: str) -> str:
    """'sound:/abs/x' -> '/abs/x' (AGI STREAM FILE takes a path without extension)."""
    return uri.split(":", 1)[1] if uri.startswith("sound:") else uri


class AgiCallDriver:
    def __init__(self, request):
        self.request = request
        headers = request.headers
        self.call_id = headers.get("agi_uniqueid", "")
        self.caller_id = headers.get("agi_callerid", "")
        self.did = headers.get("agi_extension", "")

    async def _command(self, command: str) -> dict:
        result = await self.request.send_command(command)
        if result.get("error") in ("AGIResultHangup", "AGIAppError") or result.get("status_code") == 511:
            raise CallerHangup(self.call_id)
        if "error" in result:
            logger.warning("call %s: AGI %r -> %s", self.call_id, command, result)
        return result

    async def answer(self) -> None:
        await self._command("ANSWER")

    async def play(self, sounds: list[str], *, barge_in: bool = True) -> str | None:
        keys = ALL_KEYS if barge_in else '""'
        for uri in sounds:
            result = await self._command(f'STREAM FILE {sound_path(uri)} {keys}')
            digit = _digit(result)
            if digit:
                return digit
        return None

    async def read_digits(self, *, max_digits: int, timeout: float, terminator: str | None = "#",
                          first: str | None = None, inter_digit_timeout: float = 3.0) -> str:
        collected = first or ""
        wait = inter_digit_timeout if collected else timeout
        while len(collected) < max_digits:
            started = time.monotonic()
            digit = _digit(await self._command(f"WAIT FOR DIGIT {int(wait * 1000)}"))
            if not digit:
                break
            if terminator and digit == terminator:
                break
            collected += digit
            wait = inter_digit_timeout
            logger.debug("call %s: digit %s after %.1fs", self.call_id, digit, time.monotonic() - started)
        return collected

    async def set_variable(self, name: str, value: str) -> None:
        await self._command(f'SET VARIABLE {name} "{value}"')

    async def hangup(self) -> None:
        try:
            await self._command("HANGUP")
        except CallerHangup:
            pass


def _digit(result: dict) -> str:
    """AGI returns the key's ASCII code in result=; 0 means none."""
    try:
        code = int(result.get("result", ("0",))[0])
    except (TypeError, ValueError):
        return ""
    return chr(code) if code > 0 else ""
