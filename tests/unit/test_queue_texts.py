"""A queue's own words per language (D31): which text a call hears and in which voice, the
fallbacks (queue default, then the catalogue), what serve renders ahead, the stored form
(migration 0012 on SQLite and PostgreSQL) and the web's validation of translations."""
from __future__ import annotations

import logging

import pytest
from alembic import command
from sqlalchemy import text

from acd.queues import QueueBook, QueueSettings, prerender, queue_text, texts_to_render, translations_of
from acd.roster_store import load_queues
from acd.state import CallEntry, LiveCall
from acd.waiting import WaitingRoom
from admin_web.queue_texts import MAX_TEXT, translation_errors
from callpilot.infra.db import migrations
from callpilot.infra.db.call_vocabulary import RoutingTicket
from callpilot.infra.db.models import Queue
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from callpilot.infra.messages import Said, builtin_messages
from tests.unit.test_dispatcher_hooks import Recorder, build

KO, EN, DEFAULT = "기다려 주셔서 감사합니다.", "Thanks for holding.", "Please hold."
TEXTS = {"ko": KO, "en": EN}


@pytest.mark.parametrize("language, expected", [
    ("ko", Said(KO, "ko")),
    ("ko-KR", Said(KO, "ko-KR")),            # text by primary subtag, the voice as given
    ("en-us", Said(EN, "en-us")),
    ("fr", Said(DEFAULT, "fr")),             # no French text: the default, in the call's voice
    (None, Said(DEFAULT, None)),             # a call with no language: default text and voice
])
def test_the_calls_language_picks_the_text(language, expected) -> None:
    assert queue_text(DEFAULT, TEXTS, language) == expected


def test_without_a_default_a_language_with_no_text_hears_nothing() -> None:
    assert queue_text("", {"ko": KO}, "en-us") is None
    assert queue_text("", {}, "ko") is None
    assert queue_text("  ", {"ko": "  "}, "ko") is None, "blank texts count as none"
    assert queue_text(DEFAULT, {"ko": " "}, "ko") == Said(DEFAULT, "ko")


def test_stored_translations_are_keyed_by_primary_subtag_and_blank_ones_dropped() -> None:
    stored = {"ko-KR": KO, "EN": EN, "fr": "", "de": None, "": "x", 7: "y"}
    assert translations_of(stored) == {"ko": KO, "en": EN}
    assert translations_of(None) == {} and translations_of(["ko"]) == {}


# -- the closed message: translation, queue default, then the catalogue ----------------------

async def _closed_said(language: str | None, **settings) -> Said:
    recorder = Recorder()
    d, _, _ = build(recorder, calendar="bank", **settings)
    attributes = {"language": language} if language else {}
    await d.adopt(CallEntry("a", "", "", RoutingTicket(queue="q", attributes=attributes)))
    await d.settle()
    [(call_id, said)] = recorder.closed
    assert call_id == "a"
    return said


async def test_a_closed_queue_speaks_the_calls_language_then_its_default_then_the_catalogue() -> None:
    texts = {"closed_message": "We are closed.", "closed_message_translations": {"ko": "영업이 끝났습니다."}}
    assert await _closed_said("ko", **texts) == Said("영업이 끝났습니다.", "ko")
    assert await _closed_said("en-us", **texts) == Said("We are closed.", "en-us")
    only_korean = {"closed_message_translations": {"ko": "영업이 끝났습니다."}}
    assert await _closed_said("en-us", **only_korean) == builtin_messages().say("queue.closed", "en-us")
    assert await _closed_said("ko") == builtin_messages().say("queue.closed", "ko")
    assert "업무 시간" in (await _closed_said("ko")).text


# -- the periodic announcement: after position and wait, in the call's language --------------

def _room(settings: QueueSettings) -> WaitingRoom:
    return WaitingRoom(QueueBook({"q": settings}), None, None, lambda call: 2, lambda q: 1, builtin_messages())


def _waiting(language: str | None) -> LiveCall:
    return LiveCall("c", "1", "800", queue="q", attributes={"language": language} if language else {})


def test_the_periodic_announcement_follows_position_and_wait_in_the_calls_language() -> None:
    settings = QueueSettings("q", periodic_announce=DEFAULT, periodic_announce_translations=TEXTS)
    room = _room(settings)
    korean = room.announcement(_waiting("ko"))
    assert korean == Said(f"{builtin_messages().say('queue.position', 'ko', n=2).text} {KO}", "ko")
    english = room.announcement(_waiting("en-us"))
    assert english == Said(f"You are caller number 2. {EN}", "en-us")


def test_the_periodic_announcement_alone_is_the_text_rendered_ahead() -> None:
    """Position off and no wait known: the announcement is the queue's text alone, so the
    rendering serve made ahead is the one played."""
    settings = QueueSettings("q", announce_position=False, periodic_announce=DEFAULT,
                             periodic_announce_translations=TEXTS)
    said = _room(settings).announcement(_waiting("ko"))
    assert said == Said(KO, "ko")
    assert said in texts_to_render(QueueBook({"q": settings}), ["ko"])


# -- rendering ahead ----------------------------------------------------------------------------

def test_every_standalone_text_in_every_voice_is_rendered_ahead() -> None:
    book = QueueBook({
        "q": QueueSettings("q", periodic_announce=DEFAULT, periodic_announce_translations=TEXTS,
                           closed_message_translations={"ko": "영업 종료"}),
        "silent": QueueSettings("silent")})
    assert texts_to_render(book, [None, "ko", "en-us"]) == {
        Said(DEFAULT, None), Said(KO, "ko"), Said(EN, "en-us"), Said("영업 종료", "ko")}


async def test_prerender_renders_each_text_once_and_survives_a_failure(caplog) -> None:
    book = QueueBook({"q": QueueSettings("q", periodic_announce=DEFAULT, periodic_announce_translations=TEXTS,
                                         closed_message="Closed.")})
    rendered: list[tuple[str, str | None]] = []

    async def render(text: str, language: str | None) -> str:
        if text == "Closed." and language == "ko":
            raise RuntimeError("no voice")
        rendered.append((text, language))
        return "sound:x"
    with caplog.at_level(logging.ERROR, logger="acd.queues"):
        done = await prerender(book, [None, "ko", "en-us"], render)
    assert sorted(rendered, key=str) == sorted([(DEFAULT, None), (KO, "ko"), (EN, "en-us"), ("Closed.", None),
                                                ("Closed.", "en-us")], key=str)
    assert done == 5 and "not rendered" in caplog.text


# -- stored: migration 0012 and load_queues, SQLite and PostgreSQL -----------------------------

def test_translations_are_stored_and_loaded_on_both_backends(db_url) -> None:
    engine = make_engine(db_url)
    try:
        create_schema(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as s:
            s.add(Queue(name="q", periodic_announce=DEFAULT, periodic_announce_translations=TEXTS,
                        closed_message_translations={"ko": "영업 종료"}))
            s.add(Queue(name="plain"))
        settings = load_queues(sessions).get("q")
        assert settings.periodic_announcement("ko") == Said(KO, "ko")
        assert settings.closed_announcement("ko-KR") == Said("영업 종료", "ko-KR")
        plain = load_queues(sessions).get("plain")
        assert (plain.periodic_announce_translations, plain.closed_message_translations) == ({}, {})
    finally:
        engine.dispose()


def test_migration_0012_gives_existing_queues_no_translations(db_url) -> None:
    """A queue stored before 0012 keeps its single text as the default, with no translations."""
    engine = make_engine(db_url)
    try:
        with migrations.migrating(engine) as conn:
            command.upgrade(migrations.alembic_config(conn), "0011")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO queues (name, title, moh_class, periodic_announce, closed_message) "
                              "VALUES ('old', '', 'default', 'Please hold.', 'Closed.')"))
        create_schema(engine)                                   # to head: 0012
        settings = load_queues(make_sessionmaker(engine)).get("old")
        assert settings.periodic_announce_translations == {} and settings.closed_message_translations == {}
        assert settings.periodic_announcement("ko") == Said("Please hold.", "ko")
        assert settings.closed_announcement("en-us") == Said("Closed.", "en-us")
    finally:
        engine.dispose()


# -- the web's check (form and API) ---------------------------------------------------------------

@pytest.mark.parametrize("translations, error", [
    ({"ko": KO, "en": EN}, None),
    ({}, None),
    ({"ko": ""}, "ko: empty text (leave the language out instead)"),
    ({"ko": "   "}, "ko: empty text (leave the language out instead)"),
    ({"ko": None}, "ko: empty text (leave the language out instead)"),
    ({"fr": "Bonjour"}, "'fr' is not a language offered (en, ko)"),
    ({"ko": "가" * (MAX_TEXT + 1)}, f"ko: {MAX_TEXT + 1} characters, at most {MAX_TEXT}"),
    (["ko"], "expected an object {language: text}"),
])
def test_translations_are_validated(translations, error) -> None:
    assert translation_errors(translations, ["en", "ko"]) == ([error] if error else [])
    assert translation_errors({"ko": "가" * MAX_TEXT}, ["ko"]) == []
