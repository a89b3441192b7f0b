"""Speech engines loaded in the background (D40): the state machine per language, a listen
waiting for the load within its call's budget, the keys-only fallback when the load failed
or is too slow, and flow validation while a model loads.

Loads are held back by a gate (a ``threading.Event`` the test sets), never by a sleep; the
ARI and AGI listens run the real Korean Vosk model on espeak-ng audio, Asterisk is faked
(the fakes of ``test_ivr_listen``).
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from callpilot.app.cli import speech_line
from callpilot.app.serve_metrics import speech_states
from callpilot.infra.asterisk.channel_events import ChannelInbox
from ivr.agi_driver import AgiCallDriver, AgiSpeech
from ivr.ari_driver import AriCallDriver, AriSpeech
from ivr.driver import DTMF, Recognition
from ivr.flows import builtin_names, load_builtin
from ivr.speech import SpeechModel, SpeechUnavailable
from ivr.speech.engines import Planned, load, plan
from ivr.speech.loading import CallWait, LoadStatus, SpeechLoading, SpeechState
from ivr.wiring import validator
from tests.unit.test_ivr_listen import FakeAgi, FakeAri, FakeMedia, FakeTap, korean, silence

YES_NO = ["네", "예", "아니요", "아니오"]
GATE_LIMIT = 30.0          # a gate a test forgot to open lets the thread go after this


class Gate:
    """Holds a SpeechLoading's worker thread before it loads anything, until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def __call__(self) -> None:
        self.opened.wait(GATE_LIMIT)

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate():
    held = Gate()
    yield held
    held.open()                       # no worker thread outlives its test waiting


class FakeEngine:
    name, language = "fake", "ko"

    def __init__(self, words=("네", "아니요")) -> None:
        self.words = set(words)

    def knows(self, word: str) -> bool:
        return word in self.words

    def known_phrases(self, phrases: list[str]) -> list[str]:
        return [p for p in phrases if all(self.knows(w) for w in p.split())]


def broken() -> FakeEngine:
    raise SpeechUnavailable("could not load the Vosk model in /nowhere: no such model")


def planned(**loaders) -> dict[str, Planned]:
    return {lang: Planned(lang, loader, False) for lang, loader in loaders.items()}


# ------------------------------------------------------------------ the state machine

def test_each_language_goes_from_loading_to_ready_or_failed(gate) -> None:
    engine = FakeEngine()
    loading = SpeechLoading(planned(ko=lambda: engine, en=broken), gate=gate)
    seen: list[tuple[str, SpeechState]] = []
    loading.observers.append(lambda lang, status: seen.append((lang, status.state)))
    assert loading.snapshot() == {"en": {"state": "loading"}, "ko": {"state": "loading"}}
    assert loading.languages == {"ko", "en"} and loading
    loading.start()
    assert loading.for_language("ko") is None and loading.status["ko"].state is SpeechState.LOADING
    gate.open()
    assert loading.wait_sync("ko", GATE_LIMIT).state is SpeechState.READY
    failed = loading.wait_sync("en", GATE_LIMIT)
    assert failed.state is SpeechState.FAILED and "no such model" in failed.reason
    assert loading.for_language("ko-KR") is engine and loading.for_language("en") is None
    shown = loading.snapshot()
    assert shown["ko"]["state"] == "ready" and shown["ko"]["seconds"] >= 0
    assert shown["en"]["state"] == "failed" and "no such model" in shown["en"]["reason"]
    assert seen == [("ko", SpeechState.LOADING), ("en", SpeechState.LOADING),
                    ("ko", SpeechState.READY), ("en", SpeechState.FAILED)]


def test_nothing_is_loaded_before_start_and_a_wait_then_does_not_block() -> None:
    calls = []
    loading = SpeechLoading(planned(ko=lambda: calls.append("load") or FakeEngine()))
    assert loading.wait_sync("ko", GATE_LIMIT).state is SpeechState.LOADING
    assert loading.wait_sync("fr", GATE_LIMIT) is None and calls == []


def test_planning_loads_nothing_a_bad_path_fails_only_when_loaded() -> None:
    bad = plan({"de": "vosk:/nonexistent/model"})["de"]     # no exception here: serve goes on
    assert not bad.packaged
    with pytest.raises(SpeechUnavailable):
        bad.load()
    assert plan({"de": "vosk", "en": "off"}) == {}           # no packaged German model: keys only


async def test_ready_waits_for_the_load_or_gives_up_at_the_timeout(gate) -> None:
    engine = FakeEngine()
    loading = SpeechLoading(planned(ko=lambda: engine), gate=gate).start()
    assert await loading.ready("ko", 0.05) is None             # still loading: keys
    assert loading.status["ko"].state is SpeechState.LOADING
    asyncio.get_running_loop().call_later(0.1, gate.open)
    assert await loading.ready("ko", GATE_LIMIT) is engine
    assert await loading.ready("fr", GATE_LIMIT) is None       # no engine planned: no wait


class Unready:
    """Engines that never load: records how long each listen was allowed to wait."""

    languages = {"ko"}
    status = {"ko": LoadStatus()}

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def for_language(self, language):
        return None

    async def ready(self, language, timeout):
        self.timeouts.append(timeout)
        await asyncio.sleep(timeout)
        return None


async def test_a_call_waits_its_budget_once_over_all_its_listens() -> None:
    engines = Unready()
    wait = CallWait(engines, 0.05, "call-1")
    assert await wait.engine("ko") is None and await wait.engine("ko") is None
    assert engines.timeouts == [0.05] and wait.left <= 0   # the second listen: nothing left
    assert await wait.engine("fr") is None and len(engines.timeouts) == 1   # not planned


# ------------------------------------------------------------------ listens while loading

@pytest.fixture(scope="module")
def model() -> SpeechModel:
    return SpeechModel.shared()


class CountingMedia(FakeMedia):
    def __init__(self, tap=None) -> None:
        super().__init__(tap)
        self.opened = 0

    async def open(self, call_id: str):
        self.opened += 1
        return await super().open(call_id)


def ari_driver(loading: SpeechLoading, media, load_wait: float = GATE_LIMIT):
    inbox = ChannelInbox("call-1")
    speech = AriSpeech(loading, media, load_wait=load_wait)
    ari = FakeAri(inbox)
    return AriCallDriver(ari, inbox, caller_id="5551", did="800", speech=speech), inbox, ari


def plays(ari: FakeAri) -> int:
    return sum(1 for method, path, _ in ari.requests if method == "POST" and path.endswith("/play"))


def key_later(inbox: ChannelInbox, digit: str, after: float) -> None:
    asyncio.get_running_loop().call_later(after, lambda: (inbox.digits.append(digit), inbox.poke()))


async def test_a_listen_during_the_load_plays_the_question_waits_then_recognises(model, gate) -> None:
    loading = SpeechLoading(planned(ko=lambda: model), gate=gate).start()
    tap = FakeTap(korean([("silence", 0.5), ("say", "아니요"), ("silence", 1.5)]))
    media = CountingMedia(tap)
    driver, _inbox, ari = ari_driver(loading, media)
    prompt_before_load = []
    asyncio.get_running_loop().call_later(0.2, lambda: (prompt_before_load.append(plays(ari)), gate.open()))
    heard = await driver.listen(YES_NO, timeout=3, barge_in_sounds=["sound:question"], language="ko")
    assert isinstance(heard, Recognition) and heard.text in ("아니요", "아니오")
    assert heard.timing["load_wait_ms"] > 0 and media.opened == 1
    assert prompt_before_load == [1] and plays(ari) == 1      # the question played once, during the load
    assert loading.for_language("ko") is model                # the same engine, unchanged


async def test_a_key_during_the_load_is_the_answer_and_stops_the_question(gate) -> None:
    loading = SpeechLoading(planned(ko=FakeEngine), gate=gate).start()
    media = CountingMedia(FakeTap(silence(3)))
    driver, inbox, ari = ari_driver(loading, media)
    key_later(inbox, "2", 0.1)
    assert await driver.listen(YES_NO, timeout=2, barge_in_sounds=["sound:q"], language="ko") == DTMF("2")
    assert media.opened == 0 and any(m == "DELETE" and p.startswith("/playbacks/") for m, p, _ in ari.requests)
    assert loading.status["ko"].state is SpeechState.LOADING


@pytest.mark.parametrize("why", ["failed", "still loading"])
async def test_without_a_loaded_model_the_question_is_asked_by_keys(gate, why) -> None:
    loader = broken if why == "failed" else FakeEngine
    loading = SpeechLoading(planned(ko=loader), gate=None if why == "failed" else gate).start()
    if why == "failed":
        await asyncio.to_thread(loading.wait_sync, "ko", GATE_LIMIT)
    media = CountingMedia(FakeTap(silence(3)))
    driver, inbox, ari = ari_driver(loading, media, load_wait=0.1)
    key_later(inbox, "1", 0.3)                        # the caller keys 1 (yes), after the wait
    assert await driver.listen(YES_NO, timeout=2, barge_in_sounds=["sound:q"], language="ko") == DTMF("1")
    assert media.opened == 0                           # no audio path built for speech
    assert plays(ari) == 1                             # the question once, not again for the keys
    assert driver._engines.left <= 0 if why == "still loading" else driver._engines.waited == 0
    assert loading.status["ko"].state is (SpeechState.FAILED if why == "failed" else SpeechState.LOADING)


async def test_agi_listen_waits_for_the_load_then_recognises(model, gate, tmp_path: Path) -> None:
    loading = SpeechLoading(planned(ko=lambda: model), gate=gate).start()
    answer = korean([("silence", 0.3), ("say", "네"), ("silence", 1.0)], rate=8000)
    request = FakeAgi([answer])
    driver = AgiCallDriver(request, speech=AgiSpeech(loading, tmp_path, load_wait=GATE_LIMIT))
    asyncio.get_running_loop().call_later(0.2, gate.open)
    heard = await driver.listen(YES_NO, timeout=5, barge_in_sounds=["sound:/p/q"], language="ko")
    assert isinstance(heard, Recognition) and heard.text == "네"


async def test_agi_listen_after_a_failed_load_reads_a_key(tmp_path: Path) -> None:
    loading = SpeechLoading(planned(ko=broken)).start()
    await asyncio.to_thread(loading.wait_sync, "ko", GATE_LIMIT)
    request = FakeAgi([])
    keyed = {"status_code": 200, "result": (str(ord("2")), "")}

    async def send(command: str) -> dict:
        request.commands.append(command)
        return keyed if command.startswith("WAIT FOR DIGIT") else {"status_code": 200, "result": ("0", "")}

    request.send_command = send
    driver = AgiCallDriver(request, speech=AgiSpeech(loading, tmp_path, load_wait=0.1))
    assert await driver.listen(YES_NO, timeout=5, barge_in_sounds=[], language="ko") == DTMF("2")
    assert not any(c.startswith("RECORD FILE") for c in request.commands)


# ------------------------------------------------------------------ validation while loading

def menu(*phrases: str, name: str = "asks") -> dict:
    """A Korean menu: key 1 (with ``phrases`` if given) or 2."""
    first = {"key": "1", "target": "a", **({"phrases": {"ko": list(phrases)}} if phrases else {})}
    return {"name": name, "language": "ko", "start": "q", "nodes": {
        "q": {"type": "menu", "prompt": "1 또는 2.", "fallback": "a",
              "options": [first, {"key": "2", "target": "b"}]},
        "a": {"type": "enqueue", "queue": "billing"}, "b": {"type": "enqueue", "queue": "cards"}}}


ASKS_KO = menu("네", "아니요")
KEYS_ONLY = menu(name="keys")


def with_phrase(doc: dict, phrase: str) -> dict:
    return menu(*doc["nodes"]["q"]["options"][0]["phrases"]["ko"], phrase)


def test_a_flow_with_phrases_is_refused_while_its_model_loads(gate) -> None:
    loading = SpeechLoading(planned(ko=FakeEngine), gate=gate).start()
    check = validator(loading, wait=0.05)
    [error] = check(ASKS_KO)
    assert "still loading" in error.reason and "try again" in error.reason
    assert check(KEYS_ONLY) == []                       # no phrase to check: no wait for it
    gate.open()
    loading.wait_sync("ko", GATE_LIMIT)
    assert check(ASKS_KO) == []
    [unknown] = check(with_phrase(ASKS_KO, "상담원"))     # now checked against the vocabulary
    assert "상담원" in unknown.reason


def test_a_publish_waits_for_a_model_that_loads_within_its_bound(gate) -> None:
    loading = SpeechLoading(planned(ko=FakeEngine), gate=gate).start()
    threading.Timer(0.1, gate.open).start()
    [unknown] = validator(loading, wait=GATE_LIMIT)(with_phrase(ASKS_KO, "상담원"))
    assert "상담원" in unknown.reason and "loading" not in unknown.reason    # checked, not skipped


def test_a_flow_with_phrases_is_refused_when_its_model_failed() -> None:
    loading = SpeechLoading(planned(ko=broken)).start()
    [error] = validator(loading, wait=GATE_LIMIT)(ASKS_KO)
    assert "failed to load" in error.reason and "no such model" in error.reason


def test_built_in_flows_pass_the_default_engines_so_seeding_them_can_trust_them() -> None:
    """serve seeds the built-ins without the vocabulary check (it would wait for the models,
    D40): this test is that check, against the engines serve loads by default."""
    check = validator(load())
    for name in builtin_names():
        assert check(load_builtin(name)) == [], name


# ------------------------------------------------------------------ status and metrics

def test_the_speech_state_metric_has_one_series_per_state_and_the_load_seconds() -> None:
    state, seconds = speech_states({"speech": {"ko": {"state": "ready", "seconds": 2.4},
                                               "en": {"state": "loading"}}})
    current = {(s.labels["language"], s.labels["state"]): s.value for s in state.samples}
    assert current[("ko", "ready")] == 1 and current[("ko", "loading")] == 0
    assert current[("en", "loading")] == 1 and len(current) == 6
    assert [(s.labels["language"], s.value) for s in seconds.samples] == [("ko", 2.4)]


def test_callpilot_status_prints_each_languages_load() -> None:
    loading = SpeechLoading(planned(ko=broken, en=FakeEngine))
    assert [speech_line(s) for s in loading.snapshot().values()] == ["loading", "loading"]
    loading.start()
    for language in ("en", "ko"):
        loading.wait_sync(language, GATE_LIMIT)
    en, ko = (speech_line(s) for s in loading.snapshot().values())
    assert en.startswith("ready (") and en.endswith(" s)")
    assert ko.startswith("failed (") and "no such model" in ko


def test_no_speech_configured_is_no_series() -> None:
    assert [list(f.samples) for f in speech_states({})] == [[], []]
    assert np.isclose(LoadStatus(SpeechState.READY, 1.234).as_dict()["seconds"], 1.23)
