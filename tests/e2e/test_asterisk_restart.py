"""Asterisk crashes (SIGKILL) under a waiting call and is started again: serve reconnects
(ARI and AMI) on its own, resyncs before it says connected, and the call's record is closed
as lost, not left open forever nor blamed on the caller."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from callpilot.infra.asterisk import runner
from testkit.sipua import AgentPhone, Caller
from tests.e2e.serve_proc import wait_record

pytestmark = pytest.mark.e2e


async def test_asterisk_restart_closes_lost_calls_and_serve_recovers(own_instance):
    cfg, serve, passwords = own_instance
    a = cfg.asterisk
    number = "15550777"
    call = asyncio.create_task(Caller("800", a.sip_host, a.sip_port, local_ip=a.trunk_ips[0],
                                      from_number=number, dtmf="1", hold_seconds=20).run())
    before = await serve.wait_for(lambda s: s["queues"].get("billing", {}).get("waiting") == 1,
                                  what="caller waiting")
    os.kill(runner.asterisk_pid(cfg), signal.SIGKILL)   # the engine dies with the call in it
    await asyncio.to_thread(runner.up, cfg)             # it blocks until Asterisk answers: off the loop
    status = await serve.wait_for(lambda s: s["ari"] == "connected" and s["ami"] == "logged_in"
                                  and s["ari_connects"] > before["ari_connects"],
                                  timeout=30, what="serve reconnected to the new Asterisk")
    # "connected" comes only after the connect's resync (D39): the lost caller is out already
    assert [state for state, _at in status["ari_history"]][-3:] == ["connecting", "resyncing", "connected"]
    assert status["queues"]["billing"]["waiting"] == 0, status["queues"]
    record = await wait_record(cfg, number)
    assert record.outcome == "lost" and "ARI was away" in record.detail, (record.outcome, record.detail)
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    # and it takes calls again: a new caller reaches a freshly registered agent
    phone = AgentPhone("1001", passwords["1001"], a.sip_host, a.sip_port)
    await phone.start()
    try:
        await serve.wait_for(lambda s: s["agents"]["1001"]["routable"], what="1001 routable")
        result = await Caller("800", a.sip_host, a.sip_port, local_ip=a.trunk_ips[0],
                              from_number="15550778", dtmf="1", hold_seconds=3).run()
        record = await wait_record(cfg, "15550778")
    finally:
        await phone.unregister()
        await phone.stop()
    assert result.answered and (record.agent, record.outcome) == ("1001", "answered")
