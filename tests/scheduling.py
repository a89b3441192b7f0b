"""How ``--dist loadfile`` spreads test files over xdist workers in this project (D30).

Like xdist's own loadfile, a file's tests run on one worker in file order, so its module and
session fixtures (an Asterisk, a serve) are made once.  Three differences:

* An end-to-end file also collected on PostgreSQL (``--e2e-postgresql FILE``, items with the
  ``postgresql`` id) is a unit of its own: the two copies of a file run side by side.
* The heaviest unit left goes first (longest processing time first), by the seconds stored in
  ``tests/file_times.json``, so a run ends with short files instead of one long straggler.  A
  unit missing there weighs its test count times its directory's mean seconds per test.
* A worker gets its next unit when one test of its current unit is left (xdist waits for
  two): the test it still runs may be a long one, and another worker may be free sooner.

Each run records the seconds its units took in ``var/test-file-times.json`` (merged with what
is there); copying that file over ``tests/file_times.json`` refreshes the weights.
"""
from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path

from xdist.scheduler import LoadFileScheduling

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "tests" / "file_times.json"
MEASURED = ROOT / "var" / "test-file-times.json"
POSTGRESQL_ID = "postgresql"
_POSTGRESQL_PARAM = re.compile(rf"\[(.*-)?{POSTGRESQL_ID}(-.*)?\]$")
_DEFAULT_SECONDS_PER_TEST = 1.0


def is_postgresql_copy(nodeid: str) -> bool:
    return nodeid.startswith("tests/e2e/") and bool(_POSTGRESQL_PARAM.search(nodeid))


def unit_of(nodeid: str) -> str:
    """``tests/e2e/test_x.py`` or, for its PostgreSQL copy, ``tests/e2e/test_x.py[postgresql]``."""
    path = nodeid.split("::", 1)[0]
    return f"{path}[{POSTGRESQL_ID}]" if is_postgresql_copy(nodeid) else path


def _directory(unit: str) -> str:
    return unit.rsplit("/", 1)[0]


def read_times(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))}


class Weights:
    """Expected seconds of a unit: stored, else test count x its directory's mean per test."""

    def __init__(self, stored: dict[str, float], counts: dict[str, int]) -> None:
        self._stored = stored
        self._per_test = self._mean_per_test(stored, counts)

    @staticmethod
    def _mean_per_test(stored: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
        seconds: dict[str, float] = defaultdict(float)
        tests: dict[str, int] = defaultdict(int)
        for unit, count in counts.items():
            if unit in stored:
                seconds[_directory(unit)] += stored[unit]
                tests[_directory(unit)] += count
        return {d: seconds[d] / tests[d] for d in seconds if tests[d]}

    def of(self, unit: str, count: int) -> float:
        if unit in self._stored:
            return self._stored[unit]
        return count * self._per_test.get(_directory(unit), _DEFAULT_SECONDS_PER_TEST)


class FileScheduling(LoadFileScheduling):
    """xdist's loadfile with PostgreSQL copies as units of their own, heaviest unit first."""

    def __init__(self, config, log=None) -> None:
        super().__init__(config, log)
        self.seconds: dict[str, float] = defaultdict(float)
        self._weights: Weights | None = None

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _weight(self, unit: str) -> float:
        if self._weights is None:
            counts = {scope: len(tests) for scope, tests in self.workqueue.items()}
            self._weights = Weights(read_times(WEIGHTS), counts)
        return self._weights.of(unit, len(self.workqueue[unit]))

    def _assign_work_unit(self, node) -> None:
        heaviest = max(self.workqueue, key=self._weight)
        self.workqueue.move_to_end(heaviest, last=False)
        super()._assign_work_unit(node)

    def _reschedule(self, node) -> None:
        # xdist tops a worker up when 2 tests are pending; one is enough (a worker holds its
        # last test until it knows the next one, for the fixtures' teardown).
        if self.workqueue and not node.shutting_down and self._pending_of(self.assigned_work[node]) > 1:
            return
        super()._reschedule(node)

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        self.seconds[unit_of(self.registered_collections[node][item_index])] += duration
        super().mark_test_complete(node, item_index, duration)


def record_times(seconds: dict[str, float], path: Path = MEASURED) -> None:
    """Merge this run's seconds per unit into ``path`` (rounded to 0.1 s, sorted)."""
    if not seconds:
        return
    merged = {**read_times(path), **{unit: round(s, 1) for unit, s in seconds.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n", encoding="utf-8")
