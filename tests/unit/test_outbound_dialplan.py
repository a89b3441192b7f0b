"""The outbound route cannot be reached by any caller (toll fraud), and AMD is wired in."""
from __future__ import annotations

import configparser
import re

import pytest

from callpilot.infra import config as config_mod
from callpilot.infra.asterisk import runner


@pytest.fixture
def etc(tmp_path):
    cfg = config_mod.load(env={"CALLPILOT_STATE_DIR": str(tmp_path / "state")})
    runner.render(cfg, [])
    return {p.name: p.read_text() for p in (cfg.asterisk_dir / "etc").iterdir()}


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """pjsip.conf sections in order (names repeat: [trunk] endpoint, aor, identify)."""
    found, current = [], None
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if m := re.fullmatch(r"\[(.+)\]", line):
            current = (m[1], {})
            found.append(current)
        elif current and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[1][key] = value
    return found


def context(conf: str, name: str) -> str:
    return conf.split(f"[{name}]")[1].split("\n[")[0]


def test_outbound_endpoint_is_never_matched_inbound_and_refuses_everything(etc):
    pjsip = sections(etc["pjsip.conf"])
    (endpoint,) = [v for n, v in pjsip if n == "outbound" and v.get("type") == "endpoint"]
    assert endpoint["context"] == "callpilot-closed" and endpoint["identify_by"] == "ip"
    identifies = [v for n, v in pjsip if v.get("type") == "identify"]
    assert all(v.get("endpoint") != "outbound" for v in identifies)
    assert not [n for n, v in pjsip if n == "outbound" and v.get("type") in ("aor", "auth")]
    closed = context(etc["extensions.conf"], "callpilot-closed")
    assert not [line for line in closed.splitlines() if line.startswith(("exten", "include"))]


def test_amd_context_is_reachable_only_by_the_stasis_app(etc):
    conf = etc["extensions.conf"]
    amd = context(conf, "callpilot-outbound-amd")
    assert "AMD()" in amd and "WaitForSilence(" in amd
    assert "Stasis(callpilot,outbound-amd,${AMDSTATUS},${AMDCAUSE})" in amd
    assert "include => callpilot-outbound-amd" not in conf
    contexts = {v.get("context") for _, v in sections(etc["pjsip.conf"])}
    assert "callpilot-outbound-amd" not in contexts


def test_amd_defaults_and_modules(etc):
    amd = configparser.ConfigParser()
    amd.read_string(etc["amd.conf"])
    g = amd["general"]
    assert (g["total_analysis_time"], g["initial_silence"], g["greeting"],
            g["after_greeting_silence"]) == ("5000", "2500", "1500", "800")
    modules = etc["modules.conf"]
    for module in ("app_amd.so", "app_waitforsilence.so"):
        assert f"load => {module}" in modules
