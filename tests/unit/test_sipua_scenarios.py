"""Generated sipp scenarios are well-formed and follow sipp's rules (no sipp run)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from testkit import sipua
def _steps(xml: str) -> list[ET.Element]:
    return list(ET.fromstring(xml.encode("latin-1")))


def _check_sipp_rules(xml: str) -> None:
    steps = _steps(xml)
    labels = [s.get("id") for s in steps if s.tag == "label"]
    assert len(labels) == len(set(labels)), labels
    for step in steps:
        if step.get("next"):
            assert step.get("next") in labels, step.get("next")
    last_recv_optional = False
    for step in steps:            # sipp: no send/nop/pause right after an optional recv
        if step.tag == "recv":
            last_recv_optional = step.get("optional") in ("true", "global")
        elif step.tag in ("send", "nop", "pause"):
            assert not last_recv_optional, ET.tostring(step)[:80]


@pytest.mark.parametrize("behaviour", sipua.BEHAVIOURS)
def test_agent_scenarios(behaviour):
    xml = sipua.agent_scenario("1001", behaviour, 0.5, sipua.G711A_PCAP)
    _check_sipp_rules(xml)
    assert _steps(xml)[0].get("request") == "INVITE"


def test_caller_scenario_orders_global_handlers_before_their_use():
    xml = sipua.caller_scenario("800", "15550001", "1#", 1.0, 12.0, 30.0, sipua.G711A_PCAP)
    _check_sipp_rules(xml)
    steps = _steps(xml)
    bye = next(i for i, s in enumerate(steps) if s.get("optional") == "global")
    dtmf = [i for i, s in enumerate(steps) if "dtmf_2833" in ET.tostring(s, "unicode")]
    assert dtmf and bye < min(dtmf)
    assert "dtmf_2833_pound.pcap" in xml and "dtmf_2833_1.pcap" in xml
    pauses = sum(int(s.get("milliseconds")) for s in steps if s.tag == "pause")
    assert abs(pauses - 12000) < 50


def test_register_scenarios():
    _check_sipp_rules(sipua.register_scenario("1001", "pw", 3600))
    _check_sipp_rules(sipua.register_scenario("1001", None, 3600))
    assert "Contact: *" in sipua.register_scenario("1001", "pw", 0, contact="*")


def test_bad_dtmf_and_behaviour_are_refused():
    with pytest.raises(ValueError):
        sipua.caller_scenario("800", "1", "A", 1, 1, 1, sipua.G711A_PCAP)
    with pytest.raises(ValueError):
        sipua.agent_scenario("1001", "ignore", 0, sipua.G711A_PCAP)


def test_pcap_duration_and_media_ports():
    assert 6.9 < sipua.pcap_seconds(sipua.G711A_PCAP) < 7.2
    a, b = sipua.media_port(), sipua.media_port()
    assert a != b and a % 2 == 0 and b % 2 == 0


def test_caller_with_credentials_answers_one_challenge():
    xml = sipua.caller_scenario("*21", "1002", "", 1.0, 2.0, 30.0, sipua.G711A_PCAP,
                                auth=("1002", "pw"))
    _check_sipp_rules(xml)
    assert xml.count("[authentication username=1002 password=pw]") == 1
    assert "CSeq: 2 INVITE" in xml and "CSeq: 2 ACK" in xml and 'auth="true"' in xml
