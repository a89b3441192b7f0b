"""One serve per state dir: a second `callpilot serve` is refused and the first one keeps
answering (real Asterisk, real serve subprocesses)."""
from __future__ import annotations

import os

import pytest

from tests.e2e.helpers import callpilot_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def cfg(e2e_config, asterisk):
    return e2e_config


async def test_second_serve_is_refused_and_the_first_still_answers_status(cfg, serve):
    sock = cfg.state_dir / "serve.sock"
    inode = sock.stat().st_ino
    second = await callpilot_cli(serve.config_path, "serve", env=dict(os.environ))
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert lines == [f"callpilot: serve is already running for state dir {cfg.state_dir} "
                     f"(pid {serve.proc.pid}); not starting a second one"], second.stderr
    assert sock.stat().st_ino == inode                  # the first one's socket untouched
    status = await serve.status()
    assert status["ari"] == "connected" and status["ami"] == "logged_in"
    status_cli = await callpilot_cli(serve.config_path, "status", env=dict(os.environ))
    assert ", serve up," in status_cli.stdout, status_cli.stdout + status_cli.stderr
