"""Callbacks end to end: real Asterisk 22 (an instance of this module's own, with a callback
route), real ``callpilot serve`` subprocesses, real sipp UAs sending real RTP.

The customer is a plain SIP UAS on 127.0.0.3 (no registration), reached only through the
rendered outbound-only ``callback-trunk`` endpoint whose contact is that address.  Queue
``cbq`` (DID 805, no IVR) has agents 1001 and 1002 (1002's phone registers in one test only:
an unregistered agent is never offered anything).  Callers have Korean mobile caller IDs, so the
read-back and E.164 normalisation use the configured default country KR.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select

from callpilot.app import demo
from callpilot.infra.asterisk import runner
from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.config import AcdConfig, CallbacksConfig, to_toml
from callpilot.infra.db import session as db
from callpilot.infra.db.callback_store import CallbackStore, NewCallback
from callpilot.infra.db.callbacks import Callback, CallbackAttempt, CallbackSource
from callpilot.infra.db.models import CallRecord, Queue, QueueMember
from testkit import sipua
from testkit.isolated import isolated_config
from testkit.rtp_pcap import rtp_pcap
from tests import pg
from tests.e2e.conftest import E2E_DATABASE_ENV
from tests.e2e.helpers import callpilot_cli
from tests.e2e.serve_proc import ServeProcess, wait_record

pytestmark = pytest.mark.e2e

CUSTOMER_IP = "127.0.0.3"
DID = "805"
A_NUMBER, A_E164 = "01055501234", "+821055501234"
B_NUMBER = "01055505678"


# -- the instance -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(request, tmp_path_factory):
    """An Asterisk of this module: the callback route points at a customer UAS port.  With
    ``CALLPILOT_E2E_DATABASE=postgresql`` serve, web and the tests use a fresh PostgreSQL
    database (like the shared instance of conftest)."""
    state = tmp_path_factory.mktemp("callbacks-e2e") / "state"
    config = isolated_config(state, queue_dids={DID: "cbq"})
    if os.environ.get(E2E_DATABASE_ENV, "sqlite") == "postgresql":
        url = pg.create_database(request.getfixturevalue("pg_server"), pg.unique_name("cp_cb"))
        config.database_url = url.render_as_string(hide_password=False)
    customer_port = sipua.free_port(CUSTOMER_IP)
    config.callbacks = CallbacksConfig(
        trunk_uri=f"{CUSTOMER_IP}:{customer_port}", default_country="KR", retry_seconds=8,
        voicemail_retry_seconds=600, customer_ring_seconds=6, max_attempts=3)
    config.acd = AcdConfig(ring_timeout=8, wrapup_seconds=1, autopause_after=1)   # RONA: paused at once
    passwords = demo.seed(config)
    seed_queue(config)
    runner.up(config)
    try:
        yield config, passwords, customer_port
    finally:
        runner.down(config)


def seed_queue(config) -> None:
    engine = db.make_engine(config.db_url)
    db.create_schema(engine)
    with db.make_sessionmaker(engine).begin() as s:
        s.merge(Queue(name="cbq", title="callback tests", announce_frequency=0, steps=[]))
        s.execute(delete(QueueMember).where(QueueMember.queue_name == "cbq"))
        s.add(QueueMember(queue_name="cbq", agent_extension="1001"))
        s.add(QueueMember(queue_name="cbq", agent_extension="1002"))   # registered by one test only
    engine.dispose()


@pytest.fixture
def cfg(instance):
    config = instance[0]
    clear_callbacks(config)
    return config


def clear_callbacks(config) -> None:
    engine = db.make_engine(config.db_url)
    with db.make_sessionmaker(engine).begin() as s:
        s.execute(delete(CallbackAttempt))
        s.execute(delete(Callback))
    engine.dispose()


@pytest.fixture
async def agent(instance):
    config, passwords, _ = instance
    pool = sipua.PhonePool(config, passwords)

    async def start(behaviour: str = "answer", calls: int = 1, ext: str = "1001") -> sipua.AgentPhone:
        return await pool.start(ext, behaviour, calls=calls)
    yield start
    await pool.close()


@pytest.fixture
async def customer(instance, tmp_path):
    """Factory of customer UASes on the callback route's address (one at a time)."""
    _, _, port = instance
    phones: list[sipua.AgentPhone] = []

    async def start(behaviour: str = "answer", greeting: str = "person", calls: int = 1,
                    answer_delay: float = 0.3, keys: list[tuple[float, str]] = ()) -> sipua.AgentPhone:
        audio = tmp_path / f"{greeting}.pcap"
        write_greeting(audio, machine=greeting == "machine", keys=keys)
        phone = sipua.FarEnd("customer", CUSTOMER_IP, port, behaviour=behaviour, talk_audio=audio,
                             calls=calls, answer_delay=answer_delay)
        await phone.start()
        phones.append(phone)
        return phone
    yield start
    for phone in phones:
        await phone.stop()


def write_greeting(path: Path, machine: bool, keys: list[tuple[float, str]] = ()) -> None:
    """A person: "hello" (0.6 s of voice) then silence.  A machine: a 4 s greeting (app_amd's
    ``greeting`` is 1.5 s: longer is a machine).  ``keys``: (seconds, digit) pressed."""
    rate, voice = 8000, 4.0 if machine else 0.6
    t = np.arange(int(rate * voice)) / rate
    tone = (8000 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.int16)
    rtp_pcap(np.concatenate([tone, np.zeros(rate * 6, dtype=np.int16)]), path, dtmf=list(keys))


@pytest.fixture
async def ari(cfg):
    client = AriClient(cfg.ari_url, cfg.secrets.ari_user, cfg.secrets.ari_password, "cp-cb-test")
    yield client
    await client.close()


@pytest.fixture(autouse=True)
async def no_channels_left(cfg):
    """Each test starts and ends with no channel in the instance."""
    yield
    client = AriClient(cfg.ari_url, cfg.secrets.ari_user, cfg.secrets.ari_password, "cp-cb-clean")
    try:
        for channel in await client.get("/channels"):
            try:
                await client.delete(f"/channels/{channel['id']}")
            except Exception:
                pass
    finally:
        await client.close()


# -- helpers ------------------------------------------------------------------------------


def caller(cfg, number: str, *, dtmf: str = "", delay: float = 3.0, gap: float = 16.0,
           hold: float = 45.0) -> sipua.Caller:
    a = cfg.asterisk
    return sipua.Caller(DID, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                        dtmf=dtmf, dtmf_delay=delay, dtmf_gap=gap, hold_seconds=hold)


@contextlib.contextmanager
def store(cfg):
    """A store on its own engine, disposed after: the test process never keeps a SQLite
    connection open while another engine is made (make_engine opens and closes the file,
    which drops this process's POSIX locks on it: SQLite's documented hazard)."""
    engine = db.make_engine(cfg.db_url)
    try:
        yield CallbackStore(db.make_sessionmaker(engine), "test")
    finally:
        engine.dispose()


async def wait_rows(cfg, predicate, what: str, timeout: float = 60.0):
    """Until ``predicate(callbacks, attempts)`` is true (rows re-read every 0.3 s)."""
    deadline = time.monotonic() + timeout
    engine = db.make_engine(cfg.db_url)
    try:
        while True:
            with db.make_sessionmaker(engine)() as s:
                callbacks = list(s.scalars(select(Callback).order_by(Callback.entered_at)))
                attempts = list(s.scalars(select(CallbackAttempt).order_by(CallbackAttempt.id)))
            if predicate(callbacks, attempts):
                return callbacks, attempts
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: "
                                     f"{[(c.number, c.state, c.attempts) for c in callbacks]} "
                                     f"{[(a.id, a.agent, a.outcome) for a in attempts]}")
            await asyncio.sleep(0.3)
    finally:
        engine.dispose()


async def cli(cfg, *args: str) -> subprocess.CompletedProcess:
    path = Path(cfg.state_dir) / "config.toml"
    path.write_text(to_toml(cfg))
    return await callpilot_cli(path, *args)


async def agent_state(serve: ServeProcess, state: str, timeout: float = 30.0) -> None:
    await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == state
                         and s["agents"]["1001"]["device"] != "UNAVAILABLE",
                         timeout=timeout, what=f"agent 1001 {state}")


async def rtp(ari: AriClient, channel_id: str) -> tuple[int, int]:
    stats = await ari.get(f"/channels/{channel_id}/rtp_statistics")
    return stats["txcount"], stats["rxcount"]


def add_callback(cfg, number: str, minutes_ago: float, **kw) -> str:
    now = datetime.now(timezone.utc)
    new = NewCallback(number=number, queue="cbq", entered_at=now - timedelta(minutes=minutes_ago),
                      source=CallbackSource.WEB, expires_at=now + timedelta(hours=1),
                      ticket={"priority": 0, "skills": {}, "steps": None, "attributes": {}}, **kw)
    with store(cfg) as callbacks:
        return callbacks.create(new, now)[0].id


# -- tests --------------------------------------------------------------------------------


async def test_callback_keeps_its_place_whispers_and_bridges(cfg, serve, agent, customer, ari):
    """A waits, B enters later; A takes a callback (read-back of the caller ID, confirmed
    after it finished) and is hung up on; when the agent frees, A's callback is served before
    B: the agent hears the whisper, then is bridged with the customer UA."""
    phone = await agent(calls=2)
    await agent_state(serve, "available")
    assert (await cli(cfg, "agents", "pause", "1001")).returncode == 0
    a_call = asyncio.create_task(caller(cfg, A_NUMBER, dtmf="51", hold=60).run())
    await asyncio.sleep(2.0)
    b_call = asyncio.create_task(caller(cfg, B_NUMBER, hold=50).run())
    callbacks, _ = await wait_rows(cfg, lambda c, a: len(c) == 1, "A's callback", timeout=60)
    a_result = await asyncio.wait_for(a_call, 60)
    a_record = await wait_record(cfg, A_NUMBER)
    assert a_record.outcome == "callback" and a_result.answered
    [callback] = callbacks
    assert callback.number == A_E164 and callback.source == "ivr" and callback.state == "pending"
    assert callback.entered_at == a_record.enqueued_at, "the callback keeps A's original entry time"
    status = await serve.status()
    [b_waiting] = [w for w in status["waiting"] if w["caller_id"] == B_NUMBER]
    assert b_waiting["position"] == 2, "B's position counts A's callback ahead"

    uas = await customer()
    assert (await cli(cfg, "agents", "unpause", "1001")).returncode == 0
    await uas.wait_for("invite", timeout=60)
    _, [attempt] = await wait_rows(cfg, lambda c, a: len(a) == 1, "the attempt")
    assert attempt.agent == "1001" and attempt.customer_dialled_at is not None
    agent_tx, _ = await rtp(ari, f"callback-{attempt.id}-agent")
    assert agent_tx > 50, f"the agent leg got {agent_tx} RTP packets before the customer was dialled"
    b_record = (await _records(cfg, B_NUMBER))[-1]
    assert b_record.state == "queued", "B still waits while A's callback is placed"

    await uas.wait_for("answered", timeout=30)
    bridge = await _bridge_with_two(ari, f"cp-callback-{attempt.id}")
    assert set(bridge) == {f"callback-{attempt.id}-agent", f"callback-{attempt.id}-customer"}
    before = await rtp(ari, f"callback-{attempt.id}-customer")
    await asyncio.sleep(2.0)
    after = await rtp(ari, f"callback-{attempt.id}-customer")
    assert after[0] - before[0] > 25 and after[1] - before[1] > 25, (before, after)

    await ari.delete(f"/channels/callback-{attempt.id}-agent")         # the agent ends the call
    callbacks, attempts = await wait_rows(cfg, lambda c, a: c[0].state == "done", "callback done")
    assert attempts[0].outcome == "answered" and callbacks[0].attempts == 1
    b_record = await wait_record(cfg, B_NUMBER, state="connected", timeout=60)
    assert b_record.agent == "1001" and b_record.answered_at > attempts[0].started_at
    await phone.wait_for("invite", count=2, timeout=10)
    b_call.cancel()
    queue_log = (Path(cfg.state_dir) / "queue_log").read_text()
    for event in ("EXITWITHKEY", "CALLBACKREQUEST", "CALLBACKATTEMPT", "CALLBACKRESULT"):
        assert f"|{event}|" in queue_log, event


async def _records(cfg, number):
    from tests.e2e.serve_proc import records_for
    return await asyncio.to_thread(records_for, cfg, number)


async def _bridge_with_two(ari: AriClient, bridge_id: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bridges = {b["id"]: b for b in await ari.get("/bridges")}
        if len(bridges.get(bridge_id, {}).get("channels", [])) == 2:
            return bridges[bridge_id]["channels"]
        await asyncio.sleep(0.2)
    raise AssertionError(f"bridge {bridge_id} never held two channels")


async def test_no_answer_then_answer_on_the_retry(cfg, serve, agent, customer, ari):
    await agent(calls=2)
    await agent_state(serve, "available")
    first = await customer("no_answer")
    add_callback(cfg, A_E164, 5)
    await first.wait_for("cancelled", timeout=60)
    await first.stop()
    _, attempts = await wait_rows(cfg, lambda c, a: a and a[0].outcome == "no_answer", "no answer recorded")
    second = await customer("answer")
    await second.wait_for("answered", timeout=60)
    callbacks, attempts = await wait_rows(cfg, lambda c, a: len(a) == 2 and c[0].state == "dialling",
                                          "second attempt connected")
    assert [a.outcome for a in attempts] == ["no_answer", None] and callbacks[0].attempts == 1
    await _bridge_with_two(ari, f"cp-callback-{attempts[1].id}")     # the retry reached the customer


async def test_answering_machine_is_its_own_outcome_and_retried_later(cfg, serve, agent, customer):
    await agent()
    await agent_state(serve, "available")
    machine = await customer("answer", greeting="machine")
    callback_id = add_callback(cfg, A_E164, 5)
    await machine.wait_for("answered", timeout=60)
    callbacks, attempts = await wait_rows(cfg, lambda c, a: a and a[0].outcome is not None, "AMD verdict")
    assert attempts[0].outcome == "voicemail", attempts[0].detail
    assert callbacks[0].id == callback_id and callbacks[0].state == "pending" and callbacks[0].attempts == 1
    assert callbacks[0].not_before > datetime.now(timezone.utc) + timedelta(minutes=5)   # the voicemail rule: 600 s


async def test_the_customer_cancels_with_9(cfg, serve, agent, customer):
    await agent()
    await agent_state(serve, "available")
    uas = await customer("answer", keys=[(4.0, "9")])
    callback_id = add_callback(cfg, A_E164, 5)
    await serve.wait_for(lambda st: st["callbacks"]["attempts"], what="the callback placed", timeout=30)
    await uas.wait_for("answered", timeout=60)
    callbacks, attempts = await wait_rows(cfg, lambda c, a: c and c[0].state == "cancelled", "cancelled")
    assert callbacks[0].id == callback_id and attempts[0].outcome == "customer_cancelled"
    assert callbacks[0].open_key is None
    await uas.wait_for("bye", timeout=20)


async def test_an_agent_not_answering_is_no_customer_attempt_and_the_next_agent_takes_it(
        cfg, serve, agent, customer):
    first = await agent("no_answer")
    await agent_state(serve, "available")
    uas = await customer("answer")
    callback_id = add_callback(cfg, A_E164, 5)
    await first.wait_for("invite", timeout=60)
    second = await agent("answer", ext="1002")
    await first.wait_for("cancelled", timeout=60)               # rang out: RONA
    await second.wait_for("answered", timeout=60)
    await uas.wait_for("answered", timeout=60)
    callbacks, attempts = await wait_rows(cfg, lambda c, a: len(a) == 2 and a[1].customer_dialled_at is not None,
                                          "the second agent's attempt")
    assert [(a.agent, a.outcome) for a in attempts] == [("1001", "agent_no_answer"), ("1002", None)]
    assert callbacks[0].id == callback_id and callbacks[0].attempts == 0, "the decline was not the customer's"
    assert uas.count("invite") == 1


async def test_three_pending_one_free_agent_exactly_one_dialled(cfg, serve, agent, customer):
    """The agent's phone rings and is not answered: while it rings, and after (it is paused
    as not responding), the other two callbacks are never released: one attempt in all."""
    phone = await agent("no_answer")
    await agent_state(serve, "available")
    uas = await customer("answer", calls=3)
    for i, number in enumerate(("+821055500001", "+821055500002", "+821055500003")):
        add_callback(cfg, number, 10 - i)
    await phone.wait_for("invite", timeout=60)
    await phone.wait_for("cancelled", timeout=60)
    _, attempts = await wait_rows(cfg, lambda c, a: a and a[0].outcome is not None, "ring over")
    await asyncio.sleep(4.0)                 # more dispatch passes: nothing else is released
    callbacks, attempts = await wait_rows(cfg, lambda c, a: True, "final")
    assert len(attempts) == 1 and attempts[0].outcome == "agent_no_answer"
    assert attempts[0].callback_id == callbacks[0].id, "the oldest callback went first"
    assert [c.attempts for c in callbacks] == [0, 0, 0], "an agent not answering is no customer attempt"
    assert phone.count("invite") == 1 and uas.count("invite") == 0


async def test_same_number_twice_and_calling_in_while_pending_make_one_entry(cfg, serve):
    first = add_callback(cfg, A_E164, 20)
    assert add_callback(cfg, A_E164, 1) == first          # the second request: the same entry
    call = asyncio.create_task(caller(cfg, A_NUMBER, hold=20).run())
    callbacks, _ = await wait_rows(cfg, lambda c, a: c and c[0].state == "merged", "merged")
    record = await wait_record(cfg, A_NUMBER, state="queued", timeout=30)
    assert abs((record.enqueued_at - callbacks[0].entered_at).total_seconds()) < 1, \
        "the live call takes the callback's older place"
    assert len(callbacks) == 1
    call.cancel()


async def test_kill_9_while_pending_and_while_the_customer_rings_places_it_once(cfg, agent, customer, ari):
    slow = dataclasses.replace(cfg, callbacks=dataclasses.replace(cfg.callbacks, customer_ring_seconds=40))
    proc = ServeProcess(slow).start()
    try:
        await proc.wait_ready()
        callback_id = add_callback(cfg, A_E164, 5)
        await proc.wait_for(lambda s: s["callbacks"]["pending"] == 1, what="callback loaded")
        await proc.stopped(kill=True)                        # 1: killed with the callback pending
        phone = await agent(calls=1)
        uas = await customer("answer", calls=1, answer_delay=25.0)
        proc = ServeProcess(slow).start()
        await proc.wait_ready()
        await uas.wait_for("invite", timeout=90)
        await proc.stopped(kill=True)                        # 2: killed while the customer leg rings
        proc = ServeProcess(slow).start()
        await proc.wait_ready()
        await uas.wait_for("answered", timeout=60)
        callbacks, attempts = await wait_rows(cfg, lambda c, a: c and c[0].state == "dialling", "adopted")
        await _bridge_with_two(ari, f"cp-callback-{attempts[0].id}")   # adopted and bridged
        await asyncio.sleep(5.0)
        assert uas.count("invite") == 1, f"the customer got {uas.count('invite')} INVITEs"
        assert phone.count("invite") == 1 and len(attempts) == 1
        assert callbacks[0].id == callback_id
    finally:
        await proc.stopped()


async def test_customer_first_queue_rings_the_customer_then_the_agent(cfg, agent, customer, ari):
    first = dataclasses.replace(cfg, callbacks=dataclasses.replace(cfg.callbacks, customer_first_queues=["cbq"]))
    proc = ServeProcess(first).start()
    try:
        await proc.wait_ready()
        phone = await agent()
        await agent_state(proc, "available")
        uas = await customer("answer")
        add_callback(cfg, A_E164, 5)
        await uas.wait_for("answered", timeout=60)
        assert phone.count("invite") == 0, "customer first: the agent is rung after the customer answered"
        await phone.wait_for("answered", timeout=60)
        _, [attempt] = await wait_rows(cfg, lambda c, a: len(a) == 1, "the attempt")
        await _bridge_with_two(ari, f"cp-callback-{attempt.id}")
        callbacks, _ = await wait_rows(cfg, lambda c, a: c[0].state == "dialling", "connected, still open")
        assert uas.count("invite") == 1 and phone.count("invite") == 1
    finally:
        await proc.stopped()


async def test_web_call_me_reaches_the_customer_with_its_context(cfg, serve, agent, customer):
    """``callpilot web`` (waitress) takes the request; ``serve`` places it like any callback."""
    import aiohttp
    token = (await cli(cfg, "callbacks", "token", "create", f"site-{time.monotonic_ns()}")).stdout.strip()
    exe = Path(sys.executable).with_name("callpilot")
    web = subprocess.Popen([str(exe), "--config", str(Path(cfg.state_dir) / "config.toml"), "web"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{cfg.web_host}:{cfg.web_port}/api/v1/callbacks"
    body = {"queue": "cbq", "number": "010-5550-1234", "name": "Kim Minji", "reason": "card declined abroad",
            "source": "app", "context": {"page": "/cards/declined", "reference": "TX-88121"}}
    try:
        async with aiohttp.ClientSession() as http:
            answer = await _post_when_up(http, url, body, token)
            assert answer[0] == 201, answer
            bad = await _post(http, url, {**body, "number": "12345"}, token)
            assert bad[0] == 400 and bad[1]["error"] == "number-invalid"
            assert (await _post(http, url, body, "wrong"))[0] == 401
            statuses = [(await _post(http, url, {**body, "number": f"010-5550-77{i:02d}"}, token))[0]
                        for i in range(12)]
            assert 429 in statuses and statuses.index(429) >= 1, statuses
        await agent()
        uas = await customer("answer")
        await uas.wait_for("answered", timeout=60)
        callbacks, attempts = await wait_rows(cfg, lambda c, a: any(x.outcome is None for x in a) and
                                              any(cb.number == A_E164 for cb in c), "the web callback placed")
        [mine] = [cb for cb in callbacks if cb.number == A_E164]
        assert mine.source == "app" and mine.context["reference"] == "TX-88121"
        assert attempts[0].callback_id == mine.id, "the first request is the first in line"
    finally:
        web.terminate()
        await asyncio.to_thread(web.wait, 10)


async def test_offer_key_set_on_the_queue_form_is_used_by_serve_at_once(cfg, serve):
    """No restart: a supervisor sets cbq's callback offer key to 7 on the queue form; the web
    tells serve to reload the queues, and a waiting caller's 7 starts the offer (read-back of
    the caller ID, 1 confirms): the callback is created and the caller leaves with key 7."""
    from admin_web import accounts
    from admin_web import db as web_db
    from admin_web.app import create_app
    from callpilot.app.web import build_services
    from tests.web.conftest import AuthActions
    user, password = f"super-{time.monotonic_ns()}", "e2e-pw-12345"
    engine = db.make_engine(cfg.db_url)
    with db.make_sessionmaker(engine)() as s:
        accounts.create_user(s, user, password, "supervisor")
    app = create_app(cfg, build_services(cfg, db.make_sessionmaker(engine)), {"SECRET_KEY": "e2e"})
    auth = AuthActions(app.test_client())
    form = {"title": "callback tests", "skill": "", "sl_target_seconds": "20", "sl_target_percent": "80",
            "max_wait_seconds": "0", "overflow_queue": "", "join_empty": "y", "announce_frequency": "0",
            "periodic_announce": "", "steps": "[]", "calendar": "", "closed_queue": "", "closed_message": "",
            "survey_flow": "", "callback_offer_after": "", "callback_customer_first": ""}
    try:
        await asyncio.to_thread(auth.login, user, password)             # the web blocks: off the loop
        saved = await asyncio.to_thread(auth.post, "/queues/cbq", {**form, "callback_offer_key": "7"},
                                        follow_redirects=True)
        assert b"serve uses it now" in saved.data, saved.data[-1500:]
        a_call = asyncio.create_task(caller(cfg, A_NUMBER, dtmf="71", hold=60).run())
        callbacks, _ = await wait_rows(cfg, lambda c, a: len(c) == 1, "A's callback after key 7", timeout=60)
        assert (callbacks[0].number, callbacks[0].source, callbacks[0].state) == (A_E164, "ivr", "pending")
        assert (await asyncio.wait_for(a_call, 60)).answered
        assert "|EXITWITHKEY|7|" in (Path(cfg.state_dir) / "queue_log").read_text()
    finally:
        await asyncio.to_thread(auth.post, "/queues/cbq", {**form, "callback_offer_key": ""})
        web_db.dispose(app)
        engine.dispose()        # no connection of this process left open (see store() above)


async def _post(http, url, body, token):
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def _post_when_up(http, url, body, token, timeout: float = 30.0):
    import aiohttp
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await _post(http, url, body, token)
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
