"""serve's status socket: ``POST /reload/queues`` (sent by the admin web) swaps the queue
settings in the book the dispatcher and the waiting room share."""
from __future__ import annotations

from acd.queues import QueueBook, QueueSettings
from callpilot.app.status import StatusServer, post


async def test_reload_replaces_the_shared_queue_book(tmp_path):
    book = QueueBook({"billing": QueueSettings("billing", sl_target_seconds=20)})
    holder = book                                   # e.g. the waiting room's reference
    fresh = QueueBook({"billing": QueueSettings("billing", sl_target_seconds=15),
                       "vip": QueueSettings("vip")})

    def reload(what: str) -> dict:
        if what != "queues":
            raise ValueError(f"cannot reload {what!r}")
        book.replace(fresh)
        return {"reloaded": what}

    server = StatusServer(tmp_path / "serve.sock", lambda: {}, reload=reload)
    await server.start()
    try:
        assert await post(tmp_path / "serve.sock", "/reload/queues") == (200, {"reloaded": "queues"})
        status, body = await post(tmp_path / "serve.sock", "/reload/agents")
        assert status == 404 and "agents" in body["error"]
    finally:
        await server.stop()
    assert holder.get("billing").sl_target_seconds == 15
    assert sorted(holder.queues) == ["billing", "vip"]


async def test_no_reload_hook(tmp_path):
    server = StatusServer(tmp_path / "serve.sock", lambda: {})
    await server.start()
    try:
        status, _body = await post(tmp_path / "serve.sock", "/reload/queues")
    finally:
        await server.stop()
    assert status == 404
