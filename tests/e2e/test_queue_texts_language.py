"""A queue's own words in the caller's language, end to end (D31): real Asterisk 22, a real
``callpilot serve`` on a ``make run``-style instance, sipp callers from the carrier side, no
agent phone registered (callers wait).

The queues ``general`` (the Korean flow's "1", DID 802) and ``billing`` (the English flow's
"1", DID 800) get a default text and a Korean and an English text for the periodic
announcement and for the closed message.  A Korean caller hears the Korean text in the
Korean voice, an English caller the English text in the ``en-us`` voice; neither hears the
other's nor the default.  The closed texts are set while serve runs and applied by the queue
reload the admin web uses (``POST /reload/queues`` on serve's socket).  Each text's file is
on disk before the call is placed (rendered ahead by serve), and it is that file that plays:
seen as PlaybackStarted ``media_uri`` by the observer ARI application of
``test_prompt_language`` (files are named by a hash of text, voice and rate).
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from callpilot.app.status import post
from callpilot.infra.calendar import Calendar
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.calendars import CalendarStore
from callpilot.infra.db.models import Queue
from ivr.tts import PromptCache
from tests.e2e.conftest import demo_instance
from tests.e2e.serve_proc import wait_record
from tests.e2e.test_prompt_language import (caller, cfg, korean_mobile, observer, observing,  # noqa: F401
                                            played, serve, silence, uri_of, wait_until)

pytestmark = pytest.mark.e2e

QUEUES = ("general", "billing")
WAIT = {"": "Please hold the line.", "ko": "기다려 주셔서 감사합니다. 곧 연결해 드리겠습니다.",
        "en": "Thank you for holding, an agent will be with you soon."}
CLOSED = {"": "Closed.", "ko": "오늘은 영업하지 않습니다. 내일 다시 전화해 주세요.",
          "en": "We are closed today. Please call again tomorrow."}
CALLS = [("802", "ko", "ko", "general"),           # main_ko: the flow's language is ko
         ("800", "en", "en-us", "billing")]         # main: en-us
CLOSED_CALENDAR = "e2e_always_closed"


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """Announcements every 5 s without position (no agent has handled a call: no wait to
    say either), so what plays is the queue's text alone; a calendar closed today."""
    with demo_instance(tmp_path_factory.mktemp("queue-texts") / "state") as (config, passwords):
        assert config.asterisk.dids == {"800": "main", "802": "main_ko"}
        engine = db.make_engine(config.db_url)
        sessions = db.make_sessionmaker(engine)
        today = datetime.now(timezone.utc).date()
        CalendarStore(sessions).save(Calendar(CLOSED_CALENDAR, "UTC", {today + timedelta(days=d): "e2e" for d in
                                                                       (-1, 0, 1)}), now=datetime.now(timezone.utc))
        with sessions.begin() as s:
            s.execute(update(Queue).where(Queue.name.in_(QUEUES)).values(
                announce_frequency=5, announce_position=False, periodic_announce=WAIT[""],
                periodic_announce_translations={"ko": WAIT["ko"], "en": WAIT["en"]}))
        engine.dispose()
        yield config, passwords


async def set_queues(cfg: Config, **values) -> None:
    """Change both queues in the database and have serve reload them, as the admin web does."""
    engine = db.make_engine(cfg.db_url)
    try:
        with db.make_sessionmaker(engine).begin() as s:
            s.execute(update(Queue).where(Queue.name.in_(QUEUES)).values(**values))
    finally:
        engine.dispose()
    status, body = await post(cfg.state_dir / "serve.sock", "/reload/queues")
    assert status == 200 and body["reloaded"] == "queues", body


async def rendered_ahead(cfg: Config, texts: dict[str, str], voice: str, language: str) -> str:
    """The URI of ``texts[language]`` in ``voice``, once serve has rendered it (before any call)."""
    prompts = PromptCache(cfg.prompts_dir, cfg.tts_voice, cfg.tts_rate)
    path = prompts.path_for(texts[language], voice)
    await wait_until(path.exists, 30, f"serve rendering {texts[language]!r} in {voice}")
    return uri_of(cfg, texts[language], voice)


def others(cfg: Config, texts: dict[str, str], voice: str, language: str) -> set[str]:
    """What the caller must not hear: the other language's text (in either voice), the default."""
    return {uri_of(cfg, text, v) for key, text in texts.items() if key != language
            for v in {voice, "ko", "en-us", cfg.tts_voice}}


@pytest.mark.parametrize("did,language,voice,queue", CALLS)
async def test_a_waiting_caller_hears_the_queues_announcement_in_the_calls_language(
        cfg, serve, observer, silence, did, language, voice, queue):
    await set_queues(cfg, calendar=None)
    expected = await rendered_ahead(cfg, WAIT, voice, language)
    number = korean_mobile()
    call = asyncio.create_task(caller(cfg, did, number, silence, "1").run())
    wrong = others(cfg, WAIT, voice, language)
    await wait_until(lambda: expected in played(observer) or wrong & set(played(observer)) or call.done(),
                     45, "the queue's announcement")
    call.cancel()
    uris = played(observer)
    record = await wait_record(cfg, number, state="queued", timeout=10)
    assert record.queue == queue and record.did == did
    assert expected in uris, f"the {language} announcement not played; played: {uris}"
    assert not wrong & set(uris), uris


@pytest.mark.parametrize("did,language,voice,queue", CALLS)
async def test_a_caller_to_a_closed_queue_hears_its_closed_message_in_the_calls_language(
        cfg, serve, observer, silence, did, language, voice, queue):
    await set_queues(cfg, calendar=CLOSED_CALENDAR, closed_queue=None, closed_message=CLOSED[""],
                     closed_message_translations={"ko": CLOSED["ko"], "en": CLOSED["en"]})
    expected = await rendered_ahead(cfg, CLOSED, voice, language)
    number = korean_mobile()
    call = asyncio.create_task(caller(cfg, did, number, silence, "1").run())
    record = await wait_record(cfg, number, state="ended", timeout=45)
    await wait_until(lambda: call.done(), 30, "the caller hung up by serve")
    uris = played(observer)
    assert (record.queue, record.outcome, record.did) == (queue, "closed", did)
    assert expected in uris, f"the {language} closed message not played; played: {uris}"
    assert not others(cfg, CLOSED, voice, language) & set(uris), uris
