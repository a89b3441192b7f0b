"""Autopause on a real Asterisk with real SIP phones: an agent whose phone rejects (486) or
never answers every offer is offered the waiting caller again while it is the only free
agent, until it has missed ``autopause_after`` offers in a row (the default); then it is
paused "not responding" (status, queue_log PAUSE), offered nothing more, and the caller
reaches the next agent.  The agent comes back the usual way (``callpilot agents unpause``).

Its own Asterisk: DID 807 straight into queue ``autopause`` (no IVR, no announcements, no
routing steps), agents 3201-3202.
"""
from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from acd.autopause import PAUSE_REASON
from callpilot.infra.asterisk import runner
from tests.e2e.helpers import asterisk_running
from callpilot.infra.config import AcdConfig, Config
from testkit.isolated import isolated_config, seed_queue_agents
from testkit.sipua import Caller, PhonePool
from tests.e2e.test_acd_routing import cli
from tests.e2e.serve_proc import wait_record

pytestmark = pytest.mark.e2e

DID, QUEUE = "807", "autopause"
DEAF, OTHER = "3201", "3202"
AFTER = AcdConfig().autopause_after          # the default


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    cfg = isolated_config(tmp_path_factory.mktemp("autopause") / "state",
                          dids={}, agi_dids={}, queue_dids={DID: QUEUE})
    cfg.acd = AcdConfig(ring_timeout=3, wrapup_seconds=1, general_queue=QUEUE)
    passwords = seed_queue_agents(cfg, QUEUE, 2, ext_base=int(DEAF), title="autopause tests",
                                  announce_frequency=0, steps=[])
    with asterisk_running(cfg):
        yield cfg, passwords


@pytest.fixture
async def cfg(instance):
    """The instance's config (conftest's ``serve`` runs on it); every call ended afterwards."""
    yield instance[0]
    runner.rx(instance[0], "channel request hangup all")


@pytest.fixture
async def phone(instance):
    pool = PhonePool(*instance, answer_delay=0.2, calls=20)
    yield pool.start
    await pool.close()


def log_lines(cfg: Config) -> list[str]:
    path = Path(cfg.state_dir) / "queue_log"
    return path.read_text().splitlines() if path.exists() else []


def queue_log(cfg: Config, agent: str, event: str, since: int) -> list[list[str]]:
    """The queue's lines of ``event`` for ``agent`` (``time|callid|queue|agent|event|data``)
    after the first ``since`` lines (the module's tests share the file)."""
    rows = [line.split("|") for line in log_lines(cfg)[since:]]
    return [r for r in rows if len(r) >= 5 and r[2] == QUEUE and r[3] == f"PJSIP/{agent}" and r[4] == event]


@pytest.mark.parametrize("behaviour", ["busy", "no_answer"])
async def test_an_agent_missing_every_offer_is_paused_after_n_and_the_caller_reaches_another(
        cfg, serve, phone, behaviour):
    assert AFTER > 1, "the test shows offers missed below the limit"
    since = len(log_lines(cfg))
    deaf = await phone(DEAF, behaviour)
    await serve.wait_for(lambda s: s["agents"][DEAF]["routable"], what=f"{DEAF} routable")
    number = f"1558{secrets.randbelow(10**7):07d}"
    a = cfg.asterisk
    caller = Caller(DID, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                    dtmf="", hold_seconds=60, answer_timeout=20)
    call = asyncio.create_task(caller.run())
    try:
        status = await serve.wait_for(lambda s: s["agents"][DEAF]["state"] == "paused",
                                      timeout=20 + AFTER * cfg.acd.ring_timeout, what=f"{DEAF} autopaused")
        assert status["agents"][DEAF]["pause_reason"] == PAUSE_REASON
        assert status["queues"][QUEUE]["waiting"] == 1, "the caller still waits"
        await phone(OTHER, "answer")
        record = await wait_record(cfg, number, state="connected", timeout=30)
        assert record.agent == OTHER
        assert deaf.count("invite") == AFTER, f"{DEAF} offered {deaf.count('invite')} times"
        assert len(queue_log(cfg, DEAF, "RINGNOANSWER", since)) == AFTER
        assert [r[5] for r in queue_log(cfg, DEAF, "PAUSE", since)] == [PAUSE_REASON]
        unpaused = await cli(cfg, "agents", "unpause", DEAF)
        assert unpaused.returncode == 0, unpaused.stderr
        await serve.wait_for(lambda s: s["agents"][DEAF]["state"] == "available", what=f"{DEAF} back")
        assert len(queue_log(cfg, DEAF, "UNPAUSE", since)) == 1
    finally:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
