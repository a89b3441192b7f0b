"""Demo data on SQLite and PostgreSQL: complete, and idempotent across runs."""
from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import func, select

from callpilot.app import demo
from callpilot.infra.config import load
from callpilot.infra.db.agents import sip_md5_cred
from callpilot.infra.db.models import Agent, Customer, Queue, QueueMember
from callpilot.infra.db.session import make_engine, make_sessionmaker


def config_for(tmp_path: Path, db_url: str):
    return load(env={"CALLPILOT_STATE_DIR": str(tmp_path / "state"), "CALLPILOT_DATABASE_URL": db_url})


def snapshot(db_url: str) -> dict:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            return {
                "queues": {q.name: q.title for q in s.scalars(select(Queue))},
                "agents": {a.extension: (a.name, a.birth_year, a.sip_md5_cred)
                           for a in s.scalars(select(Agent))},
                "members": sorted(tuple(row) for row in s.execute(
                    select(QueueMember.queue_name, QueueMember.agent_extension))),
                "customers": s.scalar(select(func.count()).select_from(Customer)),
            }
    finally:
        engine.dispose()


def test_seed_creates_the_demo_data(tmp_path: Path, db_url: str) -> None:
    config = config_for(tmp_path, db_url)
    passwords = demo.seed(config)
    data = snapshot(db_url)
    assert data["queues"] == demo.QUEUES
    assert set(data["agents"]) == set(demo.AGENTS) == set(passwords)
    for ext, (_name, _year, cred) in data["agents"].items():
        assert cred == sip_md5_cred(ext, passwords[ext])
    assert data["members"] == sorted((q, ext) for ext, (_, _, qs) in demo.AGENTS.items() for q in qs)
    assert data["customers"] == len(demo.CUSTOMERS)
    pw_file = config.state_dir / demo.PASSWORDS_FILE
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert demo.read_passwords(pw_file) == passwords


def test_seed_twice_changes_nothing(tmp_path: Path, db_url: str) -> None:
    config = config_for(tmp_path, db_url)
    first = demo.seed(config)
    before = snapshot(db_url)
    assert demo.seed(config) == first
    assert snapshot(db_url) == before


def test_seed_keeps_admin_edits_and_completes_missing_rows(tmp_path: Path, db_url: str) -> None:
    config = config_for(tmp_path, db_url)
    demo.seed(config)
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            s.get(Queue, "billing").title = "Payments desk"
            s.delete(s.get(QueueMember, ("cards", "1003")))
            s.delete(s.get(Customer, "15550005"))
    finally:
        engine.dispose()
    demo.seed(config)
    data = snapshot(db_url)
    assert data["queues"]["billing"] == "Payments desk"
    assert ("cards", "1003") in data["members"]
    assert data["customers"] == len(demo.CUSTOMERS)
