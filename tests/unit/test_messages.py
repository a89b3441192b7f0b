"""The system's message catalogue: complete in every language, English when a text is
missing (logged), and every speaker of it (callback offer, whisper, hold, feature codes, the
built-in survey, the apology) choosing the call's (or the agent's) language and voice."""
from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from acd.agents import LiveAgent
from acd.callback_offer import CallbackOffer, OfferSettings
from acd.callbacks import customer_language, whisper_text
from acd.model import AgentState
from acd.service import AcdService
from acd.state import CallState, LiveCall
from callpilot.infra.asterisk.channel_events import ChannelInboxes
from callpilot.infra.messages import (
    BUILTIN_DIR, CatalogueError, MessageCatalogue, Said, SpokenMessages, builtin_messages, placeholders)
from ivr.flows import load_builtin
from ivr.runner import FlowRunner
from ivr.tts import PromptCache
from ivr.wiring import validator
from testkit.ivr_fakes import FakeDriver, ToneSynthesizer

HANGUL = re.compile(r"[\uac00-\ud7a3]")


class Rendered:
    """The renderer: remembers (text, voice) and returns a URI naming both."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str | None]] = []

    async def __call__(self, text: str, language: str | None) -> str:
        self.said.append((text, language))
        return f"sound:{language}:{text}"


def spoken(rendered: Rendered, catalogue: MessageCatalogue | None = None) -> SpokenMessages:
    return SpokenMessages(catalogue or builtin_messages(), rendered)


# -- the catalogue ------------------------------------------------------------------------

def test_every_key_in_every_language_and_nothing_english_lacks() -> None:
    catalogue = MessageCatalogue.builtin()
    assert catalogue.languages == ["en", "ko"] == sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))
    assert catalogue.problems() == []
    for language in catalogue.languages:
        assert catalogue.missing(language) == [], language
    for key in catalogue.keys:
        english, korean = catalogue.texts["en"][key], catalogue.texts["ko"][key]
        assert HANGUL.search(korean), f"{key}: the Korean text is not Korean"
        assert placeholders(korean) == placeholders(english), key


def test_a_missing_translation_is_spoken_in_english_by_the_default_voice_and_logged(caplog) -> None:
    catalogue = MessageCatalogue({"en": {"a": "Hello {name}.", "b": "Bye."}, "ko": {"a": "{name}님 안녕하세요."}})
    assert catalogue.problems() == [] and catalogue.missing("ko") == ["b"]
    assert catalogue.say("a", "ko-KR", name="Kim") == Said("Kim님 안녕하세요.", "ko-KR")
    with caplog.at_level(logging.WARNING, logger="callpilot.infra.messages"):
        assert catalogue.say("b", "ko") == Said("Bye.", None)
        assert catalogue.say("b", "ko") == Said("Bye.", None)
        assert catalogue.say("a", "fr", name="Lee") == Said("Hello Lee.", None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["messages: no ko text for 'b'; spoken in English",
                        "messages: no fr text for 'a'; spoken in English"], "once per language and key"
    with pytest.raises(KeyError):
        catalogue.say("nowhere", "en")


def test_validation_refuses_keys_and_placeholders_english_lacks(caplog) -> None:
    extra_key = MessageCatalogue({"en": {"a": "A."}, "ko": {"a": "에이.", "z": "제트."}})
    with pytest.raises(CatalogueError, match="'z' is not an English message"):
        extra_key.validate()
    bad_field = MessageCatalogue({"en": {"a": "Press {digit}."}, "ko": {"a": "{key}번을 누르세요."}})
    with pytest.raises(CatalogueError, match="unknown to English"):
        bad_field.validate()
    with pytest.raises(CatalogueError, match="reference"):
        MessageCatalogue({"ko": {"a": "에이."}}).validate()
    with caplog.at_level(logging.WARNING):
        MessageCatalogue({"en": {"a": "A.", "b": "B."}, "ko": {"a": "에이."}}).validate()
    assert "ko lacks 1 messages, spoken in English: b" in caplog.text


def test_said_joins_with_one_voice_only_when_both_share_it() -> None:
    assert Said("가.", "ko").then(Said("나.", "ko")) == Said("가. 나.", "ko")
    assert Said("가.", "ko").then(Said("B.", None)) == Said("가. B.", None)
    assert Said("", "ko").then(Said("B.", "en")) == Said("B.", "en")


# -- the callback offer ---------------------------------------------------------------------

def _waiting(language: str | None) -> LiveCall:
    attributes = {"language": language} if language else {}
    return LiveCall(id="c1", caller_id="01055501234", did="802", state=CallState.QUEUED, queue="general",
                    attributes=attributes)


async def _first_offer_prompt(language: str | None) -> tuple[str, str | None]:
    inboxes, rendered, played = ChannelInboxes(), Rendered(), []

    async def play(channel, sound, playback_id):
        played.append(sound)
        return False                      # not started: the offer goes on to wait for a key

    async def accept(call, number):
        return None
    offer = CallbackOffer(_waiting(language), inboxes.open("c1"), play, accept, OfferSettings("KR"),
                          spoken(rendered))
    task = asyncio.create_task(offer.run())
    while not played:
        await asyncio.sleep(0.01)
    task.cancel()
    return rendered.said[0]


async def test_the_callback_read_back_is_in_the_calls_language_and_voice() -> None:
    text, voice = await _first_offer_prompt("ko")
    assert voice == "ko" and text.startswith("0 1 0, 5 5 5 0, 1 2 3 4번으로 다시 전화드리겠습니다.")
    assert "맞으면 1번" in text
    text, voice = await _first_offer_prompt(None)
    assert voice is None and text.startswith("We can call you back on 0 1 0, 5 5 5 0, 1 2 3 4.")


def test_the_offer_in_the_announcement_is_in_the_calls_language() -> None:
    from acd.queues import QueueBook, QueueSettings
    from acd.waiting import WaitingRoom
    room = WaitingRoom(QueueBook({"general": QueueSettings("general")}), None, None, lambda call: 2,
                       lambda q: 1, builtin_messages())
    room.offer_after, room.offer_key = (lambda queue: 60), (lambda queue: "5")
    for _ in range(3):
        room.record_handle_time("general", 300.0)
    said = room.announcement(_waiting("ko"))
    assert said.language == "ko" and said.text.endswith("유지한 채 전화를 다시 받으시려면 5번을 누르세요.")
    assert room.announcement(_waiting("en-us")).text.endswith("without losing your place in line, press 5.")


# -- the callback legs: whisper in the agent's language, hold in the customer's -------------

class _Callback:
    name, reason, context = "Kim", "card", {"reference": "TX-8"}
    ticket = {"attributes": {"language": "ko"}}

    def __init__(self, minutes: float) -> None:
        from datetime import datetime, timedelta, timezone
        self.entered_at = datetime.now(timezone.utc) - timedelta(minutes=minutes)


def test_the_whisper_speaks_the_agents_language() -> None:
    from datetime import datetime, timezone
    now = datetime.now(timezone.utc)
    korean = whisper_text(_Callback(3), now, builtin_messages(), "ko")
    assert korean == Said("Kim 콜백입니다. 용건은 card입니다. 참조 번호 T X 8. 3분 기다리셨습니다.", "ko")
    english = whisper_text(_Callback(1), now, builtin_messages(), "en")
    assert english == Said("Callback for Kim about card. Reference T X 8. Waiting 1 minute.", "en")
    assert customer_language(_Callback(1)) == "ko"


# -- agent feature codes ----------------------------------------------------------------------

class _Roster:
    def __init__(self, agent: LiveAgent) -> None:
        self.agent = agent

    def get(self, extension):
        return self.agent if extension == self.agent.extension else None


class _Dispatcher:
    action_deadline = 1.0

    def __init__(self, agent: LiveAgent) -> None:
        self.roster, self.calls = _Roster(agent), {}

    def agent_command(self, extension, action, reason):
        if action == "pause" and self.roster.agent.state is AgentState.LOGGED_OUT:
            raise ValueError("logged out")
        self.roster.agent.state = AgentState.AVAILABLE if action == "login" else AgentState.PAUSED
        return self.roster.agent


class _Control:
    def __init__(self) -> None:
        self.played: list[str] = []

    async def answer(self, channel_id):
        return True

    async def play(self, channel_id, uri):
        self.played.append(uri)

    async def hangup(self, channel_id):
        pass


async def _feature(languages: tuple[str, ...], action: str, monkeypatch) -> list[tuple[str, str | None]]:
    monkeypatch.setattr("acd.service.PROMPT_SECONDS", 0.0)
    agent = LiveAgent("1001", frozenset({"general"}), languages=frozenset(languages),
                      language=languages[0] if languages else None)
    rendered = Rendered()
    acd = AcdService(_Dispatcher(agent), _Control(), None, customers=None, bands=None,
                     messages=spoken(rendered), fallback_queue="general", clock=None)
    await acd.feature_code({"id": "f1", "name": "PJSIP/1001-00000001"}, action)
    return rendered.said


async def test_feature_codes_speak_the_agents_first_language(monkeypatch) -> None:
    assert await _feature(("ko", "en"), "login", monkeypatch) == [("상담원 1 0 0 1, 대기 상태입니다.", "ko")]
    assert await _feature(("en", "ko"), "login", monkeypatch) == [("Agent 1 0 0 1, you are available.", "en")]
    assert await _feature(("ko",), "pause", monkeypatch) == [("지금은 할 수 없습니다.", "ko")], "refused"
    assert await _feature(("en",), "pause", monkeypatch) == [("That is not possible now.", "en")]
    assert await _feature((), "login", monkeypatch) == [("Agent 1 0 0 1, you are available.", None)]


def test_the_roster_keeps_the_first_language_in_the_stored_order() -> None:
    from acd.roster_store import first
    assert first(["ko", "en"]) == "ko" and first(["en", "ko"]) == "en" and first([]) is None


async def test_the_apology_is_in_the_calls_language(monkeypatch) -> None:
    monkeypatch.setattr("acd.service.APOLOGY_SECONDS", 0.0)
    agent = LiveAgent("1001", frozenset())
    dispatcher, rendered = _Dispatcher(agent), Rendered()
    dispatcher.calls["c1"] = _waiting("ko")

    async def end(call_id, outcome, why):
        return True
    dispatcher.end = end
    acd = AcdService(dispatcher, _Control(), None, customers=None, bands=None,
                     messages=spoken(rendered), fallback_queue="general", clock=None)
    await acd.apologise("c1", "test")
    assert rendered.said == [("죄송합니다. 지금은 전화를 받을 수 없습니다. 나중에 다시 전화해 주세요.", "ko")]


# -- the built-in survey ------------------------------------------------------------------------

@pytest.fixture
def prompts(tmp_path: Path) -> PromptCache:
    return PromptCache(tmp_path, "en-us", 160, synthesizer=ToneSynthesizer())


@pytest.mark.parametrize("language,question,voice", [
    ("ko", "콜파일럿 은행을 친구에게 추천하실 가능성은 얼마나 됩니까?", "ko"),
    (None, "How likely are you to recommend CallPilot Bank to a friend?", "en-us"),
])
async def test_the_built_in_survey_speaks_the_calls_language(prompts, language, question, voice) -> None:
    driver = FakeDriver(["9#"])
    variables = {"language": language} if language else {}
    result = await FlowRunner(prompts).run(load_builtin("survey"), driver, variables)
    assert result.variables["nps"] == 9
    synthesised = prompts.synthesizer.calls
    assert synthesised[0][0].startswith(question) and synthesised[0][1] == voice
    assert [voice] * 3 == [v for _, v, _ in synthesised]            # question, thanks, goodbye


def test_a_flow_naming_an_unknown_message_is_refused() -> None:
    doc = load_builtin("survey")
    assert validator(None)(doc) == []
    doc["nodes"]["bye"]["prompt"] = {"message": "survey.nowhere"}
    [error] = validator(None)(doc)
    assert error.node_id == "bye" and "survey.nowhere" in error.reason


def test_message_prompts_are_rendered_before_any_call_in_every_catalogue_language() -> None:
    from ivr.schema import parse
    survey = parse(load_builtin("survey"))
    pairs = survey.static_prompts(builtin_messages())
    thanks = {lang: builtin_messages().say("survey.thanks", lang).text for lang in ("en", "ko")}
    assert (thanks["en"], "en-us") in pairs and (thanks["ko"], "ko") in pairs
    assert survey.static_prompts() == [], "without a catalogue nothing is known to render"


def test_a_survey_runs_in_the_callers_language_only_when_it_can_be_said_in_it() -> None:
    from ivr.schema import parse
    assert parse(load_builtin("survey")).speaks("ko") and parse(load_builtin("survey")).speaks("en-us")
    old = load_builtin("survey")                  # as stored by an install before the catalogue
    old["nodes"]["nps"]["prompt"] = "How likely are you to recommend us? Press 0 to 10."
    assert not parse(old).speaks("ko") and parse(old).speaks("en")
    old["nodes"]["nps"]["prompt"] = {"text": {"en": "Press 0 to 10.", "ko": "0부터 10까지 누르세요."}}
    assert parse(old).speaks("ko-KR") and not parse(old).speaks("ja")
