"""The flow runner on the demo flow and small flows, with a scripted fake caller."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ivr.flows import load_builtin
from ivr.runner import FlowRunner, Outcome
from ivr.schema import parse
from testkit.ivr_fakes import Barge, FakeDriver, HangsUp, Say, ToneSynthesizer
from ivr.tts import PromptCache


@pytest.fixture
def synth() -> ToneSynthesizer:
    return ToneSynthesizer()


@pytest.fixture
def prompts(tmp_path: Path, synth: ToneSynthesizer) -> PromptCache:
    return PromptCache(tmp_path, "en-us", 160, synthesizer=synth)


@pytest.fixture
def runner(prompts: PromptCache) -> FlowRunner:
    return FlowRunner(prompts)


@pytest.fixture
def main_flow():
    return parse(load_builtin("main"))


def uri(prompts: PromptCache, text: str) -> str:
    return "sound:" + str(prompts.path_for(text, "en-us").with_suffix(""))


GREETING = "Welcome to CallPilot Bank."
MENU = ("Say billing or press 1. Say cards or press 2. For a lost card, say lost card or "
        "press 3. For an agent, say agent or press 0.")
NO_INPUT = "Sorry, I did not hear a choice."
NO_MATCH = "Sorry, that is not one of the choices."


async def test_key_1_goes_to_billing(runner, main_flow) -> None:
    result = await runner.run(main_flow, FakeDriver(["1"]), {})
    assert result.outcome.kind == "enqueue" and result.outcome.queue == "billing"
    assert result.outcome.skills == {"billing": 1}


async def test_key_2_goes_to_cards(runner, main_flow) -> None:
    result = await runner.run(main_flow, FakeDriver(["2"]), {})
    assert result.outcome.queue == "cards"


async def test_invalid_key_reprompts_twice_then_general(runner, main_flow, prompts) -> None:
    driver = FakeDriver(["9", "7", "0"])
    result = await runner.run(main_flow, driver, {})
    assert result.outcome.queue == "general"
    assert driver.played == [[uri(prompts, GREETING)], [uri(prompts, MENU)],
                             [uri(prompts, NO_MATCH), uri(prompts, MENU)],
                             [uri(prompts, NO_MATCH), uri(prompts, MENU)]]
    assert [i["kind"] for i in result.inputs] == ["dtmf"] * 3


async def test_no_input_reprompts_twice_then_general(runner, main_flow, prompts) -> None:
    driver = FakeDriver(["", "", ""])
    result = await runner.run(main_flow, driver, {})
    assert result.outcome.queue == "general"
    assert driver.played[2:] == [[uri(prompts, NO_INPUT), uri(prompts, MENU)]] * 2
    assert [i["kind"] for i in result.inputs] == ["timeout"] * 3
    assert all(r["timeout"] == 5.0 for r in driver.reads)


async def test_a_good_key_after_a_retry_is_taken(runner, main_flow) -> None:
    result = await runner.run(main_flow, FakeDriver(["", "5", "2"]), {})
    assert result.outcome.queue == "cards"
    assert [(i["kind"], i["value"]) for i in result.inputs] == [
        ("timeout", ""), ("dtmf", "5"), ("dtmf", "2")]


async def test_barge_in_digit_during_the_menu_prompt_is_the_choice(runner, main_flow) -> None:
    driver = FakeDriver([Barge("2")])
    result = await runner.run(main_flow, driver, {})
    assert result.outcome.queue == "cards"
    assert driver.reads[-1]["first"] == "2"
    assert result.inputs == [{"node": "main_menu", "kind": "dtmf", "value": "2",
                              "confidence": 1.0}]


async def test_key_during_greeting_skips_the_menu_prompt(runner, main_flow) -> None:
    driver = FakeDriver([Barge("1")])
    result = await runner.run(main_flow, driver, {})
    assert result.outcome.queue == "billing"
    assert len(driver.played) == 1        # greeting only: the menu prompt was typed through


async def test_journey_records_path_inputs_and_times(runner, main_flow) -> None:
    result = await runner.run(main_flow, FakeDriver(["8", "1"]), {})
    assert result.path == ["greeting", "main_menu", "to_billing"]
    assert result.inputs == [
        {"node": "main_menu", "kind": "dtmf", "value": "8", "confidence": 1.0},
        {"node": "main_menu", "kind": "dtmf", "value": "1", "confidence": 1.0}]
    assert result.started_at <= result.ended_at and result.started_at.tzinfo is not None
    assert result.flow_name == "main"
    journey = result.journey()
    assert journey["outcome"] == "enqueue" and journey["queue"] == "billing"


async def test_runner_accepts_a_raw_document(runner) -> None:
    result = await runner.run(load_builtin("main"), FakeDriver(["2"]), {})
    assert result.outcome.queue == "cards"


async def test_caller_hanging_up_ends_the_flow(runner, main_flow) -> None:
    result = await runner.run(main_flow, FakeDriver([HangsUp()]), {})
    assert result.outcome == Outcome("hangup", reason="caller")
    assert result.path == ["greeting"]


async def test_variables_are_spoken_and_rendered_on_demand(runner, prompts, synth) -> None:
    flow = parse({"name": "v", "start": "hi", "nodes": {
        "hi": {"type": "say", "text": "Hello {customer_name}, calling from {caller_id}.",
               "next": "bye"},
        "bye": {"type": "hangup", "prompt": "Goodbye."}}})
    driver = FakeDriver([], caller_id="5550000")
    result = await runner.run(flow, driver, {"customer_name": "Ada"})
    assert synth.calls[0][0] == "Hello Ada, calling from 5550000."
    assert result.outcome.kind == "hangup" and driver.hung_up
    assert driver.played[0] == [uri(prompts, "Hello Ada, calling from 5550000.")]


async def test_prerender_renders_static_prompts_once(runner, main_flow, synth) -> None:
    assert await runner.prerender(main_flow) == 6
    await runner.run(main_flow, FakeDriver(["", "9", "1"]), {})
    assert len(synth.calls) == 6


async def test_audio_prompt_is_played_as_is(runner) -> None:
    flow = parse({"name": "a", "start": "s", "nodes": {
        "s": {"type": "say", "audio": "hello-world", "next": "q"},
        "q": {"type": "enqueue", "queue": "general"}}})
    driver = FakeDriver([])
    await runner.run(flow, driver, {})
    assert driver.played == [["sound:hello-world"]]


async def test_a_node_error_sends_the_caller_to_the_safe_queue(runner, main_flow) -> None:
    class Broken(FakeDriver):
        async def read_digits(self, **kwargs):
            raise RuntimeError("boom")

    result = await runner.run(main_flow, Broken([]), {})
    assert result.outcome.kind == "enqueue" and result.outcome.queue == "general"
    assert result.outcome.reason == "error"


async def test_multi_digit_keys_use_the_terminator(runner) -> None:
    doc = copy.deepcopy(load_builtin("main"))
    doc["nodes"]["main_menu"]["options"][0]["key"] = "11"
    driver = FakeDriver(["11#"])
    result = await runner.run(doc, driver, {})
    assert result.outcome.queue == "billing"
    assert driver.reads[-1]["terminator"] == "#" and driver.reads[-1]["max_digits"] == 2


async def test_speech_choice_when_the_driver_listens(runner, main_flow) -> None:
    driver = FakeDriver([Say("cards", 0.9)], speech=True)
    result = await runner.run(main_flow, driver, {})
    assert result.outcome.queue == "cards"
    assert driver.grammars == [["billing", "cards", "lost card", "agent", "operator",
                                "representative"]]
    assert driver.languages == ["en-us"]
    assert result.inputs[0] == {"node": "main_menu", "kind": "speech", "value": "cards",
                                "confidence": 0.9}


async def test_unsure_speech_counts_as_no_match(runner, main_flow) -> None:
    driver = FakeDriver([Say("cards", 0.2), Say("banana"), "1"], speech=True)
    result = await runner.run(main_flow, driver, {})
    assert result.outcome.queue == "billing"
    assert [i["kind"] for i in result.inputs] == ["speech", "speech", "dtmf"]


async def test_fixed_clock(prompts, main_flow) -> None:
    t = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    result = await FlowRunner(prompts, clock=lambda: t).run(main_flow, FakeDriver(["1"]), {})
    assert result.started_at == result.ended_at == t


async def test_main_flow_with_real_espeak_prompts(tmp_path: Path) -> None:
    prompts = PromptCache(tmp_path, "en-us", 160)
    runner = FlowRunner(prompts)
    flow = parse(load_builtin("main"))
    assert await runner.prerender(flow) == 6
    driver = FakeDriver(["4", "1"])
    result = await runner.run(flow, driver, {})
    assert result.outcome.queue == "billing"
    for sounds in driver.played:
        for sound in sounds:
            assert Path(sound[len("sound:"):] + ".wav").stat().st_size > 8000


async def test_every_menu_reaches_a_person_by_0_or_by_saying_operator(runner) -> None:
    flow = parse({"name": "m", "language": "en-us", "start": "m", "nodes": {
        "m": {"type": "menu", "prompt": "billing or cards?", "fallback": "to_general",
              "options": [{"key": "1", "phrases": ["billing"], "target": "to_billing"},
                          {"key": "2", "phrases": ["cards"], "target": "to_billing"}]},
        "to_billing": {"type": "enqueue", "queue": "billing"},
        "to_general": {"type": "enqueue", "queue": "general"}}})
    by_key = await runner.run(flow, FakeDriver(["0"]), {})
    by_voice = await runner.run(flow, FakeDriver([Say("operator")], speech=True), {})
    assert by_key.outcome.queue == by_voice.outcome.queue == "general"
    assert by_key.outcome.reason == by_voice.outcome.reason == ""     # chosen, not a fallback
    assert [i["value"] for i in by_voice.inputs] == ["operator"]
