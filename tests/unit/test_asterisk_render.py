"""Rendering of the Asterisk configuration (no Asterisk needed)."""
from __future__ import annotations

import re
import socket
import stat
from dataclasses import dataclass

import pytest

from callpilot.infra import config as config_mod
from callpilot.infra.asterisk import runner
from callpilot.infra.db.agents import sip_md5_cred


@dataclass
class FakeAgent:
    extension: str
    sip_md5_cred: str
    name: str = ""


@pytest.fixture
def config(tmp_path):
    cfg = config_mod.load(env={"CALLPILOT_STATE_DIR": str(tmp_path / "state")})
    cfg.asterisk.dids = {"800": "main", "805": "sales"}
    cfg.asterisk.agi_dids = {"801": "main"}
    return cfg


def _render(config, agents=()):
    runner.render(config, list(agents))
    etc = config.asterisk_dir / "etc"
    return {p.name: p.read_text() for p in etc.iterdir()}


def test_sip_md5_cred_is_md5_of_user_realm_password():
    # echo -n "1001:callpilot:secret" | md5sum
    assert sip_md5_cred("1001", "secret") == "74f90426437ace947f79c80042497a08"


def test_trunk_context_holds_only_the_dids(config):
    conf = _render(config)["extensions.conf"]
    trunk = conf.split("[from-trunk]")[1].split("\n[")[0]
    extens = {line.split("=>")[1].split(",")[0].strip()
              for line in trunk.splitlines() if line.startswith("exten")}
    assert extens == {"800", "805", "801"}
    assert "Stasis(callpilot,inbound,sales)" in trunk
    assert "AGI(agi://127.0.0.1:4573/ivr/main)" in trunk
    assert "Stasis(callpilot,enqueue,${CALLPILOT_QUEUE},stored)" in trunk
    assert not [line for line in trunk.splitlines() if line.startswith("exten => _")]
    agents = conf.split("[from-agents]")[1].split("\n[")[0]
    steps = [line.split("=>", 1)[1] for line in agents.splitlines()
             if line.lstrip().startswith(("exten", "same"))]
    apps = {re.findall(r"([A-Za-z]+)\(", step)[0] for step in steps}
    assert apps <= {"Stasis", "Hangup", "NoOp"}, apps         # nothing that dials out
    assert "include" not in agents
    assert "callpilot-queue-bench" not in conf


def test_queue_bench_only_when_configured(config):
    config.asterisk.queue_bench_did = "899"
    agent = FakeAgent("1001", sip_md5_cred("1001", "pw"))
    files = _render(config, [agent])
    assert "exten => 899,1,Goto(callpilot-queue-bench,s,1)" in files["extensions.conf"]
    assert "member => PJSIP/1001" in files["queues.conf"]
    assert "strategy = rrmemory" in files["queues.conf"]


def test_agents_get_digest_auth_and_safe_media_settings(config):
    agent = FakeAgent("1001", sip_md5_cred("1001", "pw"), 'Mina "x" Park')
    conf = _render(config, [agent])["pjsip_agents.conf"]
    for line in ("auth_type = md5", "realm = callpilot", "max_contacts = 1",
                 "remove_existing = yes", "direct_media = no", "send_connected_line = no",
                 "rtp_symmetric = yes", "context = from-agents", "allow = ulaw,alaw",
                 f"md5_cred = {agent.sip_md5_cred}", "qualify_frequency = 0",
                 'callerid = "Mina x Park" <1001>'):
        assert line in conf, line
    assert "pw" not in conf.replace("pjsip", "")


def test_global_and_trunk(config):
    conf = _render(config)["pjsip.conf"]
    assert "endpoint_identifier_order = ip,username" in conf
    assert "anonymous" not in conf.replace("no anonymous", "")
    assert "match = 127.0.0.2" in conf
    assert "bind = 127.0.0.1:5060" in conf and "protocol = tcp" in conf
    assert "bind_rtp_to_media_address = yes" in conf


@pytest.mark.parametrize("ext,cred", [("1001\n[evil]", "0" * 32), ("1001", "not-md5"),
                                      ("10 01", "0" * 32)])
def test_unsafe_agents_are_refused(config, ext, cred):
    with pytest.raises(runner.AsteriskError):
        runner.render(config, [FakeAgent(ext, cred)])


def test_unsafe_flow_names_are_refused(config):
    config.asterisk.dids = {"800": "main,evil"}
    with pytest.raises(runner.AsteriskError):
        runner.render(config, [])


def test_secrets_and_private_files(config):
    files = _render(config)
    assert config.secrets.ari_password in files["ari.conf"]
    assert config.secrets.ami_secret in files["manager.conf"]
    assert "bindaddr = 127.0.0.1" in files["manager.conf"]
    assert "permit = 127.0.0.1/255.255.255.255" in files["manager.conf"]
    etc = config.asterisk_dir / "etc"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in etc.iterdir())


def test_instance_directories_live_in_the_state_dir(config):
    conf = _render(config)["asterisk.conf"]
    base = str(config.asterisk_dir)
    for key in ("astetcdir", "astvarlibdir", "astdbdir", "astspooldir", "astrundir",
                "astlogdir", "astcachedir"):
        line = next(l for l in conf.splitlines() if l.startswith(key))
        assert line.split("=>")[1].strip().startswith(base), line
    assert "astmoddir" not in conf and "astdatadir" not in conf


def test_modules_are_an_explicit_list(config):
    conf = _render(config)["modules.conf"]
    assert "autoload = no" in conf
    loads = [l.split("=>")[1].strip() for l in conf.splitlines() if l.startswith("load")]
    assert len(loads) == len(set(loads))
    for name in ("app_queue.so", "app_amd.so", "res_agi.so", "chan_audiosocket.so",
                 "chan_websocket.so", "res_ari.so", "app_stasis.so", "chan_pjsip.so"):
        assert name in loads
    assert "res_pjsip_endpoint_identifier_anonymous.so" not in loads


def test_package_list_is_shared_with_docker():
    packages = runner.rootfs_packages()
    assert "asterisk" in packages and "asterisk-moh-opsound-wav" in packages


def test_every_did_has_a_degraded_path_to_app_queue_over_all_agents(config):
    from callpilot.infra.db.agents import sip_md5_cred
    config.asterisk.queue_dids = {"803": "acd"}
    files = _render(config, [FakeAgent("1001", sip_md5_cred("1001", "x")),
                             FakeAgent("1002", sip_md5_cred("1002", "y"))])
    conf, queues = files["extensions.conf"], files["queues.conf"]
    trunk = conf.split("[from-trunk]")[1].split("\n[")[0]
    assert trunk.count('GotoIf($["${STASISSTATUS}" = "FAILED"]?callpilot-degraded,') == 4
    assert 'GotoIf($["${AGISTATUS}" = "FAILURE"]?callpilot-degraded,801,1)' in trunk
    degraded = conf.split("[callpilot-degraded]")[1].split("\n[")[0]
    for did in ("800", "805", "801", "803"):
        assert f"exten => {did},1," in degraded
        assert f"Queue({runner.DEGRADED_QUEUE},,{did})" in degraded
    steps = [line.split("=>", 1)[1] for line in degraded.splitlines()
             if line.lstrip().startswith(("exten", "same"))]
    apps = {re.findall(r"([A-Za-z]+)\(", step)[0] for step in steps}
    assert apps == {"NoOp", "Answer", "Playback", "Queue", "Hangup"}   # nothing dials out
    section = queues.split(f"\n[{runner.DEGRADED_QUEUE}]")[1].split("\n[")[0]
    assert "ringinuse = no" in section
    assert [line for line in section.splitlines() if line.startswith("member")] == [
        "member => PJSIP/1001,0,1001,PJSIP/1001", "member => PJSIP/1002,0,1002,PJSIP/1002"]
    assert "queue_log = yes" in files["logger.conf"]


def test_bare_ari_bench_dids_only_when_configured(config):
    """bench.acd's floors (D41): answered like the other bench DIDs, then the bare apps."""
    agent = FakeAgent("1001", sip_md5_cred("1001", "pw"))
    assert "-bare)" not in _render(config, [agent])["extensions.conf"]
    config.asterisk.bare_bench_did, config.asterisk.raw_bench_did = "8502", "8503"
    conf = _render(config, [agent])["extensions.conf"]
    trunk = conf.split("[from-trunk]")[1].split("\n[")[0]
    for did, app in (("8502", "bare"), ("8503", "raw")):
        assert f"exten => {did},1,Answer()\n same => n,Stasis(callpilot-{app})\n same => n,Hangup()" in trunk


def test_system_name_holds_the_node_so_nodes_on_one_database_never_share_a_call_id(config):
    """A caller channel's unique id, ``<systemname>-<epoch>.<count>``, is the call's id in the
    database: two nodes' Asterisks must never make the same one."""
    config.acd.node = "node-a"
    assert "\nsystemname = callpilot-node-a\n" in _render(config)["asterisk.conf"]
    other = config_mod.load(env={"CALLPILOT_STATE_DIR": str(config.state_dir.parent / "b")})
    other.acd.node = "node-b"
    assert runner.system_name(other) == "callpilot-node-b"


def test_system_name_without_a_node_name_is_the_host_name(config, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "pbx7")
    config.acd.node = ""
    assert runner.system_name(config) == "callpilot-pbx7"


def test_a_long_system_name_keeps_call_ids_within_their_column(config):
    names = set()
    for node in ("a" * 64, "a" * 63 + "b"):
        config.acd.node = node
        name = runner.system_name(config)
        assert len(name) + runner.UNIQUEID_TAIL <= runner.CALL_ID_MAX
        assert name.startswith("callpilot-aaaa")
        names.add(name)
    assert len(names) == 2                      # the digest keeps the two apart


def test_the_node_name_is_acd_node_else_the_host_name(config, monkeypatch):
    """One name per node: its Asterisk's systemname, its agent holds and (``outbound.node``
    left empty) its campaign attempts' ``claimed_by``."""
    monkeypatch.setattr(socket, "gethostname", lambda: "pbx7")
    config.acd.node = ""
    assert config.node_name == "pbx7"
    config.acd.node = "east-1"
    assert config.node_name == "east-1" and runner.system_name(config) == "callpilot-east-1"
