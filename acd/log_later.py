"""Log lines (and other bookkeeping) held back for a moment: the state transitions on the way
to an agent's phone (the call queued and ringing, the agent ringing) are written once the
originate has gone out, not before it (D29: writing a log line costs about as much as routing
the call); so are the offer's record update and metric (D36).  Nothing is dropped: every
line is written and every step done, in order, a loop turn later."""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

logger = logging.getLogger(__name__)


class LogLater:
    def __init__(self) -> None:
        self._lines: list[Callable[[], object]] = []

    def info(self, log: logging.Logger, msg: str, *args: object) -> None:
        self._lines.append(partial(log.info, msg, *args))

    def then(self, step: Callable[..., object], *args: object, **kwargs: object) -> None:
        """``step(*args, **kwargs)`` at the flush, in order with the lines."""
        self._lines.append(partial(step, *args, **kwargs))

    def __len__(self) -> int:
        return len(self._lines)

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        for line in lines:
            try:
                line()
            except Exception:  # noqa: BLE001  (one failed step must not drop the ones after it)
                logger.exception("held-back step %r failed", line)


class LogNow:
    """The same interface, writing at once (the default of the ``move`` methods)."""

    @staticmethod
    def info(log: logging.Logger, msg: str, *args: object) -> None:
        log.info(msg, *args, stacklevel=2)     # the record names the mover, as before


NOW = LogNow()
