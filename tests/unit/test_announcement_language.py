"""Queue announcements in the caller's language (pure), from the message catalogue."""
from __future__ import annotations

from acd.announcements import announcement
from acd.state import LiveCall
from acd.waiting import language_of
from callpilot.infra.messages import Said, builtin_messages


def test_position_and_wait_in_korean_for_a_korean_call() -> None:
    m = builtin_messages()
    assert announcement(m, 3, 200, language="ko") == \
        Said("대기 순서는 3번째입니다. 예상 대기 시간은 약 4분입니다.", "ko")
    assert announcement(m, 1, 30, language="ko-KR") == \
        Said("다음 순서입니다. 예상 대기 시간은 1분 미만입니다.", "ko-KR")


def test_english_for_english_unknown_or_missing_languages() -> None:
    m = builtin_messages()
    english = "You are caller number 2. Your estimated wait is about 3 minutes."
    assert announcement(m, 2, 150, language="en-us") == Said(english, "en-us")
    assert announcement(m, 2, 150, language="xx") == Said(english, None), "the default voice reads it"
    assert announcement(m, 2, 150) == Said(english, None)


def test_the_calls_language_comes_from_its_attributes() -> None:
    assert language_of(LiveCall("c", "1", "802", attributes={"language": "ko"})) == "ko"
    assert language_of(LiveCall("c", "1", "800")) is None
