"""Versioned flow store on SQLite and on a throwaway PostgreSQL (same code, portable SQL)."""
from __future__ import annotations

import copy
import functools
import threading
from pathlib import Path

import pytest

from callpilot.infra.db.base import Base
from callpilot.infra.db.session import make_engine, make_sessionmaker
from ivr.errors import FlowInvalid
from ivr.flows import load_builtin
from ivr.runner import FlowRunner
from ivr.store import FlowStore, FlowUnchanged, UnknownFlow
from testkit.ivr_fakes import FakeDriver, ToneSynthesizer
from ivr.tts import PromptCache
from tests.together import run_at_once


@pytest.fixture
def store(db_url: str):
    """A store on a fresh database, once per backend (``db_url`` from tests/conftest.py)."""
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    yield FlowStore(make_sessionmaker(engine))
    engine.dispose()


MAIN = load_builtin("main")


def variant(queue: str) -> dict:
    doc = copy.deepcopy(MAIN)
    doc["nodes"]["to_billing"]["queue"] = queue
    return doc


def test_invalid_draft_is_saved_but_not_published(store: FlowStore) -> None:
    broken = copy.deepcopy(MAIN)
    broken["nodes"]["main_menu"]["fallback"] = "nowhere"
    errors = store.save_draft("main", broken, "alice")
    assert [(e.node_id, e.reason) for e in errors] == [
        ("main_menu", "target 'nowhere' does not exist")]
    assert store.draft("main")["nodes"]["main_menu"]["fallback"] == "nowhere"
    with pytest.raises(FlowInvalid):
        store.publish("main", "alice")
    assert store.latest_version("main") is None
    with pytest.raises(UnknownFlow):
        store.published("main")


def test_publish_numbers_versions_and_keeps_them_immutable(store: FlowStore) -> None:
    store.save_draft("main", variant("billing-v1"), "alice")
    assert store.publish("main", "alice", "first") == 1
    store.save_draft("main", variant("billing-v2"), "bob")
    assert store.publish("main", "bob") == 2
    store.save_draft("main", variant("billing-draft"), "bob")          # unpublished edit
    assert store.published("main").version == 2
    assert store.published("main").nodes["to_billing"].queue == "billing-v2"
    assert store.version("main", 1).nodes["to_billing"].queue == "billing-v1"
    assert [(v.version, v.published_by, v.comment) for v in store.versions("main")] == [
        (1, "alice", "first"), (2, "bob", "")]


def test_rollback_republishes_an_earlier_version(store: FlowStore) -> None:
    for queue in ("q1", "q2"):
        store.save_draft("main", variant(queue))
        store.publish("main")
    assert store.rollback("main", 1, "carol") == 3
    live = store.published("main")
    assert live.version == 3 and live.nodes["to_billing"].queue == "q1"
    info = store.versions("main")[-1]
    assert info.rollback_of == 1 and info.comment == "rollback to version 1"
    with pytest.raises(UnknownFlow):
        store.rollback("main", 9)


async def test_a_call_keeps_the_version_it_started_with(store: FlowStore, tmp_path: Path) -> None:
    store.save_draft("main", variant("old"))
    store.publish("main")

    class PublishingCaller(FakeDriver):
        async def play(self, sounds, *, barge_in=True):
            if len(self.played) == 0:        # during the greeting, an admin publishes v2
                store.save_draft("main", variant("new"))
                store.publish("main")
            return await super().play(sounds, barge_in=barge_in)

    runner = FlowRunner(PromptCache(tmp_path / "p", synthesizer=ToneSynthesizer()))
    result = await runner.run(store.published("main"), PublishingCaller(["1"]), {})
    assert result.outcome.queue == "old" and result.flow_version == 1
    assert store.published("main").version == 2
    result = await runner.run(store.published("main"), FakeDriver(["1"]), {})
    assert result.outcome.queue == "new" and result.flow_version == 2


def test_concurrent_publishes_get_distinct_numbers(store: FlowStore) -> None:
    for queue in ("q1", "q2"):
        store.save_draft("main", variant(queue))
        store.publish("main")
    numbers: list[int] = []
    errors: list[BaseException] = []

    def rollback(version: int) -> None:
        try:
            numbers.append(store.rollback("main", version))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=rollback, args=(v,)) for v in (1, 2, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # racing for one number: each insert gets its own; one equal to the live one is refused
    assert numbers and len(set(numbers)) == len(numbers) and min(numbers) == 3
    assert all(isinstance(e, FlowUnchanged) for e in errors)
    assert len(numbers) + len(errors) == 4


def test_the_same_draft_published_concurrently_makes_one_version(store: FlowStore) -> None:
    store.save_draft("main", MAIN)
    numbers: list[int] = []
    unchanged: list[int] = []

    def publish() -> None:
        try:
            numbers.append(store.publish("main"))
        except FlowUnchanged as exc:
            unchanged.append(exc.version)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert numbers == [1] and unchanged == [1, 1, 1]
    assert store.latest_version("main") == 1


def test_nodes_seeding_one_database_at_once_make_one_version_and_no_error(db_url: str) -> None:
    """Serves of several nodes start together on one database, each seeding the built-in
    flows: one publishes version 1 of each, the others find it there (no FlowUnchanged, no
    duplicate draft)."""
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    stores = [FlowStore(make_sessionmaker(engine)) for _ in range(4)]
    try:
        for name in (f"flow{i}" for i in range(6)):
            versions, errors = run_at_once([functools.partial(s.seed, name, MAIN) for s in stores])
            assert errors == [], name
            assert len(versions) == 4 and [v for v in versions if v is not None] == [1], name
            assert stores[-1].latest_version(name) == 1
    finally:
        engine.dispose()


def test_names_seed_and_unknown(store: FlowStore) -> None:
    assert store.seed("main", MAIN) == 1
    assert store.seed("main", MAIN) is None
    store.save_draft("draft_only", {"name": "x"})
    assert store.names() == ["draft_only", "main"]
    assert store.draft("draft_only")["name"] == "draft_only"     # the store's name wins
    with pytest.raises(UnknownFlow):
        store.draft("ghost")
    with pytest.raises(UnknownFlow):
        store.version("main", 7)


def test_vocabulary_aware_validation_refuses_publish(store: FlowStore, tmp_path: Path) -> None:
    from ivr.schema import check

    strict = FlowStore(store._sessions,
                       validate=lambda doc: check(doc, vocabulary={"잔액"}.__contains__,
                                                  vocabulary_language="ko"))
    errors = strict.save_draft("main_ko", load_builtin("main_ko"))
    assert {e.node_id for e in errors} == {"wants_agent", "menu"}
    with pytest.raises(FlowInvalid):
        strict.publish("main_ko")


def test_an_unchanged_draft_is_not_a_new_version(store: FlowStore) -> None:
    store.save_draft("main", variant("q1"))
    assert store.publish("main") == 1
    with pytest.raises(FlowUnchanged) as exc:
        store.publish("main")
    assert exc.value.version == 1 and store.latest_version("main") == 1
    with pytest.raises(FlowUnchanged):
        store.rollback("main", 1)                        # it is the live document already


@pytest.mark.parametrize("name", ["../../x y", "", "a/b", "x" * 65, "-lead", "caf\u00e9"])
def test_bad_names_are_refused_and_nothing_is_stored(store: FlowStore, name: str) -> None:
    with pytest.raises(FlowInvalid) as exc:
        store.save_draft(name, MAIN)
    assert "flow name" in str(exc.value)
    assert store.names() == []


def test_oversized_documents_are_refused_before_storing(store: FlowStore) -> None:
    from ivr import schema
    huge = copy.deepcopy(MAIN)
    for i in range(schema.MAX_NODES + 1):
        huge["nodes"][f"n{i}"] = {"type": "say", "text": "x", "next": "main_menu"}
    with pytest.raises(FlowInvalid) as exc:
        store.save_draft("main", huge)
    assert f"at most {schema.MAX_NODES}" in str(exc.value) and store.names() == []
    fat = copy.deepcopy(MAIN)
    fat["description"] = "x" * (schema.MAX_DOCUMENT_BYTES + 1)
    with pytest.raises(FlowInvalid) as exc:
        store.save_draft("main", fat)
    assert f"at most {schema.MAX_DOCUMENT_BYTES}" in str(exc.value)


def test_long_prompts_are_invalid(store: FlowStore) -> None:
    from ivr import schema
    doc = copy.deepcopy(MAIN)
    doc["nodes"]["greeting"]["text"] = "word " * 2000
    errors = store.save_draft("main", doc)
    assert [str(e) for e in errors] == [
        f"greeting: prompt of 10000 characters; at most {schema.MAX_PROMPT_CHARS}"]
    with pytest.raises(FlowInvalid):
        store.publish("main")
