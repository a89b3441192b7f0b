"""Security of the generated Asterisk configuration, proven with real SIP/HTTP/AMI traffic.

All traffic goes to loopback addresses only.
"""
from __future__ import annotations

import asyncio
import stat
import tomllib

import aiohttp
import pytest

from testkit import sipua
from callpilot.infra.asterisk import runner
from callpilot.infra.config import Secrets, load_secrets
from tests.e2e.helpers import ami_exchange, basic_auth, is_loopback, listening_sockets

pytestmark = pytest.mark.e2e

OUTSIDE_NUMBERS = ["1001", "1002", "0044207946000", "9011442079460000", "911", "s", "800800",
                   "*21"]


async def _no_channels(config) -> list:
    s = config.secrets
    async with aiohttp.ClientSession(headers=basic_auth(s.ari_user, s.ari_password)) as http:
        async with http.get(f"{config.ari_url}/ari/channels") as resp:
            assert resp.status == 200
            return await resp.json()


# --- toll fraud: what the trunk and the phones may dial -------------------------------------

async def test_trunk_cannot_dial_agents_or_outside_numbers(asterisk, make_caller):
    callers = [make_caller(number, dtmf="", hold_seconds=1, answer_timeout=5)
               for number in OUTSIDE_NUMBERS]
    results = await asyncio.gather(*(c.run() for c in callers))
    for number, result in zip(OUTSIDE_NUMBERS, results):
        assert not result.answered, number
        assert result.status == 404, (number, result.status, result.stderr_tail)
    assert await _no_channels(asterisk) == []


async def test_unknown_source_ip_is_not_the_trunk(asterisk, make_caller):
    """Only the configured trunk IPs are the carrier: 127.0.0.3 is challenged, never answered."""
    result = await make_caller("800", local_ip="127.0.0.3", dtmf="", hold_seconds=1,
                               answer_timeout=5).run()
    assert not result.answered
    assert result.status == 401


def test_dialplan_has_only_configured_dids(asterisk):
    a = asterisk.asterisk
    trunk = runner.rx(asterisk, "dialplan show from-trunk")
    dids = set(a.dids) | set(a.agi_dids) | set(getattr(a, "queue_dids", {}))
    dids |= {d for d in (a.queue_bench_did, a.acd_bench_did, a.bare_bench_did, a.raw_bench_did) if d}
    assert _extensions(trunk) == dids, trunk
    assert "Include" not in trunk


def test_phones_cannot_dial_out(asterisk):
    """[from-agents] holds feature codes handled by the Stasis app, nothing that dials."""
    agents = runner.rx(asterisk, "dialplan show from-agents")
    assert all(ext.startswith("*") for ext in _extensions(agents)), agents
    apps = {line.split(". ", 1)[1].split("(")[0].strip()
            for line in agents.splitlines() if ". " in line and "[extensions.conf" in line}
    assert apps <= {"Stasis", "Hangup", "NoOp"}, apps
    assert "Include" not in agents


def _extensions(dialplan: str) -> set[str]:
    return {line.split("'")[1] for line in dialplan.splitlines()
            if line.strip().startswith("'")}


def test_no_anonymous_endpoint(asterisk):
    endpoints = runner.rx(asterisk, "pjsip show endpoints")
    assert "anonymous" not in endpoints.lower()
    out = runner.rx(asterisk, "pjsip show endpoint 1001")
    assert "from-agents" in out and "direct_media" in out


# --- SIP authentication -------------------------------------------------------------------

async def test_register_without_credentials_is_challenged(asterisk):
    a = asterisk.asterisk
    assert await sipua.register_async(a.sip_host, a.sip_port, "1001", None) == 401


async def test_register_with_wrong_password_fails(asterisk):
    a = asterisk.asterisk
    status = await sipua.register_async(a.sip_host, a.sip_port, "1001", "wrong-password")
    assert status in (401, 403)
    assert "1001/sip:" not in runner.rx(asterisk, "pjsip show contacts")


async def test_register_unknown_user_fails(asterisk):
    a = asterisk.asterisk
    status = await sipua.register_async(a.sip_host, a.sip_port, "9999", "whatever")
    assert status in (401, 403)


async def test_register_with_right_password_succeeds(asterisk, demo_passwords):
    a = asterisk.asterisk
    pw = demo_passwords["1002"]
    assert await sipua.register_async(a.sip_host, a.sip_port, "1002", pw) == 200
    assert "1002/sip:1002@127.0.0.1" in runner.rx(asterisk, "pjsip show contacts")
    assert await sipua.register_async(a.sip_host, a.sip_port, "1002", pw, expires=0) == 200


@pytest.mark.parametrize("target", ["1002", "0044207946000", "9011442079460000", "800"])
async def test_authenticated_phone_cannot_dial_out(asterisk, make_caller, demo_passwords,
                                                   target):
    """Toll fraud: even with the right credentials a phone reaches nothing but features."""
    result = await make_caller(target, local_ip="127.0.0.1", from_number="1003", dtmf="",
                               hold_seconds=1, answer_timeout=5, auth_user="1003",
                               auth_password=demo_passwords["1003"]).run()
    assert [e.name for e in result.events].count("challenge") == 1
    assert result.status == 404 and not result.answered, result.stderr_tail
    assert await _no_channels(asterisk) == []


async def test_phone_with_wrong_password_cannot_call(asterisk, make_caller):
    result = await make_caller("*21", local_ip="127.0.0.1", from_number="1003", dtmf="",
                               hold_seconds=1, answer_timeout=5, auth_user="1003",
                               auth_password="wrong").run()
    assert result.status in (401, 403) and not result.answered


@pytest.mark.parametrize("target", ["1002", "0044207946000"])
async def test_agent_invite_without_credentials_is_challenged(asterisk, make_caller, target):
    """A phone claiming to be 1001 (no credentials) gets 401 and no channel is created."""
    result = await make_caller(target, local_ip="127.0.0.1", from_number="1001", dtmf="",
                               hold_seconds=1, answer_timeout=5).run()
    assert result.status == 401 and not result.answered
    assert await _no_channels(asterisk) == []
    responses = await ami_exchange(asterisk, [{"Action": "CoreShowChannels"}])
    assert responses[1].get("Response") == "Success"


# --- ARI and AMI credentials --------------------------------------------------------------

@pytest.mark.parametrize("user,password", [("callpilot", "wrong"), ("asterisk", "asterisk"),
                                           ("", "")])
async def test_ari_refuses_wrong_credentials(asterisk, user, password):
    async with aiohttp.ClientSession(headers=basic_auth(user, password)) as http:
        async with http.get(f"{asterisk.ari_url}/ari/asterisk/info") as resp:
            assert resp.status == 401
        async with http.get(f"{asterisk.ari_url}/ari/channels") as resp:
            assert resp.status == 401


async def test_ari_without_credentials_is_refused(asterisk):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{asterisk.ari_url}/ari/asterisk/info") as resp:
            assert resp.status == 401


async def test_ari_accepts_the_generated_credentials(asterisk):
    s = asterisk.secrets
    async with aiohttp.ClientSession(headers=basic_auth(s.ari_user, s.ari_password)) as http:
        async with http.get(f"{asterisk.ari_url}/ari/asterisk/info") as resp:
            assert resp.status == 200


async def test_ami_refuses_wrong_secret(asterisk):
    responses = await ami_exchange(asterisk, [{"Action": "Ping"}], secret="wrong")
    assert responses == [responses[0]]
    assert responses[0]["Response"] == "Error"
    assert "Authentication failed" in responses[0].get("Message", "")


async def test_ami_refuses_unknown_user(asterisk):
    responses = await ami_exchange(asterisk, [], user="admin", secret="amp111")
    assert responses[0]["Response"] == "Error"


async def _monitor_state(asterisk, secret: str, wanted: set) -> str:
    import asyncio
    from callpilot.infra.asterisk.ami import AmiMonitor
    monitor = AmiMonitor("127.0.0.1", asterisk.asterisk.ami_port, asterisk.secrets.ami_user,
                         secret, lambda device, state: None)
    await monitor.start()
    try:
        for _ in range(50):
            if monitor.state.value in wanted:
                break
            await asyncio.sleep(0.1)
        return monitor.state.value
    finally:
        monitor.close()


async def test_serve_ami_monitor_reports_a_refused_secret(asterisk):
    """serve's own AMI client says auth_failed (status shows it), never a silent 'connected'."""
    assert await _monitor_state(asterisk, "wrong", {"auth_failed", "logged_in"}) == "auth_failed"
    good = asterisk.secrets.ami_secret
    assert await _monitor_state(asterisk, good, {"auth_failed", "logged_in"}) == "logged_in"


async def test_ami_accepts_the_generated_secret(asterisk):
    responses = await ami_exchange(asterisk, [{"Action": "Ping"}])
    assert [r["Response"] for r in responses] == ["Success", "Success"]


# --- exposure -----------------------------------------------------------------------------

def test_listens_only_on_loopback(asterisk):
    """SIP (UDP+TCP), ARI/HTTP and AMI are bound to loopback addresses only.

    Besides them Asterisk holds exactly two UDP sockets on the wildcard address with
    kernel-chosen ports: the PJSIP DNS resolver's client sockets (IPv4 + IPv6), created
    even with an empty resolv.conf (glibc then falls back to 127.0.0.1).  They are not
    services; every fixed port of the instance must be loopback-only."""
    pid = runner.asterisk_pid(asterisk)
    assert pid is not None
    sockets = listening_sockets(pid)
    a = asterisk.asterisk
    services = {("udp", a.sip_port), ("tcp", a.sip_port), ("tcp", a.ari_port),
                ("tcp", a.ami_port)}
    assert services <= {(proto, port) for proto, _addr, port in sockets}, sockets
    fixed = [s for s in sockets if (s[0], s[2]) in services]
    assert all(is_loopback(addr) for _proto, addr, _port in fixed), fixed
    low, _high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    others = [s for s in sockets if (s[0], s[2]) not in services]
    assert all(proto == "udp" and port >= low for proto, _addr, port in others), others
    assert len([s for s in others if not is_loopback(s[1])]) <= 2, others
    assert not [s for s in sockets if s[0] == "tcp" and not is_loopback(s[1])], sockets


# --- secrets ------------------------------------------------------------------------------

def test_secrets_are_generated_private_and_per_install(asterisk, tmp_path):
    s = asterisk.secrets
    defaults = Secrets()
    assert len(s.ari_password) >= 24 and len(s.ami_secret) >= 24
    assert s.ari_password != defaults.ari_password and s.ami_secret != defaults.ami_secret
    assert s.ari_password != s.ami_secret
    path = asterisk.state_dir / "secrets.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text())["ari_password"] == s.ari_password
    other = load_secrets(tmp_path)
    assert stat.S_IMODE((tmp_path / "secrets.toml").stat().st_mode) == 0o600
    assert other.ari_password != s.ari_password and other.ami_secret != s.ami_secret
    assert load_secrets(tmp_path) == other                      # stable once generated
    etc = asterisk.asterisk_dir / "etc"
    assert s.ari_password in (etc / "ari.conf").read_text()
    assert s.ami_secret in (etc / "manager.conf").read_text()


def test_agent_passwords_are_not_stored_in_clear(asterisk, demo_passwords):
    agents_conf = (asterisk.asterisk_dir / "etc" / "pjsip_agents.conf").read_text()
    for password in demo_passwords.values():
        assert password not in agents_conf
    assert "md5_cred" in agents_conf
    demo_file = asterisk.state_dir / "demo-agents.txt"
    assert stat.S_IMODE(demo_file.stat().st_mode) == 0o600
