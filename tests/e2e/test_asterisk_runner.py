"""The Asterisk runner against real Asterisk: start/stop, isolation, prompts, agent reload."""
from __future__ import annotations

import stat
import time

import pytest

from callpilot.app import demo

from testkit import sipua
from callpilot.infra.asterisk import runner
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.models import Agent
from callpilot.infra.db.session import make_engine, make_sessionmaker
from tests.e2e.conftest import make_e2e_config
from tests.e2e.helpers import write_tone_wav

pytestmark = pytest.mark.e2e


def test_session_instance_is_up(asterisk):
    assert runner.status(asterisk) == "up"
    assert "Asterisk 22" in runner.rx(asterisk, "core show version")
    runner.up(asterisk)                      # idempotent: already up, returns at once
    assert runner.status(asterisk) == "up"


def test_generated_configs_are_private(asterisk):
    etc = asterisk.asterisk_dir / "etc"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o700
    for name in ("ari.conf", "manager.conf", "pjsip_agents.conf"):
        assert stat.S_IMODE((etc / name).stat().st_mode) == 0o600


def test_only_listed_modules_load(tmp_path):
    """On an instance of its own, so other tests' calls cannot add lines to its log."""
    asterisk = make_e2e_config(tmp_path / "state")
    demo.seed(asterisk)
    runner.up(asterisk)
    try:
        _check_modules_and_clean_startup(asterisk)
    finally:
        runner.down(asterisk)


def _check_modules_and_clean_startup(asterisk):
    out = runner.rx(asterisk, "module show like chan_")
    assert "chan_pjsip.so" in out and "chan_iax2" not in out
    modules = runner.rx(asterisk, "module show")
    for name in ("app_queue.so", "app_amd.so", "res_agi.so", "res_ari.so", "app_stasis.so",
                 "chan_audiosocket.so", "chan_websocket.so", "res_musiconhold.so"):
        assert name in modules, name
    assert "res_pjsip_endpoint_identifier_anonymous" not in modules
    log = (asterisk.asterisk_dir / "log" / "messages.log").read_text()
    startup = log[log.rfind("modules will be loaded"):]
    assert " ERROR[" not in startup and " WARNING[" not in startup, startup


async def test_prompt_in_state_dir_plays(asterisk, ari_app):
    """A WAV written by the app into state_dir/prompts plays by its absolute path."""
    tone = write_tone_wav(asterisk.prompts_dir / "e2e-tone.wav", seconds=1.0)
    async with ari_app("e2e-runner") as ari:
        status, chan = await ari.request("POST", "/channels", app="e2e-runner",
                                         endpoint="Local/wait@callpilot-internal")
        assert status == 200, chan
        await ari.wait_event("StasisStart", where=lambda e: e["channel"]["id"] == chan["id"])
        try:
            started = time.monotonic()
            state = await _play(ari, chan["id"], f"sound:{tone.with_suffix('')}")
            assert state == "done"
            assert time.monotonic() - started >= 0.8      # really played ~1 s of audio
            missing = asterisk.prompts_dir / "no-such-prompt"
            assert await _play(ari, chan["id"], f"sound:{missing}") == "failed"
        finally:
            await ari.request("DELETE", f"/channels/{chan['id']}")


async def _play(ari, channel_id: str, media: str) -> str:
    status, playback = await ari.request("POST", f"/channels/{channel_id}/play", media=media)
    assert status in (200, 201), playback
    done = await ari.wait_event(
        "PlaybackFinished", timeout=10, where=lambda e: e["playback"]["id"] == playback["id"])
    return done["playback"]["state"]


async def test_second_instance_runs_beside_the_first(asterisk, tmp_path):
    """Another state dir + ports: its own Asterisk, agents, reload; down leaves ours up."""
    other = make_e2e_config(tmp_path / "state")
    passwords = demo.seed(other)
    started = time.monotonic()
    runner.up(other)
    try:
        startup = time.monotonic() - started
        assert runner.status(other) == "up" and runner.status(asterisk) == "up"
        assert other.asterisk_dir != asterisk.asterisk_dir
        assert startup < 20, f"asterisk took {startup:.1f} s to start"
        await _check_register(other, "1001", passwords["1001"], 200)
        await _check_register(other, "1005", "new-agent-pw", 401)     # unknown yet
        _add_agent(other, "1005", "new-agent-pw")
        runner.reload_pjsip(other)
        await _check_register(other, "1005", "new-agent-pw", 200)
    finally:
        runner.down(other)
    assert runner.status(other) == "down"
    assert runner.status(asterisk) == "up"


async def _check_register(config, ext: str, password: str, expected: int) -> None:
    a = config.asterisk
    assert await sipua.register_async(a.sip_host, a.sip_port, ext, password) == expected
    if expected == 200:
        assert await sipua.register_async(a.sip_host, a.sip_port, ext, password,
                                          expires=0) == 200


def _add_agent(config, ext: str, password: str) -> None:
    engine = make_engine(config.db_url)
    with make_sessionmaker(engine)() as session, session.begin():
        session.add(Agent(extension=ext, name="New Agent",
                          sip_md5_cred=sip_md5_cred(ext, password)))
    engine.dispose()


def test_down_then_status(tmp_path):
    """down() on a never-started instance is a no-op; status reports down."""
    config = make_e2e_config(tmp_path / "state")
    assert runner.status(config) == "down"
    runner.down(config)
    assert runner.status(config) == "down"


def test_system_binary_mode(asterisk, tmp_path):
    """asterisk.binary set: no chroot by the runner; up/rx/status/down work the same.

    The "system" binary here is a wrapper running the rootfs Asterisk in its own mount
    namespace (this host has no Asterisk package)."""
    install = runner.resolve_install(asterisk)
    if install.rootfs is None:
        pytest.fail("this test needs the rootfs install as the stand-in system binary")
    state = tmp_path / "state"
    wrapper = tmp_path / "bin" / "asterisk"
    wrapper.parent.mkdir()
    wrapper.write_text(SYSTEM_WRAPPER.format(rootfs=install.rootfs, state=state.resolve()))
    wrapper.chmod(0o755)
    config = make_e2e_config(state, binary=str(wrapper))
    demo.seed(config)
    (install.rootfs / str(state.resolve()).lstrip("/")).mkdir(parents=True, exist_ok=True)
    runner.up(config)
    try:
        assert runner.status(config) == "up"
        assert "Asterisk 22" in runner.rx(config, "core show version")
        assert "1004" in runner.rx(config, "pjsip show endpoints")
    finally:
        runner.down(config)
    assert runner.status(config) == "down"


SYSTEM_WRAPPER = """#!/bin/sh
exec unshare --mount --propagation private --fork -- sh -c '
set -e
mount --bind /dev "{rootfs}/dev"
mount -t proc proc "{rootfs}/proc"
mount --bind "{state}" "{rootfs}{state}"
exec chroot "{rootfs}" /usr/sbin/asterisk "$@"' asterisk "$@"
"""


async def test_queue_bench_did_reaches_an_agent_through_app_queue(asterisk, tmp_path):
    """asterisk.queue_bench_did: the benchmark baseline, a plain Queue(bench)."""
    config = make_e2e_config(tmp_path / "state", queue_bench_did="899")
    passwords = demo.seed(config)
    runner.up(config)
    a = config.asterisk
    try:
        queue = runner.rx(config, "queue show bench")
        assert "rrmemory" in queue and all(f"PJSIP/{e}" in queue for e in passwords)
        phone = sipua.AgentPhone("1001", passwords["1001"], a.sip_host, a.sip_port,
                                 answer_delay=0.1)
        await phone.start()
        try:
            caller = sipua.Caller("899", a.sip_host, a.sip_port, dtmf="", hold_seconds=2)
            result = await caller.run()
            await phone.wait_for("bye")
        finally:
            await phone.stop()
        assert result.answered and result.ended_by == "caller"
        assert phone.answered
    finally:
        runner.down(config)
