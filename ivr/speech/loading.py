"""Speech engines loaded in the background, so that nothing waits for them but a listen.

A Vosk model takes 2.4 s to load on a quiet machine and 12 s under load (docs: D40).
``serve`` used to load it before it connected to ARI: after every restart no caller reached
the ACD for that long, even on a DID that needs no speech.  Now the composition root builds
a :class:`SpeechLoading` from the plan (:func:`ivr.speech.engines.plan`: cheap checks only),
connects to Asterisk and calls :meth:`SpeechLoading.start`: one worker thread loads the
engines one language after the other.  Each language goes ``loading`` -> ``ready`` (with its
load seconds) or ``failed`` (with the reason), logged once and shown by ``callpilot status``.

Who waits, and how long:

* a call's listen (:meth:`SpeechLoading.ready`, ARI and FastAGI drivers) up to the call's
  budget, ``speech_load_wait`` seconds (5 by default) over all its listens; past it, or if
  the load failed, the question is asked by keys, as when the audio path cannot be built;
* flow validation (the admin web's publish) up to :data:`VALIDATE_WAIT_SECONDS`
  (:meth:`SpeechLoading.wait_sync`); a language still loading then makes the check fail
  with "still loading, try again" (:func:`ivr.wiring.validator`);
* prompts, keys, the ACD: never.

Once loaded the engines are the same objects as before, in the same
:class:`~ivr.speech.engines.SpeechEngines` the drivers always read.

Test knob: with ``CALLPILOT_TEST_SPEECH_GATE=<path>`` in its environment, the worker thread
waits until that file exists before it loads anything (at most :data:`GATE_LIMIT_SECONDS`),
so an end-to-end test can hold serve in ``loading`` for as long as it needs.  Nothing else
sets it.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.speech.engine import SpeechEngine
from ivr.speech.engines import Planned, SpeechEngines, primary

logger = logging.getLogger(__name__)

LOAD_WAIT_SECONDS = 5.0          # a call's budget for waiting on the load (speech_load_wait)
VALIDATE_WAIT_SECONDS = 15.0     # a publish waits this long for a loading model
TEST_GATE_ENV = "CALLPILOT_TEST_SPEECH_GATE"
GATE_LIMIT_SECONDS = 300.0
GATE_POLL_SECONDS = 0.05


class SpeechState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class LoadStatus:
    state: SpeechState = SpeechState.LOADING
    seconds: float | None = None      # how long the load took (ready or failed)
    reason: str = ""                  # why it failed

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"state": self.state.value}
        if self.seconds is not None:
            shown["seconds"] = round(self.seconds, 2)
        if self.reason:
            shown["reason"] = self.reason
        return shown


Observer = Callable[[str, LoadStatus], None]


def gate_from_env() -> Callable[[], None] | None:
    """The test knob (module docstring): a wait for the file named by the environment."""
    path = os.environ.get(TEST_GATE_ENV)
    return (lambda: wait_for_file(Path(path), GATE_LIMIT_SECONDS)) if path else None


def wait_for_file(path: Path, limit: float) -> None:
    logger.warning("speech: test gate %s: loading waits for that file", path)
    deadline = time.monotonic() + limit
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(GATE_POLL_SECONDS)


class SpeechLoading:
    """The configured engines, loaded by one worker thread after :meth:`start`.

    Offers what the drivers use of :class:`~ivr.speech.engines.SpeechEngines`
    (``for_language``, ``languages``, truth, ``ready``) plus the load's state per language.
    """

    def __init__(self, planned: Mapping[str, Planned], *, gate: Callable[[], None] | None = None) -> None:
        self.engines = SpeechEngines()
        self._planned = dict(planned)
        self.status: dict[str, LoadStatus] = {lang: LoadStatus() for lang in self._planned}
        self._done = {lang: threading.Event() for lang in self._planned}
        self._loop_events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate = gate
        self._thread: threading.Thread | None = None
        self.observers: list[Observer] = []

    # -- what SpeechEngines offers ----------------------------------------------------------
    @property
    def languages(self) -> set[str]:
        """Every language with an engine planned, loaded or not (the flows may listen)."""
        return set(self._planned)

    def __bool__(self) -> bool:
        return bool(self._planned)

    def for_language(self, language: str | None) -> SpeechEngine | None:
        """The engine if it is loaded now (never waits)."""
        return self.engines.for_language(language)

    async def ready(self, language: str | None, timeout: float) -> SpeechEngine | None:
        """The engine of ``language`` once loaded, waiting at most ``timeout`` seconds;
        None if there is none, it failed, or it is still loading then."""
        lang = primary(language) if language else ""
        event = self._loop_events.get(lang)
        if event is not None and not event.is_set() and timeout > 0:
            with contextlib.suppress(asyncio.TimeoutError):       # the caller says so, once
                await asyncio.wait_for(event.wait(), timeout)
        return self.engines.for_language(language)

    def wait_sync(self, language: str, timeout: float) -> LoadStatus | None:
        """Block this (non-loop) thread until ``language`` is no longer loading, at most
        ``timeout`` s; its status then (None: not planned)."""
        done = self._done.get(language)
        if done is None:
            return None
        if self._thread is not None:
            done.wait(timeout)
        return self.status[language]

    # -- the load ---------------------------------------------------------------------------
    def start(self) -> SpeechLoading:
        """Start the worker thread (once).  Called on serve's loop, calls' listens can wait
        for it there; the web calls it from a plain thread."""
        if self._thread is not None:
            return self
        try:
            self._loop = asyncio.get_running_loop()
            self._loop_events = {lang: asyncio.Event() for lang in self._planned}
        except RuntimeError:
            self._loop = None
        for language in self._planned:
            self._notify(language, self.status[language])
        self._thread = threading.Thread(target=self._load_all, name="speech-load", daemon=True)
        self._thread.start()
        return self

    def _load_all(self) -> None:
        if self._gate is not None:
            self._gate()
        for language in self._planned:
            self._load_one(language)

    def _load_one(self, language: str) -> None:
        started = time.perf_counter()
        try:
            engine = self._planned[language].load()
            engine.known_phrases(["warm"])        # vocabulary read now, not in a first check
        except Exception as exc:  # noqa: BLE001  (any failure: the language is keys only)
            status = LoadStatus(SpeechState.FAILED, time.perf_counter() - started, str(exc) or type(exc).__name__)
            logger.error("speech %s: loading -> failed after %.1f s (%s); its questions are asked by keys",
                         language, status.seconds, status.reason)
        else:
            self.engines.by_language[language] = engine
            status = LoadStatus(SpeechState.READY, time.perf_counter() - started)
            logger.info("speech %s: loading -> ready in %.1f s (%s)", language, status.seconds, engine.name)
        self.status[language] = status
        if not self._tell_loop(language, status):
            self._notify(language, status)
        self._done[language].set()

    def _tell_loop(self, language: str, status: LoadStatus) -> bool:
        """Hand the end of a load to serve's loop (its waiters, the observers); False when
        there is no loop (the web) or it has closed (serve stopped meanwhile)."""
        if self._loop is None:
            return False
        try:
            self._loop.call_soon_threadsafe(self._loaded, language, status)
            return True
        except RuntimeError:
            return False

    def _loaded(self, language: str, status: LoadStatus) -> None:
        self._loop_events[language].set()
        self._notify(language, status)

    def _notify(self, language: str, status: LoadStatus) -> None:
        for observer in self.observers:
            try:
                observer(language, status)
            except Exception:  # an observer (metrics) must not stop the load's bookkeeping
                logger.exception("speech load observer failed")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per language: state, seconds, reason (``callpilot status``)."""
        return {lang: status.as_dict() for lang, status in sorted(self.status.items())}


class CallWait:
    """One call's patience with engines still loading: ``budget`` seconds over all of its
    listens (the first listen waits, later ones only get what is left), then keys only."""

    def __init__(self, engines: Any, budget: float, call_id: str) -> None:
        self.engines = engines            # SpeechLoading, or SpeechEngines (already loaded)
        self.left = budget
        self.call_id = call_id
        self.waited = 0.0                 # seconds this call spent waiting, all listens
        self._told = False

    def pending(self, language: str | None) -> bool:
        """Would :meth:`engine` wait (the language's model still loading, budget left)?"""
        return (bool(language) and self.left > 0 and self.engines.for_language(language) is None
                and self._state(language) is SpeechState.LOADING)

    async def engine(self, language: str | None) -> SpeechEngine | None:
        engine = self.engines.for_language(language)
        if engine is not None or not language or primary(language) not in self.engines.languages:
            return engine
        if self.pending(language):
            started = time.monotonic()
            engine = await self.engines.ready(language, self.left)
            spent = time.monotonic() - started
            self.left -= spent
            self.waited += spent
        if engine is None and not self._told:
            self._told = True
            state = self._state(language)
            logger.info("call %s: speech %s not ready after %.1f s (%s): asking by keys",
                        self.call_id, primary(language), self.waited, state.value if state else "no engine")
        return engine

    def _state(self, language: str) -> SpeechState | None:
        status = getattr(self.engines, "status", {}).get(primary(language))
        return status.state if status is not None else None
