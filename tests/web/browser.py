"""Real-browser helpers: the app under waitress on a free port, Debian's headless chromium
driven by Selenium through the system chromedriver (no browser download)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]
# Screenshots go to var/screenshots (ignored by git); CALLPILOT_UPDATE_SCREENSHOTS=1 refreshes
# the committed ones in docs/screenshots instead.
UPDATE_SCREENSHOTS_ENV = "CALLPILOT_UPDATE_SCREENSHOTS"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1440,960")
WAIT = 20.0   # generous: the machine is shared


class LiveServer:
    """The Flask app served by waitress in a thread (the production WSGI server).

    Stopping it must not close a file descriptor that a task thread still uses: an event
    stream (SSE) thread that wrote to waitress's trigger pipe after the pipe was closed and
    its number reused by SQLite corrupted the test database.  So, in the loop's own thread:
    close the client connections first (task threads then end with ClientDisconnected at
    their next write), wait for the task threads, and only then close the trigger and the
    listening socket."""

    def __init__(self, app) -> None:
        self.app = app
        self._server = create_server(app, host="127.0.0.1", port=0, threads=4)
        self.url = f"http://127.0.0.1:{self._server.effective_port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=0.05, map=self._server._map, count=1)
        finally:
            for channel in list(self._server._map.values()):
                if isinstance(channel, HTTPChannel):
                    channel.handle_close()
            self._server.task_dispatcher.shutdown(timeout=10)
            wasyncore.close_all(self._server._map)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def wait(driver, condition, timeout: float = WAIT):
    """Until ``condition`` holds; elements replaced by a page load meanwhile are looked up again."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def visible(driver, css: str):
    return wait(driver, ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def log_in(driver, base: str, username: str, password: str) -> None:
    driver.get(f"{base}/auth/login")
    visible(driver, "#username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, lambda d: "/auth/login" not in d.current_url)


def screenshot_dir() -> Path:
    if os.environ.get(UPDATE_SCREENSHOTS_ENV, "") == "1":
        return ROOT / "docs" / "screenshots"
    return ROOT / "var" / "screenshots"


def screenshot(driver, name: str) -> Path:
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    driver.save_screenshot(str(path))
    return path


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def graph_ready(driver) -> None:
    """The editor page has drawn its graph (flow_graph.js sets data-ready)."""
    wait(driver, lambda d: d.execute_script(
        "var c = document.getElementById('flow-graph'); return !!c && c.dataset.ready === 'true';"))


def set_field(driver, name: str, value: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, f'#node-form [name="{name}"]')
    field.clear()
    field.send_keys(value)


def publish(driver, comment: str) -> None:
    """Press Publish on the editor page and wait for the versions page."""
    driver.find_element(By.CSS_SELECTOR, '#publish-form [name="comment"]').send_keys(comment)
    driver.find_element(By.ID, "publish").click()
    wait(driver, lambda d: "/versions" in d.current_url)
