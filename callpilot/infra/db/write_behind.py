"""Ordered, batched background writes on one thread, for the call path.

``post(op)`` returns at once; posts gather in a batch that is handed to the worker thread
after ``delay`` seconds (or at once when no event loop runs), so the database neither sits
between a caller entering a queue and an agent's phone ringing, nor competes for the GIL
while that happens.  The whole batch goes to ``apply`` in one call: the stores write it in
one transaction (one commit per flush, not per write) and may coalesce it (several updates
of one call record become one statement; see ``records.RecordBatch``).  ``run`` pushes what
is pending first, so every write keeps its order.  A crash loses at most the last ``delay``
of posts; ``close`` writes them.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)

Op = TypeVar("Op")


class Batch(Protocol[Op]):
    """What gathers posts between two flushes (a plain ``list`` does)."""

    def append(self, op: Op) -> None: ...

    def __len__(self) -> int: ...


class WriteBehind(Generic[Op]):
    def __init__(self, name: str, apply: Callable[[Any], None], delay: float = 0.02, *,
                 new_batch: Callable[[], Batch[Op]] = list):
        self.name = name
        self.delay = delay
        self.flushes = 0                  # batches handed to ``apply`` (tests count them)
        self._apply_batch = apply
        self._new_batch = new_batch
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: Batch[Op] = new_batch()
        self._timer: asyncio.TimerHandle | None = None

    def post(self, op: Op) -> None:
        self._pending.append(op)
        if self._timer is not None:
            return
        try:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self.push)
        except RuntimeError:      # no event loop (scripts, sync tests): write now
            self.push()

    def push(self) -> Future | None:
        """Hand the pending batch to the writer thread; its future (None if nothing pends)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not len(self._pending):
            return None
        batch, self._pending = self._pending, self._new_batch()
        self.flushes += 1
        return self._pool.submit(self._apply, batch)

    def _apply(self, batch: Batch[Op]) -> None:
        try:
            self._apply_batch(batch)
        except Exception:  # the stores log their own failures; this is the backstop
            logger.exception("%s: background batch of %d writes failed", self.name, len(batch))

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
