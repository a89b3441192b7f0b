"""Queue announcements in the caller's language (pure)."""
from __future__ import annotations

from acd.announcements import announcement_text
from acd.state import LiveCall
from acd.waiting import language_of


def test_position_and_wait_in_korean_for_a_korean_call() -> None:
    assert announcement_text(3, 200, language="ko") == \
        "대기 순서는 3번째입니다. 예상 대기 시간은 약 4분입니다."
    assert announcement_text(1, 30, language="ko-KR") == \
        "다음 순서입니다. 예상 대기 시간은 1분 미만입니다."


def test_english_for_english_unknown_or_missing_languages() -> None:
    english = "You are caller number 2. Your estimated wait is about 3 minutes."
    assert announcement_text(2, 150, language="en-us") == english
    assert announcement_text(2, 150, language="xx") == english
    assert announcement_text(2, 150) == english


def test_the_calls_language_comes_from_its_attributes() -> None:
    assert language_of(LiveCall("c", "1", "802", attributes={"language": "ko"})) == "ko"
    assert language_of(LiveCall("c", "1", "800")) is None
