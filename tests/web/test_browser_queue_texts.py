"""In a real browser (headless Debian chromium): a supervisor types a queue's closed message
in Korean beside its English default on the queue page and saves it (D31)."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.web.browser import LiveServer, chromium, console_errors, log_in, visible
from tests.web.conftest import PASSWORDS
from tests.web.test_queues import _queue, queues  # noqa: F401  (queues: the autouse fixture)

KOREAN = "지금은 영업 시간이 아닙니다. 내일 다시 전화해 주세요."


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def test_supervisor_types_a_korean_closed_message(app, browser):
    with LiveServer(app) as server:
        log_in(browser, server.url, "super", PASSWORDS["super"])
        browser.get(f"{server.url}/queues/billing")
        visible(browser, "#queue-texts")
        browser.find_element(By.NAME, "closed_message").send_keys("We are closed now.")
        browser.find_element(By.NAME, "closed_message_ko").send_keys(KOREAN)
        browser.find_element(By.ID, "save-queue").click()
        visible(browser, ".flash")
        assert browser.find_element(By.NAME, "closed_message_ko").get_attribute("value") == KOREAN
        assert console_errors(browser) == []
    queue = _queue(app)
    assert (queue.closed_message, queue.closed_message_translations) == ("We are closed now.", {"ko": KOREAN})
