"""Published flows as serve sees them: seeding, live pick-up of new versions, prerendering."""
from __future__ import annotations

import asyncio
import copy

import pytest

from callpilot.infra.db.base import Base
from callpilot.infra.db.session import make_engine, make_sessionmaker
from ivr.flows import builtin_names, load_builtin
from ivr.published import PublishedFlows
from ivr.runner import FlowRunner
from ivr.store import FlowStore, UnknownFlow
from testkit.ivr_fakes import ToneSynthesizer
from ivr.tts import PromptCache


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'flows.db'}")
    Base.metadata.create_all(engine)
    yield FlowStore(make_sessionmaker(engine))
    engine.dispose()


@pytest.fixture
def prompts(tmp_path) -> PromptCache:
    return PromptCache(tmp_path / "prompts", "en-us", 160, synthesizer=ToneSynthesizer())


def greeting(text: str) -> dict:
    doc = copy.deepcopy(load_builtin("main"))
    doc["nodes"]["greeting"]["text"] = text
    return doc


async def test_start_seeds_builtins_once_and_prerenders_in_the_background(store, prompts) -> None:
    flows = PublishedFlows(store, FlowRunner(prompts).prerender, poll_seconds=60)
    await flows.start()
    assert list(flows) == builtin_names() and set(flows.versions().values()) == {1}
    await flows.rendered()
    await flows.close()
    assert prompts.is_cached("Welcome to CallPilot Bank.", "en-us")
    store.save_draft("main", greeting("Hello."))
    store.publish("main")
    again = PublishedFlows(store, FlowRunner(prompts).prerender, poll_seconds=60)
    await again.start()                                 # a restart never re-seeds
    await again.close()
    assert again("main").version == 2 and store.latest_version("main") == 2


async def test_new_version_is_picked_up_and_running_calls_keep_theirs(store, prompts) -> None:
    rendered: list[tuple[str, int]] = []

    async def prerender(flow) -> int:
        rendered.append((flow.name, flow.version))
        return await FlowRunner(prompts).prerender(flow)

    flows = PublishedFlows(store, prerender, builtin=["main"], poll_seconds=0.05)
    await flows.start()
    in_call = flows("main")                             # a call holds its Flow
    store.save_draft("main", greeting("Version two."))
    assert store.publish("main") == 2
    for _ in range(100):
        if flows("main").version == 2:
            break
        await asyncio.sleep(0.02)
    await flows.close()
    assert flows("main").version == 2 and in_call.version == 1
    assert in_call.nodes["greeting"].prompt.text == "Welcome to CallPilot Bank."
    assert rendered == [("main", 1), ("main", 2)]      # rendered before calls got it
    assert prompts.is_cached("Version two.", "en-us")


async def test_flows_published_later_appear_and_unknown_ones_raise(store, prompts) -> None:
    flows = PublishedFlows(store, FlowRunner(prompts).prerender, builtin=[], poll_seconds=60)
    await flows.start()
    await flows.close()
    with pytest.raises(UnknownFlow):
        flows("campaign")
    store.save_draft("campaign", greeting("Campaign."))
    store.publish("campaign")
    assert await flows.refresh() == [("campaign", 1)]
    assert await flows.refresh() == []
    assert flows("campaign").name == "campaign"


async def test_a_version_that_fails_to_load_keeps_the_previous_one(store, prompts) -> None:
    calls = 0

    async def flaky(flow) -> int:
        nonlocal calls
        calls += 1
        if flow.version == 2:
            raise OSError("disk full")
        return 0

    flows = PublishedFlows(store, flaky, builtin=["main"], poll_seconds=60)
    await flows.start()
    store.save_draft("main", greeting("Two."))
    store.publish("main")
    assert await flows.refresh() == []
    await flows.close()
    assert flows("main").version == 1


def test_latest_versions_is_one_query_over_all_flows(db_url) -> None:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    store = FlowStore(make_sessionmaker(engine))
    try:
        assert store.latest_versions() == {}
        for name in ("main", "survey"):
            store.seed(name, load_builtin(name))
        store.save_draft("main", greeting("Two."))
        store.publish("main")
        store.rollback("main", 1)
        assert store.latest_versions() == {"main": 3, "survey": 1}
    finally:
        engine.dispose()


async def test_start_does_not_wait_for_prompts(store, prompts) -> None:
    """serve registers with ARI right after start(): a slow rendering must not hold it."""
    release = asyncio.Event()

    async def slow(flow) -> int:
        await release.wait()
        return 0

    flows = PublishedFlows(store, slow, builtin=["main"], poll_seconds=60)
    await asyncio.wait_for(flows.start(), 10)
    assert flows("main").version == 1                  # live before its prompts are rendered
    release.set()
    await flows.rendered()
    await flows.close()


async def test_a_slow_publish_goes_live_after_the_wait_and_never_delays_another_flow(store, prompts) -> None:
    release = asyncio.Event()
    order: list[str] = []

    async def prerender(flow) -> int:
        if flow.name == "big":
            await release.wait()
        order.append(flow.name)
        return 0

    flows = PublishedFlows(store, prerender, builtin=[], poll_seconds=60, render_wait=0.2)
    await flows.start()
    for name in ("big", "small"):
        store.save_draft(name, greeting(f"{name}."))
        store.publish(name)
    taken = await asyncio.wait_for(flows.refresh(), 10)
    assert sorted(taken) == [("big", 1), ("small", 1)]
    assert order == ["small"]                          # small rendered; big still rendering
    assert flows("big").version == 1                   # yet live: calls synthesise on demand
    release.set()
    await flows.rendered()
    await flows.close()
    assert order == ["small", "big"]


async def test_unused_prompts_are_collected_after_a_new_version(store, prompts) -> None:
    runner = FlowRunner(prompts)
    flows = PublishedFlows(store, runner.prerender, builtin=["main"], poll_seconds=60,
                           collect=lambda live: asyncio.to_thread(prompts.collect, _keep(prompts, live), 0))
    await flows.start()
    await flows.rendered()
    for text in ("Two.", "Three."):
        store.save_draft("main", greeting(text))
        store.publish("main")
        await flows.refresh()
        await flows.rendered()
    await flows.close()
    assert prompts.is_cached("Three.", "en-us") and prompts.is_cached("Two.", "en-us")
    assert not prompts.is_cached("Welcome to CallPilot Bank.", "en-us")   # v1 only: collected


def _keep(prompts, live):
    return {prompts.path_for(t, lang) for f in live for t, lang in f.static_prompts()}
