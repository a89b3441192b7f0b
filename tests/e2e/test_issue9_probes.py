"""Issue 9's probes that need a real Asterisk and serve (the others are in
tests/unit/test_issue9_probes.py; the degraded path and the second serve have files of
their own)."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest

from callpilot.infra.config import AcdConfig
from tests.e2e.helpers import callpilot_cli
from tests.e2e.test_call_path import caller_number

pytestmark = pytest.mark.e2e


@pytest.fixture
def cfg(e2e_config, asterisk):
    return dataclasses.replace(e2e_config, acd=AcdConfig(ring_timeout=6, wrapup_seconds=1))


async def callpilot_call(serve, *args: str) -> dict:
    done = await callpilot_cli(serve.config_path, "call", *args, timeout=120, env=dict(os.environ))
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


async def test_row_call_with_a_rejected_invite_prints_no_earlier_record(cfg, serve):
    number = caller_number()
    first = await callpilot_call(serve, "800", "--from-number", number, "--hold", "3")
    assert first["sip_status"] == 200 and first["record"]["did"] == "800"
    rejected = await callpilot_call(serve, "999", "--from-number", number, "--hold", "1")
    assert rejected["sip_status"] == 404 and not rejected["answered"]
    assert rejected["record"] is None                    # not the earlier call's record
    second = await callpilot_call(serve, "800", "--from-number", number, "--hold", "3")
    assert second["record"]["id"] != first["record"]["id"]
    assert second["record"]["started_at"] > first["record"]["started_at"]
