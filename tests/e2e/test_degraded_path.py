"""Calls never depend on serve: while the Stasis application is not registered, Asterisk
takes the call on the degraded path (apology, then app_queue over the same agents); serve
records it from app_queue's queue_log when it is back.  Real Asterisk 22, real sipp UAs.
"""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from callpilot.infra.asterisk import runner
from callpilot.infra.config import AcdConfig
from tests.e2e.serve_proc import ServeProcess, records_for, wait_record
from tests.e2e.test_call_path import caller_number, make_caller

pytestmark = pytest.mark.e2e


@pytest.fixture
def cfg(e2e_config, asterisk):
    return dataclasses.replace(e2e_config, acd=AcdConfig(ring_timeout=6, wrapup_seconds=1))


@pytest.fixture
def serve_proc(cfg):
    proc = ServeProcess(cfg)
    yield proc
    proc.stop()


async def test_serve_stopped_trunk_call_is_answered_and_reaches_an_agent(cfg, phones, serve_proc):
    assert not (cfg.state_dir / "serve.sock").exists(), "this test needs serve stopped"
    phone = await phones("1001")
    number = caller_number()
    result = await make_caller(cfg, number, dtmf="", hold=6).run()
    assert result.status == 200 and result.answered and result.ended_by == "caller", result
    assert phone.answered                         # app_queue connected it to the agent UA
    assert records_for(cfg, number) == []         # serve is away: nothing written yet
    log = runner.queue_log_path(cfg).read_text()
    assert f"|{runner.DEGRADED_QUEUE}|1001|CONNECT|" in log
    serve_proc.start()                            # serve back: the record shows the call
    await serve_proc.wait_ready()
    record = await wait_record(cfg, number, timeout=30)
    assert (record.outcome, record.agent, record.did, record.queue) == \
        ("answered", "1001", "800", runner.DEGRADED_QUEUE)
    assert "degraded path" in record.detail and record.answered_at is not None


async def test_serve_started_while_a_degraded_call_waits_takes_the_next_calls(cfg, phones, serve_proc):
    waiting_number, next_number = caller_number(), caller_number()
    waiting = make_caller(cfg, waiting_number, dtmf="", hold=40)
    waiting_task = asyncio.create_task(waiting.run())
    await waiting.wait_for("answered", timeout=30)   # in app_queue: no agent registered yet
    serve_proc.start()
    await serve_proc.wait_ready(timeout=60)
    result = await make_caller(cfg, next_number, dtmf="", hold=3).run()
    assert result.status == 200 and result.answered
    full = await wait_record(cfg, next_number, timeout=30)
    assert full.flow == "main" and "degraded" not in full.detail   # the IVR took it
    phone = await phones("1001")                     # now app_queue gives the waiting call
    await phone.wait_for("answered", timeout=30)
    done = await asyncio.wait_for(waiting_task, 90)
    assert done.status == 200 and done.answered and done.ended_by == "caller"
    record = await wait_record(cfg, waiting_number, timeout=30)
    assert (record.outcome, record.agent, record.queue) == ("answered", "1001", runner.DEGRADED_QUEUE)


@pytest.mark.parametrize("did", ["801", "803"])
async def test_fastagi_and_queue_dids_take_the_degraded_path_too(cfg, did):
    """801 runs the IVR over FastAGI (serve's AGI port closed: AGISTATUS=FAILURE), 803 goes
    straight to a queue (Stasis enqueue: STASISSTATUS=FAILED); both are answered."""
    assert not (cfg.state_dir / "serve.sock").exists(), "this test needs serve stopped"
    number = caller_number()
    result = await make_caller(cfg, number, dtmf="", hold=3, did=did).run()
    assert result.status == 200 and result.answered, result
    lines = runner.queue_log_path(cfg).read_text().splitlines()
    enter = [line for line in lines if f"|ENTERQUEUE|{did}|{number}|" in line]
    assert len(enter) == 1 and f"|{runner.DEGRADED_QUEUE}|" in enter[0]
    call_id = enter[0].split("|")[1]
    assert any(f"|{call_id}|{runner.DEGRADED_QUEUE}|NONE|ABANDON|" in line for line in lines)
