"""Agents changed in the database reach serve without a restart: the roster merge (profile
in, state kept), the re-render of the PJSIP accounts (0600) and the Asterisk reload asked
for over AMI (a fake here; tests/e2e/test_web_ops.py drives a real Asterisk)."""
from __future__ import annotations

import stat

from acd.agents import AgentRoster, LiveAgent
from acd.dispatcher import Dispatcher
from acd.events import NullEventSink
from acd.model import DEFAULT_AGE_BANDS, AgentState
from acd.queues import QueueBook, QueueSettings
from acd.state import CallState
from callpilot.app.agent_reload import AgentReload
from callpilot.app.status import StatusServer, post
from callpilot.infra.db import models
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.session import make_engine, make_sessionmaker
from testkit.isolated import isolated_config, seed_queue_agents
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent, enqueue


def _dispatcher(*agents: LiveAgent) -> Dispatcher:
    roster = AgentRoster()
    for a in agents:
        roster.add(a)
    queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=()),
                        "vip": QueueSettings(name="vip", announce_frequency=0, steps=())})
    return Dispatcher(FakeControl(), roster, FakeRecords(), ring_timeout=5, wrapup_seconds=0, queues=queues)


async def test_a_known_agent_takes_the_new_profile_and_keeps_its_call():
    busy = agent("1")
    d = _dispatcher(busy)
    await enqueue(d, "a")                                   # agent 1 is ringing for call a
    assert busy.state is AgentState.RINGING
    fresh = LiveAgent(extension="1", queues=frozenset({"q", "vip"}), skills={"q": 5, "vip": 2},
                      languages=frozenset({"ko"}))
    assert d.refresh_roster([fresh]) == ["1"]
    assert busy.state is AgentState.RINGING and busy.call_id == "a"
    assert (busy.queues, busy.skills, busy.languages) == (frozenset({"q", "vip"}), {"q": 5, "vip": 2},
                                                          frozenset({"ko"}))
    assert d.roster.count("vip", AgentState.RINGING) == 1  # per-queue counts follow the queues
    assert d.refresh_roster([fresh]) == []                  # nothing new: nothing touched


async def test_a_new_agent_joins_and_takes_calls():
    d = _dispatcher()
    await enqueue(d, "a")                                   # nobody to take it
    new = LiveAgent(extension="7", queues=frozenset({"q"}), skills={"q": 3})
    new.move(AgentState.AVAILABLE, "auto login")
    new.device_state = "NOT_INUSE"                          # its phone registered
    assert d.refresh_roster([new]) == ["7"]
    await d._dispatch_once()
    await d.settle()
    assert d.control.rung == [("a", "PJSIP/7")]


async def test_a_higher_level_changes_who_is_offered_the_call():
    """Skill level decides among idle agents with a ticket step asking skill >= 4."""
    low, other = agent("1"), agent("2")
    low.skills, other.skills = {"q": 2}, {"q": 3}
    d = _dispatcher(low, other)
    raised = LiveAgent(extension="1", queues=frozenset({"q"}), skills={"q": 5})
    d.refresh_roster([raised])
    await enqueue(d, "a", skills={"q": 4})
    assert d.control.rung == [("a", "PJSIP/1")]


def _seed(tmp_path):
    config = isolated_config(tmp_path / "state")
    seed_queue_agents(config, "q", 2)
    return config


async def test_reload_merges_renders_0600_and_asks_asterisk(tmp_path):
    config = _seed(tmp_path)
    engine = make_engine(config.db_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:                              # the web adds an agent
        s.add(models.Agent(extension="2099", name="New", auto_login=True,
                           sip_md5_cred=sip_md5_cred("2099", "pw-2099")))
    refreshed: list[list[str]] = []
    reloads: list[str] = []

    async def reload_module(module: str) -> bool:
        reloads.append(module)
        return True

    job = AgentReload(config, sessions, DEFAULT_AGE_BANDS,
                      lambda agents: refreshed.append(sorted(a.extension for a in agents)) or ["2099"],
                      reload_module)
    result = await job()
    engine.dispose()
    assert refreshed == [["2001", "2002", "2099"]]
    assert reloads == ["res_pjsip.so", "app_queue.so"]
    assert result == {"reloaded": "agents", "agents": 3, "changed": ["2099"], "asterisk": True}
    accounts = config.asterisk_dir / "etc" / "pjsip_agents.conf"
    assert "[2099]" in accounts.read_text() and sip_md5_cred("2099", "pw-2099") in accounts.read_text()
    assert stat.S_IMODE(accounts.stat().st_mode) == 0o600


async def test_asterisk_refusing_the_reload_is_reported(tmp_path):
    config = _seed(tmp_path)
    engine = make_engine(config.db_url)

    async def refuse(_module: str) -> bool:
        return False

    result = await AgentReload(config, make_sessionmaker(engine), DEFAULT_AGE_BANDS, lambda a: [], refuse)()
    engine.dispose()
    assert result["asterisk"] is False


async def test_status_socket_awaits_an_async_reload(tmp_path):
    async def reload(what: str) -> dict:
        return {"reloaded": what}

    server = StatusServer(tmp_path / "serve.sock", lambda: {}, reload=reload)
    await server.start()
    try:
        assert await post(tmp_path / "serve.sock", "/reload/agents") == (200, {"reloaded": "agents"})
    finally:
        await server.stop()


async def test_no_reload_asked_while_ami_is_not_logged_in(caplog):
    from callpilot.infra.asterisk.ami import AmiMonitor
    monitor = AmiMonitor("127.0.0.1", 1, "u", "s", lambda device, state: None)
    assert await monitor.reload_module("res_pjsip.so") is False
    assert "not reloaded" in caplog.text


async def test_a_reloaded_agent_is_spoken_to_in_its_new_first_language():
    """Feature-code prompts and the callback whisper use LiveAgent.language (D23)."""
    known = agent("1")
    d = _dispatcher(known)
    d.refresh_roster([LiveAgent(extension="1", queues=known.queues, skills=known.skills,
                                languages=frozenset({"ko", "en"}), language="ko")])
    assert known.language == "ko"
    assert d.refresh_roster([LiveAgent(extension="1", queues=known.queues, skills=known.skills,
                                       languages=frozenset({"ko", "en"}), language="en")]) == ["1"]
    assert known.language == "en", "the order changed, the set did not: still a change"


class Logouts(NullEventSink):
    def __init__(self):
        self.logouts: list[str] = []

    def agent_logout(self, extension, queues, seconds):
        self.logouts.append(extension)


def _dispatcher_with_events(*agents: LiveAgent, wrapup: float = 0) -> tuple[Dispatcher, Logouts]:
    roster, events = AgentRoster(), Logouts()
    for a in agents:
        roster.add(a)
    queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
    return Dispatcher(FakeControl(), roster, FakeRecords(), ring_timeout=5, wrapup_seconds=wrapup,
                      queues=queues, events=events), events


def _profile_of(a: LiveAgent) -> LiveAgent:
    return LiveAgent(extension=a.extension, queues=a.queues, skills=dict(a.skills))


async def test_an_idle_agent_deleted_in_the_database_leaves_now():
    gone, stays = agent("1"), agent("2")
    d, events = _dispatcher_with_events(gone, stays)
    assert d.refresh_roster([_profile_of(stays)]) == ["1"]
    assert d.roster.get("1") is None and events.logouts == ["1"]
    assert d.roster.count("q", AgentState.AVAILABLE) == 1
    await enqueue(d, "a")
    await enqueue(d, "b")
    assert d.control.rung == [("a", "PJSIP/2")]            # never offered to the deleted agent
    assert d.calls["b"].state is CallState.QUEUED


async def test_an_agent_on_a_call_leaves_after_the_call():
    talking = agent("1")
    d, events = _dispatcher_with_events(talking)
    await enqueue(d, "a")
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    assert d.refresh_roster([]) == ["1"]
    assert d.roster.get("1") is talking and talking.state is AgentState.ON_CALL
    assert events.logouts == []                              # the call goes on
    assert d.refresh_roster([]) == []                        # already leaving: nothing new
    await d.caller_gone("a")
    assert d.roster.get("1") is None and events.logouts == ["1"]
    await enqueue(d, "b")
    assert d.control.rung == [("a", "PJSIP/1")] and d.calls["b"].state is CallState.QUEUED


async def test_an_agent_in_wrap_up_leaves_when_the_wrap_up_ends():
    d, events = _dispatcher_with_events(agent("1"), wrapup=30)
    await enqueue(d, "a")
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    await d.caller_gone("a")
    d.refresh_roster([])
    assert d.roster.get("1").state is AgentState.WRAP_UP and events.logouts == []
    await d._end_wrapup(d.roster.get("1"), "a")
    assert d.roster.get("1") is None and events.logouts == ["1"]
    await d.stop()


async def test_an_agent_back_in_the_database_before_its_call_ends_stays():
    talking = agent("1")
    d, events = _dispatcher_with_events(talking)
    await enqueue(d, "a")
    await d.agent_answered(d.calls["a"].agent_channel, "a")
    d.refresh_roster([])
    d.refresh_roster([_profile_of(talking)])
    await d.caller_gone("a")
    assert d.roster.get("1") is talking and talking.state is AgentState.AVAILABLE and events.logouts == []
