"""Proactive outbound campaigns: notify customers by phone, capture their replies, hand the
ones who ask for a person to the ACD.  A domain of its own: it imports neither ``acd`` nor
``ivr``; TTS and the hand-off to an agent are callables wired in ``callpilot.app``."""
