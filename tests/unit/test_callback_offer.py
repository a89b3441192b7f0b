"""The callback offer: announced when the estimated wait passes the queue's threshold; the
conversation with a real ChannelInboxes fed events as ARI would (read-back, confirm only
after it finished, keyed number, refusal)."""
from __future__ import annotations

import asyncio

from acd.callback_offer import CallbackOffer, OfferSettings, OfferStep, eta_text, read_aloud
from acd.queues import QueueBook, QueueSettings
from acd.state import CallState, LiveCall
from acd.waiting import WaitingRoom
from callpilot.infra.asterisk.channel_events import ChannelInboxes
from callpilot.infra.messages import SpokenMessages, builtin_messages


def _call(caller_id="01055501234") -> LiveCall:
    call = LiveCall(id="c1", caller_id=caller_id, did="805", state=CallState.QUEUED, queue="cbq")
    call.enqueued_mono = 0.0
    return call


def _room(threshold: float) -> WaitingRoom:
    room = WaitingRoom(QueueBook({"cbq": QueueSettings("cbq")}), None, None, lambda call: 1, lambda q: 1,
                       builtin_messages())
    room.offer_after = lambda queue: threshold
    room.offer_key = lambda queue: "5"
    for _ in range(3):
        room.record_handle_time("cbq", 300.0)
    return room


def test_offer_announced_only_when_the_wait_passes_the_threshold():
    assert "press 5" in _room(120).announcement(_call()).text          # EWT 300 s > 120 s
    assert "press 5" not in _room(600).announcement(_call()).text
    assert "press 5" not in _room(0).announcement(_call()).text          # 0: never by EWT


def test_the_announced_position_is_the_dispatchers_callbacks_ahead_included():
    """The dispatcher passes its position (line + callbacks ahead, see
    Dispatcher._position); the e2e callback test checks B hears A's callback counted."""
    room = WaitingRoom(QueueBook({"cbq": QueueSettings("cbq")}), None, None, lambda call: 1 + 2, lambda q: 1,
                       builtin_messages())
    assert "caller number 3" in room.announcement(_call()).text


class Ari:
    """Plays by recording; a playback finishes when the test says so, like PlaybackFinished."""

    def __init__(self, inboxes: ChannelInboxes):
        self.inboxes, self.said = inboxes, []

    async def play(self, channel, text, playback_id):
        self.said.append((playback_id, text))
        return True

    async def finish_last(self):
        playback_id = self.said[-1][0]
        self.inboxes.route({"type": "PlaybackFinished", "playback": {"id": playback_id,
                                                                     "target_uri": "channel:c1"}})
        await asyncio.sleep(0.05)                 # the offer takes it in before the next key

    def key(self, digit):
        self.inboxes.route({"type": "ChannelDtmfReceived", "channel": {"id": "c1"}, "digit": digit})


def spoken() -> SpokenMessages:
    """The real catalogue; the "sound" is the text itself, so the test reads what was said."""
    async def render(text, language):
        return text
    return SpokenMessages(builtin_messages(), render)


async def _offer(call):
    inboxes = ChannelInboxes()
    ari, accepted = Ari(inboxes), []

    async def accept(c, number):
        accepted.append(number)
        return 400.0
    offer = CallbackOffer(call, inboxes.open("c1"), ari.play, accept, OfferSettings("KR"), spoken())
    return offer, ari, accepted


async def _step(ari, count):
    while len(ari.said) < count:
        await asyncio.sleep(0.01)


async def test_confirm_counts_only_after_the_read_back_finished():
    offer, ari, accepted = await _offer(_call())
    task = asyncio.create_task(offer.run())
    await _step(ari, 1)
    assert "on 0 1 0, 5 5 5 0, 1 2 3 4." in ari.said[0][1]
    ari.key("1")                                  # pressed during the read-back: dropped
    await asyncio.sleep(0.05)
    await ari.finish_last()
    assert not accepted
    ari.key("1")
    await _step(ari, 2)
    await ari.finish_last()
    assert await task is OfferStep.ACCEPTED
    assert accepted == ["+821055501234"] and "about 7 minutes" in ari.said[1][1]


async def test_a_keyed_number_when_the_caller_id_cannot_be_called():
    offer, ari, accepted = await _offer(_call(caller_id="anonymous"))
    task = asyncio.create_task(offer.run())
    await _step(ari, 1)
    assert "enter your phone number" in ari.said[0][1]
    await ari.finish_last()
    for digit in "12345#":                        # not a number: asked again
        ari.key(digit)
    await _step(ari, 2)
    assert "cannot be called back" in ari.said[1][1]
    await ari.finish_last()
    for digit in "01055509876#":
        ari.key(digit)
    await _step(ari, 3)
    assert "0 1 0, 5 5 5 0, 9 8 7 6" in ari.said[2][1]
    await ari.finish_last()
    ari.key("1")
    await _step(ari, 4)
    await ari.finish_last()
    assert await task is OfferStep.ACCEPTED and accepted == ["+821055509876"]


def test_read_aloud():
    assert read_aloud("+1 201-555-0123") == "plus, 1, 2 0 1, 5 5 5, 0 1 2 3"


def test_eta_wording():
    m = builtin_messages()
    assert eta_text(None, m, None).text == "We will call you back as soon as an agent is free."
    assert eta_text(30, m, "en").text == "We will call you back in about a minute."
    assert eta_text(400, m, "en-us").text == "We will call you back in about 7 minutes."
    assert eta_text(400, m, "ko").text == "약 7분 후에 전화드리겠습니다."


def test_offer_rules_queue_settings_first_then_the_configuration():
    from acd.callback_offer import OfferRules
    book = QueueBook({"own": QueueSettings("own", callback_offer_after=30, callback_offer_key="7"),
                      "never": QueueSettings("never", callback_offer_after=0),
                      "cfg": QueueSettings("cfg"), "plain": QueueSettings("plain")})
    rules = OfferRules(book, offer_after_seconds=120, offer_key_default="5", offer_after_by_queue={"cfg": 60})
    assert [rules.offer_after(q) for q in ("own", "never", "cfg", "plain")] == [30.0, 0.0, 60.0, 120.0]
    assert [rules.offer_key(q) for q in ("own", "plain")] == ["7", "5"]
    # the admin web saved the queue and serve reloaded the book: the same rules see it
    book.replace(QueueBook({"plain": QueueSettings("plain", callback_offer_after=10, callback_offer_key="#")}))
    assert (rules.offer_after("plain"), rules.offer_key("plain")) == (10.0, "#")


def test_the_announcement_names_the_queues_own_key():
    from acd.callback_offer import OfferRules
    book = QueueBook({"cbq": QueueSettings("cbq", callback_offer_key="7", callback_offer_after=60)})
    room = WaitingRoom(book, None, None, lambda call: 1, lambda q: 1, builtin_messages())
    rules = OfferRules(book)
    room.offer_after, room.offer_key = rules.offer_after, rules.offer_key
    for _ in range(3):
        room.record_handle_time("cbq", 300.0)
    assert "press 7" in room.announcement(_call()).text
