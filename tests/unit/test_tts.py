"""PromptCache with the real pyttsx3/espeak-ng engine, plus the pure voice resolution."""
from __future__ import annotations

import asyncio
import threading
import time
import wave
from pathlib import Path

import pytest

from testkit.ivr_fakes import ToneSynthesizer
from ivr.tts import (EspeakSynthesizer, PromptCache, TtsError, VoiceInfo, resolve_voice,
                     sound_uri_for)


class CountingSynth:
    def __init__(self) -> None:
        self.inner = EspeakSynthesizer.shared()
        self.calls = 0

    def synthesize(self, text, voice, rate):
        self.calls += 1
        return self.inner.synthesize(text, voice, rate)


@pytest.fixture
def synth() -> CountingSynth:
    return CountingSynth()


@pytest.fixture
def cache(tmp_path: Path, synth: CountingSynth) -> PromptCache:
    return PromptCache(tmp_path / "prompts", "en-us", 160, synthesizer=synth)


def wav_info(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()


def test_render_writes_8khz_mono_16bit_of_plausible_length(cache: PromptCache) -> None:
    path = cache.render("For billing, press 1. For cards, press 2.")
    rate, channels, width, seconds = wav_info(path)
    assert (rate, channels, width) == (8000, 1, 2)
    assert 2.0 < seconds < 6.0          # 9 words at 160 words/min is ~3.4 s
    assert path.parent == cache.directory and len(path.stem) == 24


def test_second_render_is_a_cache_hit(cache: PromptCache, synth: CountingSynth) -> None:
    first = cache.render("Welcome to CallPilot Bank.")
    mtime = first.stat().st_mtime_ns
    started = time.perf_counter()
    again = cache.render("Welcome to CallPilot Bank.")
    hit_ms = (time.perf_counter() - started) * 1000
    assert again == first and synth.calls == 1 and first.stat().st_mtime_ns == mtime
    assert hit_ms < 5


def test_different_text_voice_or_rate_gives_another_file(cache: PromptCache) -> None:
    paths = {cache.render("Hello."), cache.render("Goodbye."),
             cache.render("Hello.", voice="en-gb"), cache.render("Hello.", rate=120)}
    assert len(paths) == 4


def test_slower_rate_gives_longer_audio(cache: PromptCache) -> None:
    fast = wav_info(cache.render("Your call is important to us.", rate=220))[3]
    slow = wav_info(cache.render("Your call is important to us.", rate=110))[3]
    assert slow > fast * 1.4


def test_wideband_variant_sits_beside_the_8khz_file(cache: PromptCache, synth) -> None:
    path = cache.render("Please hold.", wideband=True)
    assert wav_info(path.with_suffix(".wav16"))[0] == 16000
    assert wav_info(path)[0] == 8000
    cache.render("Please hold.", wideband=True)
    assert synth.calls == 1


def test_voice_and_rate_changes_apply_to_every_render(tmp_path: Path) -> None:
    """Regression: pyttsx3's Engine loop cancelled queued rate changes (wrong speed)."""
    synth = EspeakSynthesizer.shared()
    text = "Your call is important to us."
    baseline = {r: synth.synthesize(text, "en-us", r).seconds for r in (90, 160, 280)}
    order = [(v, r) for r in (280, 90, 160, 90, 280, 160) for v in ("ko", "en-us", "en-gb")]
    for voice, rate in order:
        seconds = synth.synthesize(text, voice, rate).seconds
        if voice == "en-us":
            assert abs(seconds - baseline[rate]) / baseline[rate] < 0.1, (rate, seconds)


def test_korean_voice_renders(cache: PromptCache) -> None:
    assert 0.3 < wav_info(cache.render("네", voice="ko"))[3] < 2.0


def test_sound_uri_has_no_extension(cache: PromptCache) -> None:
    uri = cache.sound_uri("Thank you.")
    assert uri.startswith("sound:/") and not uri.endswith(".wav")
    assert Path(uri[len("sound:"):] + ".wav").exists()
    assert sound_uri_for(Path("/a/b.wav")) == "sound:/a/b"


def test_empty_text_is_refused(cache: PromptCache) -> None:
    with pytest.raises(TtsError):
        cache.render("  ")


def test_unknown_language_is_refused(cache: PromptCache) -> None:
    with pytest.raises(TtsError):
        cache.render("Hello.", voice="xx-nowhere")


def test_threads_render_concurrently_without_mixing_audio(cache: PromptCache) -> None:
    texts = [f"Prompt number {i}." for i in range(12)]
    errors: list[BaseException] = []

    def work(text: str) -> None:
        try:
            cache.render(text)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    durations = [wav_info(cache.path_for(t))[3] for t in texts]
    assert all(1.0 < d < 3.0 for d in durations)


async def test_render_async_keeps_the_event_loop_free(cache: PromptCache) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    paths = await asyncio.gather(*(cache.render_async(f"Async prompt {i}.") for i in range(5)))
    task.cancel()
    assert len(set(paths)) == 5 and ticks > 5
    assert await cache.sound_uri_async("Async prompt 0.") == sound_uri_for(paths[0])


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, synthesizer=ToneSynthesizer())
    cache.render("one two three", wideband=True)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".wav", ".wav16"]


VOICES = [VoiceInfo("gmw/en", ("en-gb",)), VoiceInfo("gmw/en-us", ("en-us",)),
          VoiceInfo("ko", ("ko",)), VoiceInfo("roa/fr", ("fr-fr",))]


@pytest.mark.parametrize("language, voice", [
    ("en-us", "gmw/en-us"), ("EN_US", "gmw/en-us"), ("en", "gmw/en"), ("en-gb", "gmw/en"),
    ("ko", "ko"), ("ko-KR", "ko"), ("fr", "roa/fr"), ("gmw/en-us", "gmw/en-us"),
])
def test_resolve_voice(language: str, voice: str) -> None:
    assert resolve_voice(language, VOICES) == voice


def test_resolve_voice_unknown() -> None:
    with pytest.raises(TtsError):
        resolve_voice("tlh", VOICES)


async def test_concurrent_requests_for_one_prompt_synthesise_it_once(tmp_path) -> None:
    import asyncio

    from testkit.ivr_fakes import ToneSynthesizer
    from ivr.tts import PromptCache

    class Counting(ToneSynthesizer):
        count = 0

        def synthesize(self, text, voice, rate):
            Counting.count += 1
            return super().synthesize(text, voice, rate)

    cache = PromptCache(tmp_path, synthesizer=Counting())
    paths = await asyncio.gather(*(cache.render_async("Hello there.") for _ in range(5)))
    assert len(set(paths)) == 1 and paths[0].exists() and Counting.count == 1


def test_collect_deletes_only_old_unused_prompts(tmp_path) -> None:
    import os

    from testkit.ivr_fakes import ToneSynthesizer
    from ivr.tts import PromptCache

    cache = PromptCache(tmp_path, synthesizer=ToneSynthesizer())
    used = cache.render("used", wideband=True)
    old = cache.render("old", wideband=True)
    fresh = cache.render("fresh")
    for path in (used, used.with_suffix(".wav16"), old, old.with_suffix(".wav16")):
        os.utime(path, (1, 1))
    assert cache.collect({used}, grace_seconds=60) == 1
    assert used.exists() and used.with_suffix(".wav16").exists() and fresh.exists()
    assert not old.exists() and not old.with_suffix(".wav16").exists()
    assert cache.usage_bytes() == sum(p.stat().st_size for p in tmp_path.iterdir())
