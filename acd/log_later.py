"""Log lines held back for a moment: the state transitions on the way to an agent's phone
(the call queued and ringing, the agent ringing) are written once the originate has gone
out, not before it (D29: writing a log line costs about as much as routing the call).
Nothing is dropped: every line is written, in order, a loop turn later."""
from __future__ import annotations

import logging


class LogLater:
    def __init__(self) -> None:
        self._lines: list[tuple[logging.Logger, str, tuple]] = []

    def info(self, log: logging.Logger, msg: str, *args: object) -> None:
        self._lines.append((log, msg, args))

    def __len__(self) -> int:
        return len(self._lines)

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        for log, msg, args in lines:
            log.info(msg, *args)


class LogNow:
    """The same interface, writing at once (the default of the ``move`` methods)."""

    @staticmethod
    def info(log: logging.Logger, msg: str, *args: object) -> None:
        log.info(msg, *args, stacklevel=2)     # the record names the mover, as before


NOW = LogNow()
