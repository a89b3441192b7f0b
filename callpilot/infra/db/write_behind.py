"""Ordered, coalesced background writes on one thread, for the call path.

``post(fn, *args)`` returns at once; posts are handed to the worker thread together after
``delay`` seconds (or at once when no event loop runs), so the database neither sits between
a caller entering a queue and an agent's phone ringing, nor competes for the GIL while that
happens.  ``run`` pushes what is pending first, so every write keeps its order.  A crash
loses at most the last ``delay`` of posts; ``close`` writes them.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)


class WriteBehind:
    def __init__(self, name: str, delay: float = 0.02):
        self.name = name
        self.delay = delay
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[tuple[Callable, tuple]] = []
        self._timer: asyncio.TimerHandle | None = None

    def post(self, fn: Callable, *args: Any) -> None:
        self._pending.append((fn, args))
        if self._timer is not None:
            return
        try:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self.push)
        except RuntimeError:      # no event loop (scripts, sync tests): write now
            self.push()

    def push(self) -> Future | None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return None
        batch, self._pending = self._pending, []
        return self._pool.submit(self._apply, batch)

    def _apply(self, batch: list[tuple[Callable, tuple]]) -> None:
        for fn, args in batch:
            try:
                fn(*args)
            except Exception:  # one bad write must not drop the rest of the batch
                logger.exception("%s: background write %s failed", self.name,
                                 getattr(fn, "__name__", fn))

    async def run(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn`` on the writer thread after everything posted before it."""
        self.push()
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args))

    def flush(self) -> None:
        """Block until everything posted so far is written."""
        self.push()
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self.push()
        self._pool.shutdown(wait=True)
