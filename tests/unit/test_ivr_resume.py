"""A call resumed after a restart of serve takes up its flow in the node it was in, with its
earlier answers kept; progress is reported at every node and answer (what the record keeps)."""
from __future__ import annotations

from pathlib import Path

import pytest

from callpilot.infra.db.call_vocabulary import IvrPlace
from ivr.flows import load_builtin
from ivr.runner import FlowRunner, Resume
from ivr.schema import parse
from ivr.stasis import path_of
from ivr.tts import PromptCache
from testkit.ivr_fakes import FakeDriver, ToneSynthesizer


@pytest.fixture
def runner(tmp_path: Path) -> FlowRunner:
    return FlowRunner(PromptCache(tmp_path, "en-us", 160, synthesizer=ToneSynthesizer()))


async def test_a_resumed_call_starts_in_its_node_and_keeps_its_answers(runner):
    earlier = [{"node": "main_menu", "kind": "dtmf", "value": "9", "confidence": None}]
    result = await runner.run(parse(load_builtin("main")), FakeDriver(["1"]), {},
                              resume=Resume("main_menu", ["greeting", "main_menu"], earlier))
    assert result.outcome.queue == "billing"
    assert path_of(result.inputs) == ["main_menu=9", "main_menu=1"]
    assert result.path == ["greeting", "main_menu", "main_menu", "to_billing"]


async def test_an_unknown_resume_node_starts_the_flow_from_its_start(runner):
    result = await runner.run(parse(load_builtin("main")), FakeDriver(["2"]), {},
                              resume=Resume("gone_in_this_version"))
    assert result.path[0] == "greeting" and result.outcome.queue == "cards"


async def test_progress_is_reported_at_every_node_and_answer(runner):
    seen: list[tuple[str, list[str]]] = []
    await runner.run(parse(load_builtin("main")), FakeDriver(["9", "1"]), {},
                     on_progress=lambda ctx: seen.append((ctx.path[-1], path_of(ctx.inputs))))
    assert seen[0] == ("greeting", [])
    assert ("main_menu", ["main_menu=9"]) in seen and seen[-1] == ("to_billing", ["main_menu=9", "main_menu=1"])


def test_the_place_survives_json_and_keeps_only_plain_variables():
    place = IvrPlace("main", 3, "main_menu", ["greeting", "main_menu"],
                     [{"node": "main_menu", "kind": "dtmf", "value": "9"}],
                     {"language": "en-us", "when": object()})
    back = IvrPlace.from_json(place.to_json())
    assert back == IvrPlace("main", 3, "main_menu", place.path, place.inputs, {"language": "en-us"})
    assert IvrPlace.from_json(None) is None and IvrPlace.from_json({"flow": "x"}) is None
