"""While a caller waits: periodic position / estimated-wait announcements and the max-wait
timer that overflows the call to another queue.  One watcher task per waiting call."""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable

from acd.announcements import announcement
from acd.queues import QueueBook
from acd.state import CallState, LiveCall
from acd.stats import estimated_wait
from callpilot.infra.messages import MessageCatalogue, Said

logger = logging.getLogger(__name__)

Speak = Callable[[str, str, str | None], Awaitable[None]]   # (call id, text, language)
Overflow = Callable[[LiveCall, str | None], Awaitable[None]]


def language_of(call: LiveCall) -> str | None:
    """The language the call was served in (IVR flow or the caller's profile)."""
    language = call.attributes.get("language")
    return language if isinstance(language, str) and language else None


class WaitingRoom:
    def __init__(self, queues: QueueBook, speak: Speak | None, overflow: Overflow,
                 position: Callable[[LiveCall], int], staffed: Callable[[str], int],
                 messages: MessageCatalogue):
        self.queues = queues
        self.messages = messages
        self.speak = speak
        self.overflow = overflow
        self.position = position         # the call's place in its queue's line (O(log n))
        self.staffed = staffed
        self.handle_times: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=50))
        self._watchers: dict[str, asyncio.Task] = {}
        self.announced: dict[str, int] = {}       # call id -> announcements played
        # set by the composition root when callbacks are on: the callback offer
        self.offer_after: Callable[[str], float] = lambda queue: 0.0    # 0: never offered by EWT
        self.offer_key: Callable[[str], str] = lambda queue: ""         # queue -> its offer key

    def watch(self, call: LiveCall) -> None:
        self.forget(call.id)
        self._watchers[call.id] = asyncio.create_task(self._watch(call), name=f"wait-{call.id}")

    def forget(self, call_id: str) -> None:
        self.announced.pop(call_id, None)
        task = self._watchers.pop(call_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def stop(self) -> None:
        for call_id in list(self._watchers):
            self.forget(call_id)

    def record_handle_time(self, queue: str, seconds: float) -> None:
        self.handle_times[queue].append(seconds)

    async def _watch(self, call: LiveCall) -> None:
        settings = self.queues.get(call.queue or "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.max_wait_seconds if settings.max_wait_seconds else None
        every = settings.announce_frequency or None
        try:
            while call.state in (CallState.QUEUED, CallState.RINGING):
                pause = min(x for x in (every, deadline and deadline - loop.time(), 3600) if x)
                await asyncio.sleep(max(0.0, pause))
                if deadline is not None and loop.time() >= deadline and call.state is CallState.QUEUED:
                    self._watchers.pop(call.id, None)
                    await self.overflow(call, settings.overflow_queue)
                    return
                if every and call.state is CallState.QUEUED and self.speak is not None:
                    said = self.announcement(call)
                    await self.speak(call.id, said.text, said.language)
                    self.announced[call.id] = self.announced.get(call.id, 0) + 1
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("call %s: waiting-room watcher failed", call.id)

    def estimated_wait(self, call: LiveCall) -> float | None:
        return estimated_wait(self.position(call), list(self.handle_times[call.queue or ""]),
                              self.staffed(call.queue or ""))

    def announcement(self, call: LiveCall) -> Said:
        """Position and wait, the queue's own text, and the callback offer when the wait
        passes the queue's threshold: in the call's language."""
        settings = self.queues.get(call.queue or "")
        wait = self.estimated_wait(call)
        language = language_of(call)
        said = announcement(self.messages, self.position(call), wait,
                            say_position=settings.announce_position, language=language)
        own = settings.periodic_announcement(language)   # the queue's words, in the call's language
        if own is not None:
            said = said.then(own)
        threshold = self.offer_after(call.queue or "")
        key = self.offer_key(call.queue or "")
        if threshold and wait is not None and wait > threshold and key:
            said = said.then(self.messages.say("callback.offer", language, digit=key))
        return said
