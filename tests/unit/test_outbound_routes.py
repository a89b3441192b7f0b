"""Allow-listed outbound routes: config validation, TOML round trip, the rendered trunk."""
from __future__ import annotations

import pytest

from callpilot.infra import config as config_mod
from callpilot.infra.asterisk import runner
from callpilot.infra.config import ConfigError, route_dial_strings, to_toml

ROUTES = '''
routes = { fraud_desk = { number = "+18005550100", trunk = "carrier" } }
[asterisk]
outbound_trunks = { carrier = "198.51.100.7:5060" }
'''


def load(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n' + text)
    return config_mod.load(path, env={})


def test_routes_load_and_round_trip_through_toml(tmp_path):
    cfg = load(tmp_path, ROUTES)
    assert route_dial_strings(cfg) == {"fraud_desk": "PJSIP/+18005550100@out-carrier"}
    again = tmp_path / "again.toml"
    again.write_text(to_toml(cfg))
    assert config_mod.load(again, env={}).routes == cfg.routes


@pytest.mark.parametrize("text, problem", [
    (ROUTES.replace('"+18005550100"', '"+1800${EXTEN}"'), "number"),
    (ROUTES.replace('"+18005550100"', '"1800_X."'), "number"),
    (ROUTES.replace('trunk = "carrier"', 'trunk = "nowhere"'), "not in asterisk.outbound_trunks"),
    (ROUTES.replace('"198.51.100.7:5060"', '"sip:x@y;transport=tcp"'), "host[:port]"),
    (ROUTES.replace('fraud_desk = {', 'fraud_desk = { extra = "1",'), "must be {number, trunk}"),
])
def test_bad_routes_are_refused(tmp_path, text, problem):
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("$", r"\$")):
        load(tmp_path, text)


def test_the_outbound_trunk_is_rendered_unreachable_from_outside(tmp_path):
    cfg = load(tmp_path, ROUTES)
    runner.render(cfg, [])
    etc = cfg.asterisk_dir / "etc"
    pjsip, extensions = (etc / "pjsip.conf").read_text(), (etc / "extensions.conf").read_text()
    section = pjsip[pjsip.index("[out-carrier]"):pjsip.index("#include")]
    assert "identify_by = ip" in section and "context = callpilot-closed" in section
    assert "contact = sip:198.51.100.7:5060" in section
    assert "type = identify" not in section and "type = auth" not in section
    closed = extensions[extensions.index("[callpilot-closed]"):extensions.index("[callpilot-internal]")]
    assert [line for line in closed.splitlines()[1:] if line and not line.startswith(";")] == []
