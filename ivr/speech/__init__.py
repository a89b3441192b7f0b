"""Speech recognition for flows: one Vosk model per process, grammar-constrained recognisers.

Drivers implement ``listen`` (see :mod:`ivr.driver`) by feeding the caller's audio frame by
frame to an :class:`Utterance` (energy VAD for barge-in and endpointing, the grammar decoder
in a shared thread pool), or whole streams to :func:`listen_stream`; flows get their
vocabulary check from :meth:`SpeechModel.knows`.
"""
from ivr.speech.model import SpeechModel, SpeechUnavailable, default_model_path
from ivr.speech.recognizer import (GrammarRecognizer, recognize, recognize_async, recognize_wav,
                                   to_recognition)
from ivr.speech.utterance import ListenResult, ListenSettings, Utterance, listen_stream
from ivr.speech.vad import EnergyVad, VadSettings

__all__ = ["EnergyVad", "GrammarRecognizer", "ListenResult", "ListenSettings", "SpeechModel",
           "SpeechUnavailable", "Utterance", "VadSettings", "default_model_path", "listen_stream",
           "recognize", "recognize_async", "recognize_wav", "to_recognition"]
