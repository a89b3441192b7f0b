"""Operations on a real instance (real Asterisk 22, serve, sipp caller and agent phones):

* serve's Prometheus endpoint while a real caller waits (waiting = 1 on its queue) and after
  an agent answers (one agent on call, one more routing decision in the histograms);
* an agent created in the admin web registers its phone with the password the web showed and
  answers a call, without a serve restart or a hand-run render; a skill level changed in the
  web changes who gets the next call; the Asterisk reload that change triggers keeps the call
  already up (the caller, not Asterisk, ends it);
* an agent deleted in the web leaves serve's roster at once when idle, after its call when on
  one (the call survives the reload that drops its PJSIP account).

The web is driven through its own HTTP routes (the Flask client of the app `callpilot web`
serves, on the instance's database and serve's status socket).
"""
from __future__ import annotations

import asyncio
import json
import re
import stat
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from admin_web import accounts, db
from admin_web.app import create_app
from callpilot.app.web import build_services
from callpilot.infra.db import session as dbs
from testkit import sipua
from tests.e2e.conftest import instance_of_its_own
from tests.e2e.serve_proc import wait_record
from tests.e2e.test_web import caller, caller_number
from tests.web.conftest import AuthActions

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-ops-password"
SKILL_STEP = json.dumps([{"conditions": [{"kind": "skill_at_least", "skill": "acd", "level": 4}],
                          "expiry": None}])
QUEUE_FORM = {"title": "acd", "sl_target_seconds": "20", "sl_target_percent": "80", "join_empty": "y",
              "announce_frequency": "0", "max_wait_seconds": "0", "steps": SKILL_STEP}


@pytest.fixture
async def own_instance(tmp_path):
    """An instance of the test's own (agents it creates stay out of other tests): demo data,
    queue DID 803 -> queue 'acd', Asterisk up, serve ready, its metrics port free."""
    async with instance_of_its_own(tmp_path / "state", queue_dids={"803": "acd"}) as parts:
        yield parts


def scrape(cfg) -> dict[tuple[str, tuple], float]:
    """serve's /metrics as {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(metrics, name: str, **labels) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


async def test_metrics_while_a_caller_waits_and_after_an_agent_answers(own_instance):
    cfg, serve, passwords = own_instance
    number = caller_number()
    call = asyncio.create_task(caller(cfg, number, "800", dtmf="1", hold=8).run())
    await serve.wait_for(lambda s: any(c["caller_id"] == number for c in s["waiting"]),
                         what="the caller waiting in billing (no agent phone registered)")
    # the snapshot's wait is rounded: a scrape in the first instants of the wait reads 0
    for _ in range(25):
        waiting = await asyncio.to_thread(scrape, cfg)
        if (sample(waiting, "callpilot_queue_longest_wait_seconds", queue="billing") or 0) > 0:
            break
        await asyncio.sleep(0.2)
    assert sample(waiting, "callpilot_queue_waiting_calls", queue="billing") == 1
    assert sample(waiting, "callpilot_calls_in_progress", state="queued") == 1
    assert sample(waiting, "callpilot_queue_longest_wait_seconds", queue="billing") > 0
    assert sample(waiting, "callpilot_ari_connection_state", state="connected") == 1
    assert sample(waiting, "callpilot_ami_connection_state", state="logged_in") == 1
    assert sample(waiting, "callpilot_agents", state="on_call") == 0
    decisions = sample(waiting, "callpilot_routing_decision_seconds_count")
    originates = sample(waiting, "callpilot_routing_enqueue_to_originate_seconds_count")

    phone = sipua.AgentPhone("1001", passwords["1001"], server_host=cfg.asterisk.sip_host,
                             server_port=cfg.asterisk.sip_port)
    await phone.start()
    try:
        await phone.wait_for("answered", timeout=20)
        await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == "on_call", what="1001 on call")
        talking = await asyncio.to_thread(scrape, cfg)
        result = await call
    finally:
        await phone.stop()
    assert result.answered
    assert sample(talking, "callpilot_agents", state="on_call") == 1
    assert sample(talking, "callpilot_calls_in_progress", state="connected") == 1
    assert sample(talking, "callpilot_queue_waiting_calls", queue="billing") == 0
    assert sample(talking, "callpilot_routing_decision_seconds_count") == decisions + 1
    assert sample(talking, "callpilot_routing_enqueue_to_originate_seconds_count") == originates + 1
    assert sample(talking, "callpilot_event_loop_lag_seconds_count") > 0


@pytest.fixture
def web_client(own_instance):
    """The admin web app on the instance (real services: its notify reaches serve's socket),
    logged in as a new admin."""
    cfg, _serve, _passwords = own_instance
    engine = dbs.make_engine(cfg.db_url)
    sessions = dbs.make_sessionmaker(engine)
    with sessions() as session:
        accounts.create_user(session, "ops-admin", PASSWORD, "admin")
    app = create_app(cfg, build_services(cfg, sessions), {"SECRET_KEY": "e2e-ops"})
    auth = AuthActions(app.test_client())
    auth.login("ops-admin", PASSWORD)
    try:
        yield auth
    finally:
        db.dispose(app)
        engine.dispose()


async def web_post(auth: AuthActions, path: str, form: dict | None = None) -> str:
    """A form POST (off the loop: the web blocks while serve reloads)."""
    response = await asyncio.to_thread(auth.post, path, form or {}, follow_redirects=True)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def agent_form(queues: list[str], skills: str) -> dict:
    return {"name": "", "birth_year": "1990", "languages": "en", "skills": skills, "queues": queues,
            "auto_login": "y", "wrapup_seconds": ""}


async def test_agent_created_in_the_web_registers_answers_and_levels_route(own_instance, web_client):
    cfg, serve, passwords = own_instance
    auth = web_client
    await web_post(auth, "/queues/new", {"name": "acd"})
    saved = await web_post(auth, "/queues/acd", QUEUE_FORM)
    assert "serve uses it now" in saved
    shown = await web_post(auth, "/agents/new", {"extension": "1077", "name": "New Hire"})
    assert "serve and the phones use it now" in shown
    password = re.search(r'<code id="sip-password">([^<]+)</code>', shown).group(1)
    edited = await web_post(auth, "/agents/1077", agent_form(["acd"], "acd:5"))
    assert "serve and the phones use it now" in edited
    await web_post(auth, "/agents/1001", agent_form(["billing", "general", "acd"], "billing:5, general:3, acd:2"))
    accounts_file = cfg.asterisk_dir / "etc" / "pjsip_agents.conf"
    assert "[1077]" in accounts_file.read_text()
    assert stat.S_IMODE(accounts_file.stat().st_mode) == 0o600

    new = sipua.AgentPhone("1077", password, server_host=cfg.asterisk.sip_host,   # answers both calls:
                           server_port=cfg.asterisk.sip_port, answer_delay=0.5, calls=2)  # only levels decide
    old = sipua.AgentPhone("1001", passwords["1001"], server_host=cfg.asterisk.sip_host,
                           server_port=cfg.asterisk.sip_port, answer_delay=0.5)
    await new.start()
    await old.start()
    try:
        assert new.register_status == 200            # the password the web showed, no render by hand
        ready = ("1001", "1077")
        await serve.wait_for(lambda s: all(s["agents"].get(e, {}).get("device") == "NOT_INUSE"
                                           and s["agents"][e]["state"] == "available" for e in ready),
                             what="both agents ready")
        first_number = caller_number()
        first = asyncio.create_task(caller(cfg, first_number, "803", hold=8).run())
        await new.wait_for("answered", timeout=20)    # level 5 >= 4: the new agent, not 1001 (2)
        # the levels swap while that call is up: serve reloads the roster and res_pjsip
        await web_post(auth, "/agents/1077", agent_form(["acd"], "acd:2"))
        swapped = await web_post(auth, "/agents/1001", agent_form(["billing", "general", "acd"],
                                                                  "billing:5, general:3, acd:5"))
        assert "serve and the phones use it now" in swapped
        kept = await first
        assert kept.answered and kept.ended_by == "caller", kept   # the reload dropped nothing
        assert (await wait_record(cfg, first_number)).agent == "1077"
        await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == "available"
                             and s["agents"]["1077"]["state"] == "available", what="both agents free again")
        second_number = caller_number()
        second = await caller(cfg, second_number, "803", hold=2).run()
        assert second.answered
        assert (await wait_record(cfg, second_number)).agent == "1001"   # now the level-5 agent
    finally:
        await new.stop()
        await old.stop()


async def test_an_agent_deleted_in_the_web_leaves_serve_now_or_after_its_call(own_instance, web_client):
    """Deleted while idle: gone from serve's roster when the web's notify returns.  Deleted while
    on a call: the call goes on (the caller ends it, though the reload dropped its PJSIP
    account), then the agent leaves serve's roster; no restart."""
    cfg, serve, passwords = own_instance
    auth = web_client
    await serve.wait_for(lambda s: {"1001", "1002"} <= set(s["agents"]), what="the demo agents")
    assert "serve and the phones use it now" in await web_post(auth, "/agents/1002/delete")
    assert "1002" not in (await serve.status())["agents"]

    phone = sipua.AgentPhone("1001", passwords["1001"], server_host=cfg.asterisk.sip_host,
                             server_port=cfg.asterisk.sip_port)
    await phone.start()
    try:
        call = asyncio.create_task(caller(cfg, caller_number(), "800", dtmf="1", hold=8).run())
        await phone.wait_for("answered", timeout=20)
        await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == "on_call", what="1001 on call")
        assert "serve and the phones use it now" in await web_post(auth, "/agents/1001/delete")
        assert (await serve.status())["agents"]["1001"]["state"] == "on_call"     # stays for its call
        assert "[1001]" not in (cfg.asterisk_dir / "etc" / "pjsip_agents.conf").read_text()
        result = await call
        assert result.answered and result.ended_by == "caller", result
        await serve.wait_for(lambda s: "1001" not in s["agents"], what="1001 gone after its call")
    finally:
        await phone.stop()
