"""serve's status socket answers the admin web's phrase checks (D42): ``POST /speech/unknown``
says, per language, whether its model is loading / ready / failed and which words it does not
know; the web's validator asks serve first and loads the same engines itself only when serve
is not reachable.

A real :class:`StatusServer` on a unix socket, real ``SpeechLoading`` worker threads; the
engines are the small fake of ``test_speech_loading`` (the real models are in tests/web).
"""
from __future__ import annotations

import asyncio
import functools

import pytest

from callpilot.app.status import StatusServer, request_sync
from callpilot.app.web import ServeVocabulary
from ivr.speech.loading import SpeechLoading
from ivr.speech.vocabulary import LocalVocabulary, answers_json
from ivr.wiring import validator
from tests.unit.test_speech_loading import (ASKS_KO, GATE_LIMIT, KEYS_ONLY, FakeEngine, Gate, broken,
                                            planned, with_phrase)


@pytest.fixture
def gate():
    held = Gate()
    yield held
    held.open()


class Serve:
    """The socket as serve runs it, on its engines; counts the questions it answered."""

    def __init__(self, sock, loading: SpeechLoading) -> None:
        self.loading, self.asked = loading, 0
        self.server = StatusServer(sock, lambda: {}, unknown_words=self.answer)

    async def answer(self, words, wait):
        self.asked += 1
        return await answers_json(self.loading, words, wait)


@pytest.fixture
async def serve(tmp_path):
    started: list[Serve] = []

    async def start(loading: SpeechLoading) -> Serve:
        running = Serve(tmp_path / "serve.sock", loading.start())
        await running.server.start()
        started.append(running)
        return running
    yield start
    for running in started:
        await running.server.stop()


def ask(sock, body, wait: float = 0.05):
    """The web's blocking client, from a thread (serve's loop is this test's)."""
    return asyncio.to_thread(request_sync, sock, "POST", f"/speech/unknown?wait={wait}", 5.0, body)


def unused_local() -> LocalVocabulary:
    """The web's local fallback; its load would fail loudly, and must not even start."""
    return LocalVocabulary(SpeechLoading(planned(ko=broken)))


# ------------------------------------------------------------------ the endpoint

async def test_the_endpoint_names_the_words_a_ready_engine_does_not_know(tmp_path, serve) -> None:
    running = await serve(SpeechLoading(planned(ko=FakeEngine)))
    running.loading.wait_sync("ko", GATE_LIMIT)
    status, body = await ask(running.server.path, {"ko": ["네", "상담원"], "fr": ["oui"]})
    assert status == 200
    assert body == {"ko": {"state": "ready", "unknown": ["상담원"], "reason": ""}}    # fr: no engine


async def test_the_endpoint_says_loading_and_failed(tmp_path, serve, gate) -> None:
    running = await serve(SpeechLoading(planned(en=broken, ko=FakeEngine), gate=gate))
    status, body = await ask(running.server.path, {"ko": ["네"], "en": ["yes"]})
    assert status == 200 and body["ko"]["state"] == body["en"]["state"] == "loading"
    gate.open()
    running.loading.wait_sync("ko", GATE_LIMIT)
    _status, body = await ask(running.server.path, {"ko": ["네"], "en": ["yes"]})
    assert body["ko"] == {"state": "ready", "unknown": [], "reason": ""}
    assert body["en"]["state"] == "failed" and "no such model" in body["en"]["reason"]


async def test_the_endpoint_refuses_a_malformed_question_and_is_absent_without_engines(tmp_path) -> None:
    server = StatusServer(tmp_path / "serve.sock", lambda: {},
                          unknown_words=functools.partial(answers_json, SpeechLoading({})))
    await server.start()
    try:
        status, body = await ask(server.path, {"ko": "네"})
        assert status == 400 and "language" in body["error"]
    finally:
        await server.stop()
    server = StatusServer(tmp_path / "serve.sock", lambda: {})
    await server.start()
    try:
        assert (await ask(server.path, {"ko": ["네"]}))[0] == 404
    finally:
        await server.stop()


# ------------------------------------------------------------------ the web's validator

async def test_the_web_checks_phrases_with_serve_when_serve_runs(tmp_path, serve) -> None:
    running = await serve(SpeechLoading(planned(ko=FakeEngine)))
    running.loading.wait_sync("ko", GATE_LIMIT)
    local = unused_local()
    check = validator(ServeVocabulary(running.server.path, local), wait=GATE_LIMIT)
    [unknown] = await asyncio.to_thread(check, with_phrase(ASKS_KO, "상담원"))
    assert "상담원" in unknown.reason and "does not know" in unknown.reason
    assert await asyncio.to_thread(check, ASKS_KO) == []
    assert await asyncio.to_thread(check, KEYS_ONLY) == []
    assert running.asked == 2                       # a flow with no phrase asks nothing
    assert local.loading.status["ko"].state.value == "loading" and local.loading._thread is None


async def test_the_web_says_try_again_while_serves_model_loads(tmp_path, serve, gate) -> None:
    running = await serve(SpeechLoading(planned(ko=FakeEngine), gate=gate))
    check = validator(ServeVocabulary(running.server.path, unused_local()), wait=0.05)
    [error] = await asyncio.to_thread(check, ASKS_KO)
    assert "still loading" in error.reason and "try again" in error.reason


def test_the_web_loads_the_engines_itself_when_serve_is_down(tmp_path, gate) -> None:
    """No socket: the same plan is loaded here, from the first check that has phrases."""
    local = LocalVocabulary(SpeechLoading(planned(ko=FakeEngine), gate=gate))
    check = validator(ServeVocabulary(tmp_path / "serve.sock", local), wait=0.05)
    assert check(KEYS_ONLY) == [] and local.loading._thread is None       # lazily: not yet
    [error] = check(ASKS_KO)
    assert "still loading" in error.reason                                # started, bounded
    gate.open()
    local.loading.wait_sync("ko", GATE_LIMIT)
    [unknown] = check(with_phrase(ASKS_KO, "상담원"))
    assert "상담원" in unknown.reason and "does not know" in unknown.reason
    assert check(ASKS_KO) == []


async def test_the_web_falls_back_when_the_socket_does_not_answer_vocabulary(tmp_path) -> None:
    """A serve without the endpoint (404): checked here rather than published unchecked."""
    server = StatusServer(tmp_path / "serve.sock", lambda: {})
    await server.start()
    try:
        local = LocalVocabulary(SpeechLoading(planned(ko=FakeEngine)))
        check = validator(ServeVocabulary(server.path, local), wait=GATE_LIMIT)
        [unknown] = await asyncio.to_thread(check, with_phrase(ASKS_KO, "상담원"))
    finally:
        await server.stop()
    assert "상담원" in unknown.reason and local.loading._thread is not None
