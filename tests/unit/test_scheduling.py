"""The test scheduler's pure parts: units of work, their weights, the recorded times."""
from __future__ import annotations

import json
from types import SimpleNamespace

from tests import scheduling


def test_a_postgresql_copy_of_an_e2e_file_is_a_unit_of_its_own():
    assert scheduling.unit_of("tests/e2e/test_a.py::test_x[sqlite]") == "tests/e2e/test_a.py"
    assert scheduling.unit_of("tests/e2e/test_a.py::test_x[postgresql]") == "tests/e2e/test_a.py[postgresql]"
    assert scheduling.unit_of("tests/e2e/test_a.py::test_y[postgresql-busy]") == "tests/e2e/test_a.py[postgresql]"
    assert scheduling.unit_of("tests/e2e/test_a.py::C::test_z") == "tests/e2e/test_a.py"


def test_only_e2e_files_are_split_by_database():
    # web and unit tests have db_url parameters with the same ids: their files stay whole
    assert scheduling.unit_of("tests/web/test_b.py::test_x[postgresql]") == "tests/web/test_b.py"
    assert scheduling.unit_of("tests/e2e/test_a.py::test_postgresql_thing") == "tests/e2e/test_a.py"


def test_a_stored_weight_wins_and_a_new_file_weighs_its_tests_at_its_directory_mean():
    stored = {"tests/e2e/a.py": 100.0, "tests/e2e/b.py": 20.0, "tests/unit/u.py": 2.0}
    counts = {"tests/e2e/a.py": 10, "tests/e2e/b.py": 2, "tests/e2e/new.py": 3,
              "tests/unit/u.py": 4, "tests/unit/new.py": 8, "tests/other/x.py": 5}
    weights = scheduling.Weights(stored, counts)
    assert weights.of("tests/e2e/a.py", 10) == 100.0
    assert weights.of("tests/e2e/new.py", 3) == 3 * 120.0 / 12
    assert weights.of("tests/unit/new.py", 8) == 8 * 2.0 / 4
    assert weights.of("tests/other/x.py", 5) == 5 * 1.0


def test_recorded_times_merge_into_what_is_there(tmp_path):
    path = tmp_path / "var" / "times.json"
    scheduling.record_times({"tests/e2e/a.py": 10.04, "tests/e2e/b.py": 3.0}, path)
    scheduling.record_times({"tests/e2e/a.py": 12.26}, path)
    assert json.loads(path.read_text()) == {"tests/e2e/a.py": 12.3, "tests/e2e/b.py": 3.0}
    assert scheduling.read_times(path) == {"tests/e2e/a.py": 12.3, "tests/e2e/b.py": 3.0}


def test_an_unreadable_times_file_weighs_nothing(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    assert scheduling.read_times(tmp_path / "bad.json") == {}
    assert scheduling.read_times(tmp_path / "missing.json") == {}


class FakeWorker:
    """What the scheduler uses of xdist's WorkerController."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent, self.shutting_down = [], False

    def send_runtest_some(self, indices) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


class FakeConfig:
    option = SimpleNamespace(loadscopereorder=True)

    def getvalue(self, name):
        assert name == "tx"
        return ["2*popen"]


def _scheduler(monkeypatch, tmp_path, weights: dict[str, float], collection: list[str]):
    (tmp_path / "times.json").write_text(json.dumps(weights))
    monkeypatch.setattr(scheduling, "WEIGHTS", tmp_path / "times.json")
    sched = scheduling.FileScheduling(FakeConfig())
    workers = [FakeWorker("gw0"), FakeWorker("gw1")]
    for worker in workers:
        sched.add_node(worker)
        sched.add_node_collection(worker, collection)
    sched.schedule()
    return sched, workers


COLLECTION = [
    "tests/e2e/test_small.py::test_a", "tests/e2e/test_small.py::test_b",
    "tests/e2e/test_big.py::test_a[sqlite]", "tests/e2e/test_big.py::test_b[sqlite]",
    "tests/e2e/test_big.py::test_c[sqlite]",
    "tests/e2e/test_big.py::test_a[postgresql]", "tests/e2e/test_big.py::test_b[postgresql]",
    "tests/e2e/test_big.py::test_c[postgresql]",
    "tests/web/test_page.py::test_a", "tests/web/test_page.py::test_b",
    "tests/web/test_page.py::test_c",
]


# xdist's own order (most tests first) would start big on SQLite and on PostgreSQL.
WEIGHTS = {"tests/e2e/test_small.py": 5.0, "tests/e2e/test_big.py": 100.0,
           "tests/e2e/test_big.py[postgresql]": 90.0, "tests/web/test_page.py": 95.0}


def test_the_heaviest_units_start_first(monkeypatch, tmp_path):
    sched, (gw0, gw1) = _scheduler(monkeypatch, tmp_path, WEIGHTS, COLLECTION)
    assert [COLLECTION[i] for i in gw0.sent] == COLLECTION[2:5]           # big on SQLite
    assert [COLLECTION[i] for i in gw1.sent] == COLLECTION[8:11]          # the web page
    assert sorted(sched.workqueue) == ["tests/e2e/test_big.py[postgresql]", "tests/e2e/test_small.py"]


def test_a_worker_gets_its_next_unit_when_one_test_is_left_and_times_are_summed(monkeypatch, tmp_path):
    sched, (gw0, gw1) = _scheduler(monkeypatch, tmp_path, WEIGHTS, COLLECTION)
    sched.mark_test_complete(gw0, 2, duration=3.0)
    assert len(gw0.sent) == 3                                             # two left: not yet
    sched.mark_test_complete(gw0, 3, duration=4.5)
    assert [COLLECTION[i] for i in gw0.sent[3:]] == COLLECTION[5:8]       # big on PostgreSQL
    assert sched.seconds == {"tests/e2e/test_big.py": 7.5}


def test_without_stored_times_the_units_with_more_tests_go_first(monkeypatch, tmp_path):
    sched, (gw0, gw1) = _scheduler(monkeypatch, tmp_path, {}, COLLECTION[:5] + COLLECTION[8:])
    assert len(gw0.sent) == len(gw1.sent) == 3
    assert list(sched.workqueue) == ["tests/e2e/test_small.py"]              # 2 tests: last
