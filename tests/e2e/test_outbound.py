"""Outbound campaigns over real Asterisk 22: serve dials customers' SIP UAs (sipp UAS on
their own loopback addresses, reached through the outbound-only PJSIP endpoint), AMD runs in
Asterisk's dialplan, customers answer with real RTP (espeak-ng speech, RFC 4733 keys).

Customers of one campaign, dialled side by side:
  +12125550101 "Hello?" then 1      -> confirmed
  +12125550102 "Hello?" then 2      -> transferred to agent 1001; the call record carries the campaign
  +12125550103 "Hello?" then 9      -> opted out: global DNC, never dialled again (second campaign)
  +12125550104 never answers        -> retried once after 5 s, then given up (2 INVITEs, CANCELled)
  +12125550105 answering machine    -> AMD says MACHINE; voicemail message after the beep
  +12125550106 busy (486)           -> retried once after 5 s, then given up
A SIP request from a customer's address to any number is refused (no way out: toll fraud).
"""
from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from callpilot.infra.config import OutboundConfig, to_toml
from callpilot.infra.db import session as db
from callpilot.infra.db.campaigns import CampaignAttempt, DncEntry
from callpilot.infra.db.models import CallRecord
from testkit.customer import CustomerPhone, machine_pcap, noon_zone, person_pcap
from testkit.sipua import Caller
from testkit.rtp_sniffer import RtpSniffer
from tests.e2e.helpers import callpilot_cli
from tests.e2e.serve_proc import ServeProcess

pytestmark = pytest.mark.e2e

TEMPLATE = "Hello {name}, your order {order_id} ships today."
VOICEMAIL = "Hello {name}, this is Acme. Your order {order_id} ships today. No need to call back."
GREETING = ("Hi, you have reached the Miller family. We cannot take your call right now. "
            "Please leave your name and number after the tone and we will call you back.")


async def cli(cfg, *args: str) -> dict:
    path = Path(cfg.state_dir) / "config.toml"
    path.write_text(to_toml(cfg))
    out = await callpilot_cli(path, "campaigns", *args, "--json", timeout=120)
    assert out.returncode in (0, 1) and out.stdout.strip(), out.stderr[-3000:]
    return json.loads(out.stdout)


def attempts_of(cfg, phone: str) -> list[CampaignAttempt]:
    from callpilot.infra.db.campaigns import CampaignContact
    engine = db.make_engine(cfg.db_url)
    try:
        with db.make_sessionmaker(engine)() as s:
            return list(s.scalars(select(CampaignAttempt).join(
                CampaignContact, CampaignContact.id == CampaignAttempt.contact_id)
                .where(CampaignContact.phone == phone).order_by(CampaignAttempt.id)))
    finally:
        engine.dispose()


def read(cfg, model, key):
    engine = db.make_engine(cfg.db_url)
    try:
        with db.make_sessionmaker(engine)() as s:
            return s.get(model, key)
    finally:
        engine.dispose()


async def wait_until(predicate, timeout: float, what: str):
    """``predicate()``'s first truthy value (awaited when it is a coroutine, as the CLI's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def ari_client(cfg):
    from tests.e2e.helpers import AriTestClient
    return AriTestClient(cfg, "outbound-test")


def contacts_csv(path: Path, phones: list[str], language: str = "en") -> Path:
    zone = noon_zone()      # the campaigns' calling window is open at any hour of the run
    rows = "".join(f"{p},Customer {p[-2:]},{zone},{language},A{p[-3:]}\n" for p in phones)
    path.write_text("phone,name,timezone,language,order_id\n" + rows)
    return path


@pytest.fixture
async def customers(tmp_path):
    made: list[CustomerPhone] = []

    async def make(number: str, ip: str, behaviour: str = "answer", **kw) -> CustomerPhone:
        phone = await CustomerPhone(number, ip, behaviour, **kw).start()
        made.append(phone)
        return phone
    yield make
    for phone in made:
        await phone.stop()


async def test_campaign_replies_retries_dnc_and_answering_machine(e2e_config, asterisk, customers,
                                                               agent_phone, tmp_path):
    keys = {"01": "1", "02": "2", "03": "9"}
    people = {}
    for tail, key in keys.items():
        audio = person_pcap(tmp_path / f"p{tail}.pcap", keys=[(6.0, key)], total=20.0)
        people[tail] = await customers(f"+121255501{tail}", f"127.0.1.{int(tail)}", audio=audio)
    never = await customers("+12125550104", "127.0.1.4", "no_answer")
    busy = await customers("+12125550106", "127.0.1.6", "busy")
    machine_audio, beep_end = machine_pcap(tmp_path / "machine.pcap", GREETING, total=40.0)
    machine = await customers("+12125550105", "127.0.1.5", audio=machine_audio, answer_delay=1.0)
    everyone = [*people.values(), never, machine, busy]
    cfg = dataclasses.replace(e2e_config, outbound=OutboundConfig(
        routes={c.number: c.route for c in everyone}, poll_seconds=0.5))
    agent = await agent_phone("1001", calls=1)
    wire = RtpSniffer(machine.media_port, "127.0.1.5").__enter__()   # what the machine UA sends and receives
    serve = ServeProcess(cfg).start()
    try:
        await serve.wait_ready()
        await serve.wait_for(lambda s: s["agents"]["1001"]["routable"], what="agent 1001 routable")
        await cli(cfg, "create", "orders", "--template", TEMPLATE, "--voicemail", VOICEMAIL,
            "--purpose", "Acme order status", "--caller-id", "8005550199", "--callback-number",
            "8005550199", "--max-attempts", "2", "--retry", "no_answer=5", "--retry", "busy=5",
            "--ring-seconds", "15", "--max-concurrent", "6")
        imported = await cli(cfg, "import", "orders", str(contacts_csv(tmp_path / "c.csv",
                                                                   [c.number for c in everyone])))
        assert imported["imported"] == 6 and imported["rejected"] == 0
        await cli(cfg, "start", "orders")

        # 2: the agent's phone rings and answers; the record names the campaign and contact
        await agent.wait_for("answered", timeout=90)
        (transfer,) = attempts_of(cfg, "+12125550102")
        record = await wait_until(lambda: (r := read(cfg, CallRecord, f"cp-out-{transfer.id}"))
                                  and r.agent == "1001" and r, 30, "connected record")
        assert record.did == "outbound" and record.caller_id == "+12125550102"
        assert record.journey["outbound"]["campaign"] == "orders"
        assert record.journey["outbound"]["reply"] == "2"
        assert record.journey["outbound"]["variables"] == {"order_id": "A102"}
        await asyncio.sleep(3)                   # some agent minutes, then the customer hangs up
        async with ari_client(cfg) as ari:
            status, _ = await ari.request("DELETE", f"/channels/cp-out-{transfer.id}")
        assert status == 204
        await wait_until(lambda: read(cfg, CallRecord, f"cp-out-{transfer.id}").state == "ended",
                         30, "transferred call ended")

        report = None

        async def finished():
            nonlocal report
            report = await cli(cfg, "report", "orders")
            return all(c["status"] == "done" for c in report["contacts"]) and report
        await wait_until(finished, 150, "every contact finished")
        outcome = {c["phone"]: (c["outcome"], c["attempts"], c["last_reply"]) for c in report["contacts"]}
        assert outcome["+12125550101"] == ("confirmed", 1, "1")
        assert outcome["+12125550102"] == ("transferred", 1, "2")
        assert outcome["+12125550103"] == ("opted_out", 1, "9")
        assert outcome["+12125550104"] == ("no_answer", 2, "")
        assert outcome["+12125550105"] == ("machine", 1, "")
        assert outcome["+12125550106"] == ("busy", 2, "")       # 486 twice, 5 s apart
        assert read(cfg, DncEntry, ("+12125550103", "*")) is not None
        (vm,) = attempts_of(cfg, "+12125550105")
        assert vm.amd_status == "MACHINE" and vm.detail == "voicemail message left"
        # every customer dialled once per attempt; the unanswered one twice, CANCELled twice
        assert [c.invites for c in people.values()] == [1, 1, 1]
        await never.wait_for("cancelled", timeout=15, count=2)
        assert never.invites == 2
        assert machine.invites == 1 and busy.invites == 2
        retry = attempts_of(cfg, "+12125550104")
        assert (retry[1].claimed_at - retry[0].ended_at).total_seconds() >= 5

        # 9 = DNC for every campaign: a second campaign never dials that number
        await cli(cfg, "create", "again", "--template", TEMPLATE, "--ring-seconds", "15")
        await cli(cfg, "import", "again", str(contacts_csv(tmp_path / "d.csv", ["+12125550103"])))
        await cli(cfg, "start", "again")

        async def dnc():
            return (await cli(cfg, "report", "again"))["contacts"][0]["outcome"] == "dnc"
        await wait_until(dnc, 30, "dnc outcome in the second campaign")
        await asyncio.sleep(2)
        assert people["03"].invites == 1

        assert report["totals"]["agent_minutes"] > 0.04
        assert report["totals"]["reach_rate"] == 0.5      # 3 of 6 contacts reached a person

        # toll fraud: a customer's address calling in to any number is refused, never routed
        a = cfg.asterisk
        intruder = Caller("12125550199", a.sip_host, a.sip_port, local_ip="127.0.1.1", dtmf="",
                          hold_seconds=2, answer_timeout=5)
        result = await intruder.run()
        assert not result.answered and result.status in (401, 403, 404), result.status
    finally:
        await serve.stopped()
        wire.__exit__(None, None, None)
    # what the answering machine's UA received: our voicemail message, after its beep.  Its
    # greeting (the pcap beep_end is measured in) starts with its first RTP packet, right after
    # the answer: the wire's clock, not a watcher task the test's synchronous CLI calls delay
    answered_at = next(p.at for p in wire.packets if not p.to_caller)
    packets = [p.at for p in wire.packets if p.to_caller]
    first, last = packets[0] - answered_at, packets[-1] - answered_at
    print(f"machine UA: {len(packets)} RTP packets from {first:.2f} s to {last:.2f} s after the "
          f"answer (greeting + beep end at {beep_end:.2f} s)")
    assert first >= beep_end - 0.5, "the voicemail message started over the greeting"
    assert len(packets) > 150                 # > 3 s of 20 ms packets: the message was played


async def test_serve_killed_while_calls_ring_never_dials_an_attempt_twice(e2e_config, asterisk,
                                                                         customers, tmp_path):
    """kill -9 serve while three customers' phones ring; a new serve adopts the ringing calls
    (their channel ids name their attempts), they answer and confirm; the fourth contact is
    dialled after the restart.  Every customer's UA sees exactly one INVITE."""
    ringing = []
    for n in range(1, 4):
        audio = person_pcap(tmp_path / f"k{n}.pcap", keys=[(6.0, "1")], total=20.0)
        ringing.append(await customers(f"+1212555021{n}", f"127.0.2.{n}", audio=audio,
                                       answer_delay=15.0))
    audio = person_pcap(tmp_path / "k4.pcap", keys=[(6.0, "1")], total=20.0)
    later = await customers("+12125550214", "127.0.2.4", audio=audio)
    everyone = [*ringing, later]
    cfg = dataclasses.replace(e2e_config, outbound=OutboundConfig(
        routes={c.number: c.route for c in everyone}, poll_seconds=0.5))
    await cli(cfg, "create", "crash", "--template", TEMPLATE, "--max-concurrent", "3",
        "--ring-seconds", "40", "--retry", "unknown=3600")
    await cli(cfg, "import", "crash", str(contacts_csv(tmp_path / "k.csv", [c.number for c in everyone])))
    first = ServeProcess(cfg).start()
    second = None
    try:
        await first.wait_ready()
        await cli(cfg, "start", "crash")
        for phone in ringing:
            await phone.wait_for("ringing", timeout=60)
        assert later.invites == 0                 # the concurrency cap holds it back
        await first.stopped(kill=True)            # SIGKILL with three calls ringing
        second = ServeProcess(cfg).start()
        await second.wait_ready()

        async def finished():
            report = await cli(cfg, "report", "crash")
            return all(c["status"] == "done" for c in report["contacts"]) and report
        report = await wait_until(finished, 120, "every contact finished after the restart")
    finally:
        await first.stopped()
        if second is not None:
            await second.stopped()
    outcomes = {c["phone"]: (c["outcome"], c["attempts"]) for c in report["contacts"]}
    assert outcomes == {c.number: ("confirmed", 1) for c in everyone}, outcomes
    assert [c.invites for c in everyone] == [1, 1, 1, 1]
    for phone in everyone:
        (attempt,) = attempts_of(cfg, phone.number)
        assert attempt.outcome == "confirmed" and attempt.reply == "1"
    assert "adopted" in second.log_path.read_text()


async def test_progressive_overdial_abandons_then_the_dial_level_drops(e2e_config, asterisk,
                                                                       customers, agent_phone,
                                                                       tmp_path):
    """Progressive mode with a dial level of 2 lines per free agent and one agent: two
    customers answer, the first reaches the agent, the second finds none and gets the
    safe-harbor message (abandoned, with the callback number).  50 % abandoned is over the
    3 % cap, so the level falls to 1: the third customer is dialled only once the agent is
    free again, and is connected."""
    people = []
    for n in range(1, 4):
        audio = person_pcap(tmp_path / f"g{n}.pcap", total=30.0)
        people.append(await customers(f"+1212555031{n}", f"127.0.3.{n}", audio=audio))
    cfg = dataclasses.replace(e2e_config, outbound=OutboundConfig(
        routes={c.number: c.route for c in people}, poll_seconds=0.5))
    agent = await agent_phone("1001", calls=2)
    serve = ServeProcess(cfg).start()
    try:
        await serve.wait_ready()
        await serve.wait_for(lambda s: s["agents"]["1001"]["routable"], what="agent 1001 routable")
        await cli(cfg, "create", "sales", "--template", TEMPLATE, "--mode", "progressive",
            "--max-dial-level", "2", "--max-concurrent", "2", "--callback-number", "8005550199",
            "--ring-seconds", "15", "--purpose", "Acme")
        await cli(cfg, "import", "sales", str(contacts_csv(tmp_path / "g.csv", [c.number for c in people])))
        await cli(cfg, "start", "sales")
        await agent.wait_for("answered", timeout=60)
        def decided():
            done = [a for c in people[:2] for a in attempts_of(cfg, c.number) if a.outcome]
            return done if len(done) == 2 else None
        first_two = await wait_until(decided, 60, "the first two calls decided")
        assert sorted(a.outcome for a in first_two) == ["abandoned", "transferred"]
        assert people[2].invites == 0            # level 1 now, and the agent is busy
        transferred = next(a for a in first_two if a.outcome == "transferred")
        async with ari_client(cfg) as ari:
            await asyncio.sleep(2)
            status, _ = await ari.request("DELETE", f"/channels/cp-out-{transferred.id}")
            assert status == 204
        await agent.wait_for("answered", timeout=90, count=2)

        async def third_decided():
            r = await cli(cfg, "report", "sales")
            return r["contacts"][2]["outcome"] and r
        report = await wait_until(third_decided, 60, "third contact decided")
    finally:
        await serve.stopped()
    assert report["contacts"][2]["outcome"] == "transferred"
    assert [c.invites for c in people] == [1, 1, 1]
    t = report["totals"]
    assert (t["live_answers_30d"], t["abandoned_30d"]) == (3, 1)
    log = serve.log_path.read_text()
    assert "dial level 2.00 -> 1.00" in log


async def test_spoken_reply_confirms(e2e_config, asterisk, customers, tmp_path):
    """Replies by voice: the campaign lists phrases (Korean model, as the IVR's speech tests);
    the customer says 네 ("yes") over the message and is recorded as confirmed with that reply."""
    from ivr.speech import default_model_path
    audio = person_pcap(tmp_path / "v.pcap", total=20.0, says=[(6.0, "네", "ko")])
    customer = await customers("+12125550401", "127.0.4.1", audio=audio)
    cfg = dataclasses.replace(e2e_config, speech_model=str(default_model_path()),
                              outbound=OutboundConfig(routes={customer.number: customer.route},
                                                      poll_seconds=0.5))
    serve = ServeProcess(cfg).start()
    try:
        await serve.wait_ready()
        await serve.wait_speech_loaded()
        await cli(cfg, "create", "voice", "--template", TEMPLATE, "--say", "네=confirm",
            "--say", "상담원=agent", "--ring-seconds", "15")
        # a Korean-speaking contact: replies are heard by the Korean engine (speech per language)
        await cli(cfg, "import", "voice", str(contacts_csv(tmp_path / "v.csv", [customer.number], "ko")))
        await cli(cfg, "start", "voice")

        async def replied():
            r = await cli(cfg, "report", "voice")
            return r["contacts"][0]["status"] == "done" and r
        report = await wait_until(replied, 90, "voice reply")
    finally:
        await serve.stopped()
    assert (report["contacts"][0]["outcome"], report["contacts"][0]["last_reply"]) == ("confirmed", "네")
    assert customer.invites == 1
