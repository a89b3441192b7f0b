"""``callpilot queues set``: a queue's opening-hours calendar, closed handling, survey flow."""
from __future__ import annotations

import json

from callpilot.app.cli import build_parser, cmd_queues
from callpilot.infra.config import Config
from callpilot.infra.db.models import Queue
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker


def test_cli_queues_set_edges(tmp_path, capsys) -> None:
    config = Config(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'q.db'}")
    engine = make_engine(config.db_url)
    create_schema(engine)
    with make_sessionmaker(engine).begin() as s:
        s.add(Queue(name="billing"))
    engine.dispose()

    def run(*argv):
        return cmd_queues(config, build_parser().parse_args(["queues", "set", *argv]))
    assert run("--queue", "billing", "--survey-flow", "survey", "--calendar", "bank", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"calendar": "bank", "closed_queue": None,
                                                   "closed_message": "", "survey_flow": "survey"}
    assert run("--queue", "billing", "--calendar", "", "--json") == 0
    assert json.loads(capsys.readouterr().out)["calendar"] is None
    assert run("--queue", "nope", "--calendar", "x") == 2
    assert run("--queue", "billing") == 2
