"""The system's own prompts in the caller's language, end to end: real Asterisk 22, a real
``callpilot serve``, sipp callers from the carrier side, no agent registered (callers wait).

When the agent hangs up first, a Korean caller takes the built-in survey in Korean.

An agent who dials a feature code (*23 pause) is answered in its first language: 1003 is
set to "ko, en", 1004 keeps the default "en".

A Korean caller (DID 802, flow ``main_ko``: "1" = talk to an agent) waits in ``general`` and
presses the callback offer key: the read-back of their number is the Korean message of the
catalogue, in the Korean voice.  An English caller (DID 800, ``main``: "1" = billing) hears the
English one.  What was played is seen by a WebSocket of the test's own ARI application with
``subscribeAll=true``: the PlaybackStarted ``media_uri`` is the rendered file of exactly that
text and voice (files are named by a hash of text, voice and rate).
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import uuid
from pathlib import Path

import numpy as np
import phonenumbers

import pytest

from acd.callback_offer import OTHER_NUMBER_KEY, CONFIRM_KEY, read_aloud
from callpilot.infra.asterisk.ari import AriClient, AriError
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.models import Agent, Queue
from callpilot.infra.messages import builtin_messages
from callpilot.infra.phone_numbers import spoken_digits, to_e164
from ivr.tts import PromptCache, sound_uri_for
from testkit.rtp_pcap import rtp_pcap
from testkit.sipua import Caller, PhonePool
from tests.e2e.conftest import demo_instance
from tests.e2e.helpers import AriTestClient
from tests.e2e.serve_proc import running_serve, wait_record

pytestmark = pytest.mark.e2e

HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """Agent 1003 speaks Korean first (as typed in the web: "ko, en"); 1004 keeps ["en"]."""
    with demo_instance(tmp_path_factory.mktemp("prompt-language") / "state") as (config, passwords):
        assert config.asterisk.dids == {"800": "main", "802": "main_ko"}
        assert config.callbacks.offer_key == "5" and config.callbacks.default_country == "KR"
        engine = db.make_engine(config.db_url)
        with db.make_sessionmaker(engine).begin() as s:
            s.get(Agent, "1003").languages = ["ko", "en"]
            s.get(Queue, "general").survey_flow = "survey"      # the built-in survey
        engine.dispose()
        yield config, passwords


@pytest.fixture(scope="module")
def cfg(instance) -> Config:
    return instance[0]


@pytest.fixture(scope="module")
def serve(cfg: Config):
    with running_serve(cfg, timeout=90) as proc:
        yield proc


class Observer:
    """One ARI application of the module's own, subscribed to everything, on an event loop in
    a thread of its own for the whole module (connecting a new ``subscribeAll`` socket right
    after a test hung up its caller sometimes got no answer from Asterisk for 10 s)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.client = cfg, AriTestClient(cfg, "cp-lang-observer", subscribe_all=True)
        self.ready, self.since = threading.Event(), 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with self.client:
            self.ready.set()
            await self._stop.wait()

    def __enter__(self) -> "Observer":
        self._thread.start()
        assert self.ready.wait(30), "the observer's ARI socket did not connect"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def played(self) -> list[str]:
        """Media URIs of the playbacks started since the current test began."""
        return [e["playback"]["media_uri"] for e in self.client.seen[self.since:]
                if e.get("type") == "PlaybackStarted"]


@pytest.fixture(scope="module")
def observing(cfg: Config):
    with Observer(cfg) as watcher:
        yield watcher


@pytest.fixture
async def observer(cfg: Config, observing: Observer):
    """The module's observer, counting from this test; the channels a killed caller left
    are hung up after the test."""
    observing.since = len(observing.client.seen)
    yield observing
    client = AriClient(cfg.ari_url, cfg.secrets.ari_user, cfg.secrets.ari_password, "cp-lang-clean")
    try:
        for channel in await client.get("/channels"):
            with contextlib.suppress(AriError):
                await client.delete(f"/channels/{channel['id']}")
    finally:
        await client.close()


def played(observer: Observer) -> list[str]:
    return observer.played()


def korean_mobile() -> str:
    """A fresh Korean mobile number that phonenumbers calls valid (about 1 in 125 random
    010-5xxx-xxxx numbers falls in an unallocated block and would be refused)."""
    while True:
        number = "0105" + str(uuid.uuid4().int)[:7]
        if phonenumbers.is_valid_number(phonenumbers.parse(number, "KR")):
            return number


def read_back(number: str, language: str | None) -> str:
    """The catalogue's read-back of ``number`` in ``language``, as serve says it."""
    messages = builtin_messages()
    digits = read_aloud(spoken_digits(to_e164(number, "KR"), "KR"), messages.say("number.plus", language).text)
    return messages.say("callback.read_back", language, number=digits, confirm=CONFIRM_KEY,
                        other=OTHER_NUMBER_KEY).text


def uri_of(cfg: Config, text: str, voice: str) -> str:
    return sound_uri_for(PromptCache(cfg.prompts_dir, cfg.tts_voice, cfg.tts_rate).path_for(text, voice))


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def silence(tmp_path_factory) -> Path:
    """The caller's line: silence, so the flows' speech recognition hears nothing (keys only)."""
    path = tmp_path_factory.mktemp("audio") / "silence.pcap"
    rtp_pcap(np.zeros(8000 * 40, dtype=np.int16), path)
    return path


def caller(cfg: Config, did: str, number: str, silence: Path, keys: str) -> Caller:
    a = cfg.asterisk
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number, audio=silence,
                  dtmf=keys, dtmf_delay=4.0, dtmf_gap=8.0, hold_seconds=30)


@pytest.mark.parametrize("did,language,voice,queue", [
    ("802", "ko", "ko", "general"),          # main_ko: the flow's language is ko
    ("800", "en", "en-us", "billing"),       # main: en-us
])
async def test_a_waiting_caller_hears_the_callback_offer_in_the_calls_language(
        cfg, serve, observer, silence, did, language, voice, queue):
    number = korean_mobile()
    expected_text = read_back(number, language)
    assert bool(HANGUL.search(expected_text)) == (language == "ko")
    expected = uri_of(cfg, expected_text, voice)
    # what the other language's caller hears (before this catalogue: English, default voice)
    other = (uri_of(cfg, read_back(number, None), cfg.tts_voice) if language == "ko"
             else uri_of(cfg, read_back(number, "ko"), "ko"))
    # key 1 while the flow asks (to an agent / billing), then the offer key while waiting
    call = asyncio.create_task(caller(cfg, did, number, silence, "1" + cfg.callbacks.offer_key).run())
    await wait_until(lambda: expected in played(observer) or other in played(observer) or call.done(),
                     45, "the callback read-back")
    call.cancel()
    uris = played(observer)
    record = await wait_record(cfg, number, state="queued", timeout=10)
    assert record.queue == queue and record.did == did
    assert expected in uris, f"read-back in {language} not played; played: {uris}"
    assert other not in uris


@pytest.mark.parametrize("extension,text,voice", [
    ("1003", "상담원 1 0 0 3, 휴식 상태입니다.", "ko"),      # languages ["ko", "en"]
    ("1004", "Agent 1 0 0 4, you are paused.", "en"),       # the default ["en"]
])
async def test_an_agents_feature_code_is_answered_in_the_agents_first_language(
        cfg, instance, serve, observer, extension, text, voice):
    assert builtin_messages().say("agent.paused", voice, agent=" ".join(extension)).text == text
    a, passwords = cfg.asterisk, instance[1]

    async def dial(code: str):
        return await Caller(code, a.sip_host, a.sip_port, local_ip="127.0.0.1", from_number=extension,
                            dtmf="", hold_seconds=4, auth_user=extension,
                            auth_password=passwords[extension]).run()
    expected = uri_of(cfg, text, voice)
    assert (await dial("*23")).answered
    await serve.wait_for(lambda st: st["agents"][extension]["state"] == "paused", what="paused")
    await wait_until(lambda: played(observer), 10, "the feature-code prompt")   # the only playback
    assert played(observer) == [expected]
    assert (await dial("*24")).answered


async def test_a_korean_caller_takes_the_built_in_survey_in_korean(cfg, instance, serve, observer, silence):
    """Last in the module: an agent of ``general`` answers (earlier callers waited there)."""
    pool = PhonePool(cfg, instance[1])
    try:
        agent = await pool.start("1004", behaviour="hangup", talk_seconds=2.0)
        await serve.wait_for(lambda st: st["agents"]["1004"]["device"] == "NOT_INUSE"
                             and st["agents"]["1004"]["state"] == "available", timeout=30, what="1004 ready")
        question = builtin_messages().say("survey.question", "ko").text
        expected = uri_of(cfg, question, "ko")
        english = uri_of(cfg, builtin_messages().say("survey.question", None).text, "en-us")
        call = asyncio.create_task(caller(cfg, "802", korean_mobile(), silence, "1").run())
        await agent.wait_for("hungup", timeout=40)
        await wait_until(lambda: expected in played(observer) or english in played(observer), 20,
                         "the survey question")
        call.cancel()
        assert expected in played(observer) and english not in played(observer)
    finally:
        await pool.close()
