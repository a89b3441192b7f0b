"""outbound.settings: the one set of checks behind ``campaigns create`` and the web form."""
from __future__ import annotations

import pytest

from outbound.message import MENU_HINT, menu_hint, texts_for
from outbound.model import DEFAULT_REPLIES, DEFAULT_RETRY_DELAYS
from outbound.settings import campaign_settings, preview
from outbound.store import CampaignError


def test_defaults_are_the_stores_defaults():
    settings = campaign_settings(template="Hello {name}")
    assert settings["replies"] == DEFAULT_REPLIES and settings["retry_delays"] == DEFAULT_RETRY_DELAYS
    assert (settings["window_start"], settings["window_end"], settings["max_attempts"]) == ("08:00", "21:00", 3)


def test_the_menu_hint_follows_the_keys():
    assert menu_hint(DEFAULT_REPLIES) == MENU_HINT
    replies = campaign_settings(template="Hi", keys={"confirm": "", "agent": "0", "repeat": "*", "opt_out": "#"},
                                say=["stop=opt_out"])["replies"]
    assert replies == {"0": "agent", "*": "repeat", "#": "opt_out", "stop": "opt_out"}
    hint = "Press 0 to talk to an agent. Press * to hear this again. Press # to stop these calls."
    assert menu_hint(replies) == hint
    texts = texts_for("Hi {name}", "", "", "Acme", "Kim", {}, has_menu=True, replies=replies)
    assert texts.message == f"Hi Kim {hint}"


def test_preview_marks_variables_without_a_sample():
    assert preview("Hi {name}, order {order_id} ({amount})", {"order_id": "A-1"}, {"9": "opt_out"}) == \
        "Hi <name>, order A-1 (<amount>) Press 9 to stop these calls."


@pytest.mark.parametrize("kwargs", [{"template": " "}, {"template": "Hi {0}"}, {"template": "Hi {}"},
                                    {"template": "Hi", "voicemail": "{x"}, {"template": "Hi", "mode": "blast"},
                                    {"template": "Hi", "ring_seconds": 500}, {"template": "Hi", "retry": ["dnc=60"]},
                                    {"template": "Hi", "caller_id": "12ab"}, {"template": "Hi", "excluded": ["12/25"]}])
def test_refused(kwargs):
    with pytest.raises(CampaignError):
        campaign_settings(**kwargs)
