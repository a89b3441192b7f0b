"""Several callables run at the same moment, each in a thread of its own (processes or nodes
starting together on one database, in unit tests)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

START_TIMEOUT = 10.0


def run_at_once(calls: list[Callable[[], Any]], timeout: float = 30.0) -> tuple[list[Any], list[BaseException]]:
    """Start every call in its own thread, released together by a barrier; wait for them.
    Returns ``(results, errors)`` (in no particular order); AssertionError if a call is
    still running after ``timeout`` seconds."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait(START_TIMEOUT)
            results.append(call())
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), f"a call still running after {timeout} s"
    return results, errors
