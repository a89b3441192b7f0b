"""ARI events handled in lanes: in order within a lane, lanes side by side.

A lane is one call (its caller's channel and the agent legs derived from it, see
``channel_events.lane_of``).  Before lanes, every handler ran in turn on the one socket reader,
so one ARI request that hung froze event handling for every call.  Now a slow handler delays
only the later events of its own call; each handler also has a deadline (a backstop: the
domains put their own, shorter deadlines on each action and make the call safe themselves).
The deadline is kept by one watchdog timer that looks at the running handlers every tenth of
it, not by a timer per event (``asyncio.timeout`` cost ~8 us per event; D35): a handler is
cancelled between its deadline and 10 % after it.
A lane's task ends when its queue is empty; nothing is kept for calls that are gone.

:meth:`EventLanes.push_here` lets the socket reader run an idle lane itself (it hands the
socket to a new reader task first): the first event of a call, its StasisStart, then reaches
its handler without a task hop and a loop turn (docs/decisions.md D35).  Events that come
meanwhile for that lane queue behind it as for any lane.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Event = dict[str, Any]
HANDLER_DEADLINE = 30.0


class EventLanes:
    def __init__(self, handle: Callable[[Event], Awaitable[None]], lane_of: Callable[[Event], str],
                 *, deadline: float = HANDLER_DEADLINE):
        self.handle = handle
        self.lane_of = lane_of
        self.deadline = deadline
        self._queues: dict[str, deque[Event]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._started: dict[str, float] = {}      # lane -> when its running handler started
        self._expired: set[str] = set()           # lanes whose handler the watchdog cancelled
        self._watchdog: asyncio.TimerHandle | None = None

    def push(self, event: Event) -> None:
        lane = self.lane_of(event)
        queue = self._queues.get(lane)
        if queue is not None:
            queue.append(event)
            return
        self._queues[lane] = deque([event])
        self._tasks[lane] = asyncio.create_task(self._drain(lane), name=f"ari-lane-{lane}")

    def push_here(self, event: Event) -> str | None:
        """Like :meth:`push`, but an idle lane becomes the calling task's: its name is
        returned and the caller must ``await drain_here(lane)`` before it awaits anything else
        (None: the event queued behind its lane's)."""
        lane = self.lane_of(event)
        queue = self._queues.get(lane)
        if queue is not None:
            queue.append(event)
            return None
        self._queues[lane] = deque([event])
        self._tasks[lane] = asyncio.current_task()
        return lane

    async def drain_here(self, lane: str) -> None:
        """Run the lane taken by :meth:`push_here` in the calling task, until it is empty."""
        await self._drain(lane)

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def _drain(self, lane: str) -> None:
        queue = self._queues[lane]
        try:
            while queue:
                await self._run(lane, queue.popleft())
        finally:
            self._queues.pop(lane, None)
            self._tasks.pop(lane, None)

    async def _run(self, lane: str, event: Event) -> None:
        loop = asyncio.get_running_loop()
        self._started[lane] = loop.time()
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.deadline / 10, self._check)
        try:
            await self.handle(event)
        except asyncio.CancelledError:
            if lane not in self._expired:
                raise                                     # shutdown: not ours to swallow
            asyncio.current_task().uncancel()
            logger.error("lane %s: %s handler over its %.0fs deadline: cancelled", lane,
                         event.get("type"), self.deadline)
        except Exception:  # one failed handler must not stop the lane
            logger.exception("lane %s: handler failed on %s", lane, event.get("type"))
        finally:
            self._started.pop(lane, None)
            self._expired.discard(lane)

    def _check(self) -> None:
        """The watchdog: cancel each handler past its deadline; again while any runs."""
        self._watchdog = None
        loop = asyncio.get_running_loop()
        overdue = loop.time() - self.deadline
        for lane, started in list(self._started.items()):
            task = self._tasks.get(lane)
            if started <= overdue and lane not in self._expired and task is not None:
                self._expired.add(lane)
                task.cancel()
        if self._started:
            self._watchdog = loop.call_later(self.deadline / 10, self._check)

    async def idle(self) -> None:
        """Wait until every lane has drained (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for task in list(self._tasks.values()):
            task.cancel()
